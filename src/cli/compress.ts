import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePackagePath } from '../config/index.js';
import { ConfigError, InputError } from '../errors.js';
import { writeCalibrationSet } from '../compression/calibration.js';
import { tabletopEvaluator } from '../sim/evaluator.js';
import { isFlowPackage, loadFlowPackage } from '../model/flow-manifest.js';
import {
  compressFlowPackage,
  flowVariantFigures,
  type FlowCompressionReport,
} from '../compression/flow-compress.js';
import { flowTabletopEvaluator } from './sim-flow.js';
import { simulatorSamples } from '../sim/samples.js';
import {
  compressPackage,
  variantFigures,
  type CompressionReport,
  type CompressMode,
} from '../compression/compress.js';
import { compressArPackage } from '../compression/autoregressive.js';
import { pct } from '../compression/report-common.js';
import { DEFAULT_FP16_KEEP_OPS } from '../compression/fp16.js';
import { isArPackage } from '../model/ar-manifest.js';
import type { CalibrationMethod } from '../compression/runner.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';

function choice<T extends string>(
  values: OptionValues,
  key: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const v = values[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new ConfigError(
      `Expected --${key} ${allowed.join('|')} but received ${JSON.stringify(v)}`,
      {
        field: key,
      },
    );
  }
  return v as T;
}

function number(values: OptionValues, key: string, fallback: number, integer = false): number {
  const v = values[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    throw new ConfigError(
      `Expected --${key} to be a non-negative ${integer ? 'integer' : 'number'} but received ${JSON.stringify(v)}`,
      { field: key },
    );
  }
  return n;
}

function flowSummary(r: FlowCompressionReport): string {
  const p = r.precision;
  const v = flowVariantFigures(r);
  return [
    `${r.variant} (flow): gate (${r.gate.provider}) ${r.gate.passed ? 'passed' : `FAILED (${r.gate.reasons.join('; ')})`}`,
    `  success: fp32 ${pct(r.closed_loop.fp32_success_rate)}, ${p} ${pct(v.successRate)} over ${r.closed_loop.episodes} episodes (seed ${r.closed_loop.seed})`,
    `  action error (mean abs per dim, ${r.action_error.steps} steps, same noise): ${r.action_error.mean_abs.join(', ')}; max ${r.action_error.max_abs.join(', ')}`,
    `  latency ${p}/fp32 on the CPU (p50, 1 thread): encode ${r.latency.ratio.encode}, instruction ${r.latency.ratio.instruction}, prefix ${r.latency.ratio.prefix}, denoise ${r.latency.ratio.denoise}, total ${r.latency.ratio.total}${p === 'fp16' ? ' (fp16 is meant for CUDA/TensorRT)' : ''}`,
    `  size ${p}/fp32: ${r.size_bytes.ratio} (${v.bytes} / ${r.size_bytes.fp32} bytes)`,
  ].join('\n');
}

function summary(r: CompressionReport): string {
  const p = r.precision;
  const v = variantFigures(r);
  return [
    `${r.variant}: gate (${r.gate.provider}) ${r.gate.passed ? 'passed' : `FAILED (${r.gate.reasons.join('; ')})`}`,
    `  success: fp32 ${pct(r.closed_loop.fp32_success_rate)}, ${p} ${pct(v.successRate)} over ${r.closed_loop.episodes} episodes (seed ${r.closed_loop.seed})`,
    `  action error (mean abs per dim): ${r.action_error.mean_abs.join(', ')}; max ${r.action_error.max_abs.join(', ')}`,
    `  latency ${p}/fp32 on the CPU (p50, 1 thread): encoder ${r.latency.ratio.encoder}, policy ${r.latency.ratio.policy}, total ${r.latency.ratio.total}${p === 'fp16' ? ' (fp16 is meant for CUDA/TensorRT)' : ''}`,
    `  size ${p}/fp32: ${r.size_bytes.ratio} (${v.bytes} / ${r.size_bytes.fp32} bytes)`,
  ].join('\n');
}

/** `compress` of an autoregressive package: dynamic INT8 of its three graphs, gated. */
async function runCompressAr(model: string, values: OptionValues, io: CommandIo): Promise<number> {
  choice(values, 'mode', ['dynamic'], 'dynamic');
  const exclude = values.exclude;
  const names = Array.isArray(exclude) ? exclude.flatMap((e) => e.split(',')) : undefined;
  const report = await compressArPackage({
    model,
    evaluator: tabletopEvaluator(),
    ...(names === undefined ? {} : { exclude: names.filter((n) => n !== 'none') }),
    heldOut: Math.max(1, number(values, 'held-out', 100, true)),
    episodes: Math.max(1, number(values, 'episodes', 100, true)),
    seed: number(values, 'seed', 1, true),
    chunkAgreement: Math.min(1, number(values, 'chunk-agreement', 0.9)),
    errorThreshold: number(values, 'error-threshold', 0.02),
    successTolerance: number(values, 'success-tolerance', 3),
    latencyRounds: Math.max(2, number(values, 'latency-rounds', 400, true)),
    progress: (line) => {
      io.progress(line);
    },
  });
  io.result(
    report,
    [
      `${report.variant}: gate (${report.gate.provider}) ${report.gate.passed ? 'passed' : `FAILED (${report.gate.reasons.join('; ')})`}`,
      `  held out: ${pct(report.held_out.chunks_equal_to_fp32)} of chunks and ${pct(report.held_out.tokens_equal_to_fp32)} of tokens equal fp32's over ${report.held_out.observations} observations`,
      `  success: fp32 ${pct(report.closed_loop.fp32_success_rate)}, int8 ${pct(report.closed_loop.int8_success_rate)} over ${report.closed_loop.episodes} episodes (seed ${report.closed_loop.seed})`,
      `  action error (mean abs per dim): ${report.action_error.mean_abs.join(', ')}; max ${report.action_error.max_abs.join(', ')}`,
      `  chunk p50 on the CPU (1 thread): fp32 ${report.latency.fp32_chunk_p50_ms} ms, int8 ${report.latency.int8_chunk_p50_ms} ms (ratio ${report.latency.ratio.total})`,
      `  size int8/fp32: ${report.size_bytes.ratio} (${report.size_bytes.int8} / ${report.size_bytes.fp32} bytes)`,
    ].join('\n'),
  );
  return 0;
}

export async function runCompress(values: OptionValues, io: CommandIo): Promise<number> {
  if (values.record === undefined && typeof values.model === 'string') {
    const model = resolvePackagePath(values.model);
    if (await isArPackage(model)) return runCompressAr(model, values, io);
  }
  const calibration = values.calibration;
  if (typeof calibration !== 'string' || calibration === '') {
    throw new ConfigError('Expected --calibration <folder> (a calibration set)', {
      field: 'calibration',
    });
  }
  const record = values.record;
  if (typeof record === 'string') {
    const count = number(values, 'record', 0, true);
    if (count < 1) throw new ConfigError('Expected --record >= 1', { field: 'record' });
    if (existsSync(join(calibration, 'frames.json'))) {
      throw new InputError(
        `Expected no calibration set at ${calibration} (frames.json exists; nothing is overwritten)`,
        { field: 'calibration' },
      );
    }
    const seed = number(values, 'seed', 7, true);
    // A flow package's set holds a frame of every camera it names (the simulator renders them).
    const model = resolvePackagePath(
      typeof values.model === 'string' ? values.model : 'models/tiny-vla',
    );
    const cameras = (await isFlowPackage(model))
      ? (await loadFlowPackage(model)).manifest.cameras.map((c) => c.name)
      : [];
    await writeCalibrationSet(
      calibration,
      simulatorSamples(count, seed, 2, cameras),
      `vla-node compress --record ${count} --seed ${seed}${cameras.length > 0 ? ` --model ${typeof values.model === 'string' ? values.model : model} (cameras ${cameras.join(', ')})` : ''} (built-in tabletop simulator)`,
    );
    io.result(
      { calibration, frames: count, seed, cameras: cameras.length > 0 ? cameras : ['table'] },
      `wrote ${count} frames${cameras.length > 1 ? ` of ${cameras.length} cameras (${cameras.join(', ')})` : ''} to ${calibration}`,
    );
    return 0;
  }
  const exclude = values.exclude;
  const model = resolvePackagePath(
    typeof values.model === 'string' ? values.model : 'models/tiny-vla',
  );
  const flow = await isFlowPackage(model);
  const rangesOut = values['ranges-out'];
  if (typeof rangesOut === 'string') {
    // The default (<calibration>/ranges.json) is a cache of the calibration set and is rewritten
    // on every run; a path the user names is theirs and is only replaced with --force.
    await checkOutputs(
      values,
      [{ flag: 'ranges-out', path: rangesOut }],
      [
        { what: 'the model package', path: model, enclosing: true },
        { what: 'the calibration index', path: join(calibration, 'frames.json') },
      ],
    );
  }
  const options = {
    model,
    calibration,
    evaluator: flow ? flowTabletopEvaluator() : tabletopEvaluator(),
    method: choice<CalibrationMethod>(values, 'method', ['minmax', 'percentile'], 'minmax'),
    mode: choice<CompressMode>(values, 'mode', ['static', 'dynamic', 'fp16'], 'static'),
    ...(Array.isArray(exclude) ? { exclude: exclude.flatMap((e) => e.split(',')) } : {}),
    batchSize: Math.max(1, number(values, 'batch-size', 32, true)),
    heldOut: Math.max(1, number(values, 'held-out', 100, true)),
    episodes: Math.max(1, number(values, 'episodes', 100, true)),
    seed: number(values, 'seed', 1, true),
    errorThreshold: number(values, 'error-threshold', 0.02),
    successTolerance: number(values, 'success-tolerance', 3),
    latencyRounds: Math.max(2, number(values, 'latency-rounds', 400, true)),
    ...(typeof values['ranges-out'] === 'string' ? { rangesOut: values['ranges-out'] } : {}),
    progress: (line: string) => {
      io.progress(line);
    },
  };
  if (flow) {
    const report = await compressFlowPackage(options);
    io.result(report, flowSummary(report));
    return 0;
  }
  const report = await compressPackage(options);
  io.result(report, summary(report));
  return 0;
}

export const compressCommand: CommandSpec = {
  name: 'compress',
  summary:
    'quantize a model package (encoder + policy, or a flow package: all four graphs) to INT8 (QDQ static or dynamic) with a calibration set, or convert it to FP16 for GPU providers, validate it against fp32 and add the variant to the manifest',
  options: {
    model: {
      type: 'string',
      default: 'models/tiny-vla',
      help: 'model package folder (format v1, or v2 flow such as models/tiny-vla-flow)',
    },
    calibration: {
      type: 'string',
      help: 'calibration set folder (frames.json + PNG frames), e.g. calibration/tiny-vla; a flow package needs a frame of every camera it names (record one with --record --model)',
    },
    method: {
      type: 'string',
      default: 'minmax',
      help: 'activation ranges of static INT8: minmax|percentile',
    },
    mode: {
      type: 'string',
      help: 'static (INT8 QDQ weights + activations; the default) | dynamic (int8 weights, activations quantized at run time: DynamicQuantizeLinear + MatMulInteger) | fp16 (float16 weights and compute for CUDA/TensorRT, float32 inputs and outputs; the calibration set checks the activation range). An autoregressive package: dynamic only, no calibration set',
    },
    exclude: {
      type: 'string',
      multiple: true,
      help: `what stays in float, comma-separated, replacing the defaults; "none" keeps nothing. static|dynamic: node names (default: patch embedding Conv, action head MatMul; flow: patch embedding, the expert's noisy-chunk input and velocity head). fp16: operator types or node names kept in float32 (default: ${DEFAULT_FP16_KEEP_OPS.join(', ')}; flow: also the nodes whose activations leave the float16 range on the calibration set). Flow packages: role:node names a node of one graph (encoder, instruction, prefix, expert)`,
    },
    'batch-size': { type: 'string', default: '32', help: 'calibration frames per batch' },
    'held-out': {
      type: 'string',
      default: '100',
      help: 'held-out simulator frames for the action error',
    },
    episodes: { type: 'string', default: '100', help: 'closed-loop episodes per variant' },
    seed: {
      type: 'string',
      help: 'seed of the closed-loop episodes, default 1 (with --record: of the recorded episodes, default 7)',
    },
    'error-threshold': {
      type: 'string',
      default: '0.02',
      help: 'gate: mean absolute action error per dimension (table units)',
    },
    'success-tolerance': {
      type: 'string',
      default: '3',
      help: 'gate: allowed success drop in points',
    },
    'latency-rounds': { type: 'string', default: '400', help: 'timed runs per variant' },
    'chunk-agreement': {
      type: 'string',
      help: "gate of an autoregressive package: fraction of held-out chunks whose greedy tokens equal fp32's (default 0.9)",
    },
    'ranges-out': {
      type: 'string',
      help: 'where the calibrated ranges (JSON) go (default: <calibration>/ranges.json, rewritten each run; a named file that exists needs --force)',
    },
    ...FORCE_OPTION,
    record: {
      type: 'string',
      help: 'instead of compressing, record this many simulator frames as a new calibration set in --calibration (of every camera --model names: table and wrist for a flow package)',
    },
  },
  run: runCompress,
};
