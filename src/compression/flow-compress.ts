/**
 * `compress` for flow-matching packages (format v2): the four graphs quantized to INT8 (static QDQ
 * calibrated on the inputs FlowPolicy feeds each graph, or dynamic) or converted to FP16, the
 * variant validated against fp32 through FlowPolicy (same observations, same noise) and in the
 * closed loop, then added to the manifest with its report.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import {
  FLOW_ROLES,
  loadFlowPackage,
  selectFlowVariant,
  type FlowPackage,
  type FlowRole,
  type FlowVariant,
} from '../model/flow-manifest.js';
import type { ModelFile, Precision } from '../model/manifest.js';
import { encodeOnnx, graphOf, loadOnnx, type ModelProto } from '../util/onnx-graph.js';
import { round } from '../util/stats.js';
import { prepareFlowSamples, readCalibrationSet, type FlowSample } from './calibration.js';
import { addCompressedVariant } from './add-variant.js';
import { sha256Bytes } from '../model/files.js';
import { convertedStats, largestPeak, nodeOutputs, overFp16Max } from './fp16-details.js';
import { byRole } from '../util/roles.js';
import { convertToFloat16, DEFAULT_FP16_KEEP_OPS } from './fp16.js';
import { emulateFloat16, floatActivations } from './fp16-emulate.js';
import { FP16_KNOWN_OPS } from './fp16-types.js';
import type {
  FlowCalibration,
  FlowCompressionReport,
  FlowFp16Report,
  FlowInt8Report,
  FlowSimStageMs,
  FlowStageMs,
  FlowValidationSections,
} from './flow-report.js';
import { flowReportMarkdown } from './flow-report.js';
import { FP16_KIND } from './report-common.js';
import {
  flowActionError,
  flowLatency,
  flowPeaks,
  flowRanges,
  type CaptureStats,
} from './flow-runner.js';
import type { ActionError } from './action-error.js';
import {
  cpuName,
  emulatedActionError,
  fp16Reasons,
  reportSections,
  runClosedLoop,
  writeScratchPackage,
  type CommonMeasurement,
} from './validation.js';
import type { CompressedPrecision, CompressOptions } from './options.js';
import {
  defaultExclusions,
  planQuantization,
  quantizeModel,
  type QuantMode,
  type QuantTarget,
  type Range,
} from './quantize.js';

export * from './flow-report.js';

type PerRole<T> = Record<FlowRole, T>;

function perRole<T>(f: (role: FlowRole) => T): PerRole<T> {
  return byRole(FLOW_ROLES, f);
}

/** Seed base of the calibration noise (held-out observations use the gate's seed). */
const CALIBRATION_NOISE_SEED = 0xca11;

/**
 * What stays in float by default, per graph:
 * - encoder: the patch embedding Conv (as in v1: raw normalised pixels, 3 input channels);
 * - instruction, prefix: nothing (their outputs are keys/values the expert reads, and each
 *   quantized MatMul keeps a float output);
 * - expert: its first weight node (the noisy chunk's input projection: its input runs from pure
 *   noise at t = 0 to the actions at t = 1, so one per-tensor range over all times is coarse where
 *   the last steps need precision) and its last (the velocity head: the Euler integration adds its
 *   error into the chunk at every step).
 */
export function flowDefaultExclusions(graphs: Readonly<PerRole<ModelProto>>): PerRole<string[]> {
  const expert = graphOf(graphs.expert);
  const inits = new Set(expert.initializer.map((t) => t.name));
  const weighted = expert.node.filter(
    (n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && inits.has(n.input[1] ?? ''),
  );
  const first = weighted[0]?.name;
  const last = weighted[weighted.length - 1]?.name;
  return {
    encoder: defaultExclusions(graphs.encoder, 'encoder'),
    instruction: [],
    prefix: [],
    expert: [...new Set([first, last].filter((n): n is string => n !== undefined))],
  };
}

/**
 * `--exclude` entries split by graph: `role:node` names a node of one graph, a bare `node` every
 * graph that has it; a bare operator type (FP16 only, `opTypes`) applies to every graph.
 * @throws {InputError} naming `exclude` for an entry that matches nothing.
 */
export function splitFlowExclusions(
  graphs: Readonly<PerRole<ModelProto>>,
  exclude: readonly string[],
  opTypes: ReadonlySet<string> = new Set(),
): { nodes: PerRole<string[]>; ops: string[] } {
  const names = perRole((r) => new Set(graphOf(graphs[r]).node.map((n) => n.name)));
  const nodes = perRole<string[]>(() => []);
  const ops: string[] = [];
  const missing: string[] = [];
  for (const entry of exclude) {
    if (entry === 'none') continue;
    const colon = entry.indexOf(':');
    const role = colon > 0 ? entry.slice(0, colon) : '';
    if ((FLOW_ROLES as readonly string[]).includes(role)) {
      const name = entry.slice(colon + 1);
      if (names[role as FlowRole].has(name)) nodes[role as FlowRole].push(name);
      else missing.push(entry);
      continue;
    }
    const owners = FLOW_ROLES.filter((r) => names[r].has(entry));
    for (const r of owners) nodes[r].push(entry);
    if (owners.length > 0) continue;
    if (opTypes.has(entry)) ops.push(entry);
    else missing.push(entry);
  }
  if (missing.length > 0) {
    throw new InputError(
      `Expected --exclude to name nodes of the graphs (role:node for one graph, roles ${FLOW_ROLES.join(', ')})${opTypes.size > 0 ? ' or operator types the fp16 converter knows' : ''} but ${missing.map((m) => JSON.stringify(m)).join(', ')} ${missing.length === 1 ? 'is' : 'are'} neither`,
      { field: 'exclude' },
    );
  }
  return { nodes, ops };
}

type FlowBuilt =
  | {
      readonly precision: 'int8';
      readonly bytes: PerRole<Uint8Array>;
      readonly details: Pick<FlowInt8Report, 'mode' | 'method' | 'excluded' | 'quantized_nodes'>;
      readonly ranges: PerRole<Map<string, Range>>;
      readonly capture: CaptureStats | null;
    }
  | {
      readonly precision: 'fp16';
      readonly bytes: PerRole<Uint8Array>;
      readonly emulated: PerRole<Uint8Array>;
      readonly details: Pick<FlowFp16Report, 'kept_fp32' | 'converted' | 'activations'>;
      readonly capture: CaptureStats;
    };

async function buildInt8(
  pkg: FlowPackage,
  graphs: Readonly<PerRole<ModelProto>>,
  samples: readonly FlowSample[],
  options: CompressOptions & { readonly mode: QuantMode },
): Promise<FlowBuilt> {
  const excluded =
    options.exclude === undefined
      ? flowDefaultExclusions(graphs)
      : splitFlowExclusions(graphs, options.exclude).nodes;
  const targets: PerRole<QuantTarget[]> = perRole((r) =>
    planQuantization(graphs[r], new Set(excluded[r]), `graphs.${r}`),
  );
  options.progress(
    `quantizing ${FLOW_ROLES.map((r) => `${targets[r].length} ${r}`).join(', ')} weight nodes (${options.mode}); kept in float: ${FLOW_ROLES.flatMap((r) => excluded[r].map((n) => `${r}:${n}`)).join(', ') || 'none'}`,
  );
  let ranges: PerRole<Map<string, Range>> = perRole(() => new Map());
  let capture: CaptureStats | null = null;
  if (options.mode === 'static') {
    const names = perRole((r) => [...new Set(targets[r].map((t) => t.activation))]);
    const result = await flowRanges(
      pkg,
      graphs,
      names,
      samples,
      options.method,
      CALIBRATION_NOISE_SEED,
      options.batchSize,
      options.progress,
    );
    ranges = result.ranges;
    capture = result.stats;
  }
  return {
    precision: 'int8',
    bytes: perRole((r) =>
      encodeOnnx(quantizeModel(graphs[r], targets[r], options.mode, ranges[r])),
    ),
    details: {
      mode: options.mode,
      method: options.mode === 'static' ? options.method : null,
      excluded,
      quantized_nodes: perRole((r) => targets[r].length),
    },
    ranges,
    capture,
  };
}

/**
 * FP16: by default (no `--exclude`) the operator types of {@link DEFAULT_FP16_KEEP_OPS} and every
 * node whose fp32 output left the float16 range on the calibration inputs stay float32 (a flow
 * prefix builds its attention mask from float32's lowest value, which float16 cannot hold).
 */
async function buildFp16(
  pkg: FlowPackage,
  graphs: Readonly<PerRole<ModelProto>>,
  samples: readonly FlowSample[],
  options: CompressOptions,
): Promise<FlowBuilt> {
  const names = perRole((r) => floatActivations(graphs[r], `graphs.${r}`));
  const { peaks, stats } = await flowPeaks(
    pkg,
    graphs,
    names,
    samples,
    CALIBRATION_NOISE_SEED,
    options.batchSize,
    options.progress,
  );
  const overRange = perRole((r) => {
    const over = new Set(overFp16Max(peaks[r]));
    return graphOf(graphs[r])
      .node.filter((n) => n.output.some((o) => over.has(o)))
      .map((n) => n.name);
  });
  let keepOps: string[] = [...DEFAULT_FP16_KEEP_OPS];
  let keepNodes: PerRole<string[]> = overRange;
  let forRange: PerRole<string[]> = overRange;
  if (options.exclude !== undefined) {
    const split = splitFlowExclusions(graphs, options.exclude, FP16_KNOWN_OPS);
    keepOps = split.ops;
    keepNodes = split.nodes;
    forRange = perRole(() => []);
  }
  const converted = perRole((r) =>
    convertToFloat16(
      graphs[r],
      { keepOps: new Set(keepOps), keepNodes: new Set(keepNodes[r]) },
      `graphs.${r}`,
    ),
  );
  const fp32Nodes = perRole((r) => converted[r].stats.fp32_nodes);
  options.progress(
    `converting to float16: ${FLOW_ROLES.map((r) => `${converted[r].stats.fp16_nodes} ${r}`).join(', ')} nodes; kept in float32: ${FLOW_ROLES.flatMap((r) => fp32Nodes[r].map((n) => `${r}:${n}`)).join(', ') || 'none'}`,
  );
  const over = FLOW_ROLES.flatMap((r) =>
    overFp16Max(peaks[r], new Set(nodeOutputs(graphs[r], fp32Nodes[r]))).map((n) => `${r}:${n}`),
  );
  return {
    precision: 'fp16',
    bytes: perRole((r) => encodeOnnx(converted[r].model)),
    emulated: perRole((r) => encodeOnnx(emulateFloat16(converted[r].model, `graphs.${r}`))),
    details: {
      kept_fp32: { ops: keepOps, nodes: fp32Nodes, for_range: forRange },
      converted: perRole((r) => convertedStats(converted[r].stats)),
      activations: { max_abs: perRole((r) => largestPeak(peaks[r])), over_fp16_max: over },
    },
    capture: stats,
  };
}

/** A scratch package holding the fp32 variant and `variant` with `bytes` as its graphs. */
async function scratchPackage(
  pkg: FlowPackage,
  dir: string,
  variant: FlowVariant,
  bytes: Readonly<PerRole<Uint8Array>>,
): Promise<FlowPackage> {
  const fp32 = selectFlowVariant(pkg, 'fp32');
  await writeScratchPackage(dir, FLOW_ROLES, { source: pkg, fp32, variant, bytes });
  return loadFlowPackage(dir);
}

interface FlowMeasurement extends CommonMeasurement<FlowSimStageMs> {
  readonly emulated?: ActionError;
  readonly latency: { readonly fp32: FlowStageMs; readonly variant: FlowStageMs };
}

async function measureFlow(
  pkg: FlowPackage,
  variant: FlowVariant,
  built: FlowBuilt,
  options: CompressOptions,
  work: string,
): Promise<FlowMeasurement> {
  const progress = options.progress;
  const scratchDir = join(work, 'package');
  const scratch = await scratchPackage(pkg, scratchDir, variant, built.bytes);
  const seed = (options.seed + 0x5eed) >>> 0;
  const heldOut = await prepareFlowSamples(
    pkg,
    options.evaluator.heldOut(
      options.heldOut,
      seed,
      pkg.manifest.cameras.map((c) => c.name),
    ),
  );
  const precision: Precision = variant.precision;
  progress(`action error on ${heldOut.length} held-out observations (FlowPolicy, same noise)...`);
  const error = await flowActionError(scratch, scratch, precision, heldOut, seed);
  let emulated: ActionError | undefined;
  if (built.precision === 'fp16') {
    // The same file names holding the emulated graphs, hashed as they are.
    const emuBytes = built.emulated;
    const emuVariant: FlowVariant = {
      ...variant,
      files: perRole((r): ModelFile => ({
        path: variant.files[r].path,
        sha256: sha256Bytes(emuBytes[r]),
      })),
    };
    const emu = await scratchPackage(pkg, join(work, 'emulated'), emuVariant, emuBytes);
    emulated = await flowActionError(emu, emu, precision, heldOut, seed);
  }
  progress(`latency: ${options.latencyRounds} inferences per variant, one thread...`);
  const latency = await flowLatency(scratch, precision, heldOut, options.latencyRounds);
  const closed = {
    fp32: await closedLoop(scratchDir, 'fp32', options),
    variant: await closedLoop(scratchDir, precision, options),
  };
  const fp32 = selectFlowVariant(pkg, 'fp32');
  let fp32Size = 0;
  for (const r of FLOW_ROLES) fp32Size += (await readFile(fp32.paths[r])).length;
  return {
    frames: heldOut.length,
    ...error,
    ...(emulated === undefined ? {} : { emulated }),
    latency,
    closed,
    size: {
      fp32: fp32Size,
      variant: FLOW_ROLES.reduce((n, r) => n + built.bytes[r].length, 0),
    },
  };
}

/** The closed-loop score with the stage means rounded for the report. */
async function closedLoop(
  dir: string,
  precision: Precision,
  options: CompressOptions,
): Promise<{ rate: number; stages: FlowSimStageMs }> {
  const score = await runClosedLoop(dir, precision, options);
  return {
    rate: score.rate,
    stages: { encode: round(score.stages.encode, 4), policy: round(score.stages.policy, 4) },
  };
}

function validation<P extends CompressedPrecision>(
  precision: P,
  pkg: FlowPackage,
  m: FlowMeasurement,
  options: CompressOptions,
  extraReasons: readonly string[],
): FlowValidationSections<P> {
  const ratio = Object.fromEntries(
    (Object.keys(m.latency.fp32) as (keyof FlowStageMs)[]).map((k) => [
      k,
      round(m.latency.variant[k] / m.latency.fp32[k], 3),
    ]),
  ) as FlowStageMs;
  const sections = reportSections(precision, m, options, extraReasons, {
    names: pkg.manifest.action.names,
    steps: pkg.manifest.denoising.steps,
    stageKey: 'sim_stage_mean_ms',
    latency: {
      cpu: cpuName(),
      threads: 1,
      steps: pkg.manifest.denoising.steps,
      fp32_p50_ms: m.latency.fp32,
      [`${precision}_p50_ms`]: m.latency.variant,
      ratio,
    },
  });
  // Computed keys (`${precision}_success_rate`) are typed by FlowValidationSections<P>.
  return sections as unknown as FlowValidationSections<P>;
}

/**
 * Compress a flow package (format v2) and add the variant to it; see {@link compressPackage} for
 * the encoder + policy family. The calibration set needs a frame of every camera the package
 * names. Nothing in the package changes unless every step succeeded.
 *
 * @throws {InputError} for a calibration set that lacks a camera (naming
 *   `calibration.frames[i].images.<camera>`), or a bad `--exclude`.
 */
export async function compressFlowPackage(
  options: CompressOptions,
): Promise<FlowCompressionReport> {
  const pkg = await loadFlowPackage(options.model);
  const fp32 = selectFlowVariant(pkg, 'fp32');
  const samples = await prepareFlowSamples(pkg, await readCalibrationSet(options.calibration));
  const graphs = {} as PerRole<ModelProto>;
  for (const r of FLOW_ROLES)
    graphs[r] = await loadOnnx(fp32.paths[r], `manifest.variants.fp32.files.${r}`);
  const mode = options.mode;
  const built =
    mode === 'fp16'
      ? await buildFp16(pkg, graphs, samples, options)
      : await buildInt8(pkg, graphs, samples, { ...options, mode });
  return addCompressedVariant({
    dir: pkg.dir,
    roles: FLOW_ROLES,
    fp32Files: fp32.files,
    precision: built.precision,
    bytes: built.bytes,
    options,
    scratchPrefix: 'vla-compress-flow-',
    calibrated:
      built.precision === 'int8' && mode === 'static'
        ? { model: pkg.manifest.name, frames: samples.length, ranges: built.ranges }
        : undefined,
    markdown: flowReportMarkdown,
    validate: async (variant, work): Promise<FlowCompressionReport> => {
      const m = await measureFlow(pkg, variant, built, options, work);
      const capture = built.capture;
      const calibration: FlowCalibration = {
        dir: options.calibration,
        frames: samples.length,
        cameras: pkg.manifest.cameras.map((c) => c.name),
        graph_runs: capture?.runs ?? perRole(() => 0),
        expert_times: capture?.times ?? [],
        steps: pkg.manifest.denoising.steps,
      };
      const head = {
        format: 'vla-node/compression-report@1',
        family: 'flow',
        variant: variant.name,
        calibration,
      } as const;
      return built.precision === 'fp16'
        ? {
            ...head,
            ...FP16_KIND,
            ...built.details,
            emulated_action_error: emulatedActionError(m.emulated),
            ...validation(
              'fp16',
              pkg,
              m,
              options,
              fp16Reasons(built.details.activations.over_fp16_max, m.emulated, options),
            ),
          }
        : {
            ...head,
            precision: 'int8',
            ...built.details,
            ...validation('int8', pkg, m, options, []),
          };
    },
  });
}
