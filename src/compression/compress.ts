import { createHash } from 'node:crypto';
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config/index.js';
import { InputError } from '../errors.js';
import {
  loadModelPackage,
  selectVariant,
  type GraphRole,
  type Manifest,
  type ModelPackage,
  type Variant,
} from '../model/manifest.js';
import { simulate } from '../cli/sim.js';
import {
  prepareSamples,
  readCalibrationSet,
  simulatorSamples,
  type PreparedSample,
} from './calibration.js';
import { encodeOnnx, graphOf, loadOnnx, withExtraOutputs, type ModelProto } from './graph.js';
import {
  defaultExclusions,
  planQuantization,
  quantizeModel,
  type QuantMode,
  type QuantTarget,
  type Range,
} from './quantize.js';
import { GraphRunner, RangeCollector, type CalibrationMethod } from './runner.js';

export interface CompressOptions {
  readonly model: string;
  readonly calibration: string;
  readonly method: CalibrationMethod;
  readonly mode: QuantMode;
  /** Node names kept in float; undefined = the defaults (patch embedding, action head). */
  readonly exclude?: readonly string[];
  /** Frames per calibration batch (progress line per batch). */
  readonly batchSize: number;
  /** Held-out simulator frames for the action error. */
  readonly heldOut: number;
  /** Closed-loop episodes per variant and their seed. */
  readonly episodes: number;
  readonly seed: number;
  /** Gate: mean absolute action error (table units, worst dimension) must stay under this. */
  readonly errorThreshold: number;
  /** Gate: success may drop at most this many points. */
  readonly successTolerance: number;
  /** Latency rounds per variant. */
  readonly latencyRounds: number;
  /** Where the ranges JSON goes (default `<calibration>/ranges.json`, static mode only). */
  readonly rangesOut?: string;
  readonly progress: (line: string) => void;
}

export interface CompressionReport {
  readonly format: 'vla-node/compression-report@1';
  readonly variant: string;
  readonly precision: 'int8';
  readonly mode: QuantMode;
  readonly method: CalibrationMethod | null;
  readonly calibration: { readonly dir: string; readonly frames: number };
  readonly excluded: Readonly<Record<GraphRole, readonly string[]>>;
  readonly quantized_nodes: Readonly<Record<GraphRole, number>>;
  readonly action_error: {
    readonly frames: number;
    readonly names: readonly string[];
    readonly mean_abs: readonly number[];
    readonly max_abs: readonly number[];
    readonly threshold: number;
  };
  readonly closed_loop: {
    readonly episodes: number;
    readonly seed: number;
    readonly fp32_success_rate: number;
    readonly int8_success_rate: number;
    readonly tolerance_points: number;
    readonly sim_stage_p50_ms: Readonly<
      Record<'fp32' | 'int8', { encode: number; policy: number }>
    >;
  };
  readonly latency: {
    readonly cpu: string;
    readonly threads: 1;
    readonly fp32_p50_ms: { readonly encoder: number; readonly policy: number };
    readonly int8_p50_ms: { readonly encoder: number; readonly policy: number };
    readonly ratio: { readonly encoder: number; readonly policy: number; readonly total: number };
    /** Kernel time per operator type over the profiled runs (µs), slowest first. */
    readonly int8_top_ops_us: Readonly<Record<string, number>>;
    readonly fp32_top_ops_us: Readonly<Record<string, number>>;
  };
  readonly size_bytes: {
    readonly fp32: number;
    readonly int8: number;
    readonly ratio: number;
  };
  readonly gate: { readonly passed: boolean; readonly provider: 'cpu'; readonly reasons: string[] };
}

const ROLES: readonly GraphRole[] = ['encoder', 'policy'];

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const round = (v: number, digits = 4): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** Activation ranges of the targets, running the fp32 graphs with the activations as extra outputs. */
export async function calibrate(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  targets: Readonly<Record<GraphRole, readonly QuantTarget[]>>,
  samples: readonly PreparedSample[],
  method: CalibrationMethod,
  batchSize: number,
  progress: (line: string) => void,
): Promise<Record<GraphRole, Map<string, Range>>> {
  const names = {
    encoder: [...new Set(targets.encoder.map((t) => t.activation))],
    policy: [...new Set(targets.policy.map((t) => t.activation))],
  };
  const runner = await GraphRunner.create(
    pkg,
    encodeOnnx(withExtraOutputs(graphs.encoder, names.encoder)),
    encodeOnnx(withExtraOutputs(graphs.policy, names.policy)),
  );
  const collectors = {
    encoder: new RangeCollector(method),
    policy: new RangeCollector(method),
  };
  try {
    for (let start = 0; start < samples.length; start += batchSize) {
      const batch = samples.slice(start, start + batchSize);
      for (const s of batch) {
        const out = await runner.run(s);
        for (const role of ROLES) {
          for (const name of names[role]) {
            const data = out[role][name]?.data;
            if (data instanceof Float32Array) collectors[role].add(name, data);
          }
        }
      }
      progress(
        `calibrating (${method}): ${Math.min(start + batchSize, samples.length)}/${samples.length} frames`,
      );
    }
  } finally {
    await runner.release();
  }
  return { encoder: collectors.encoder.ranges(), policy: collectors.policy.ranges() };
}

/** Kernel time per operator type (µs) over `runs` profiled passes, slowest first. */
async function profileOps(
  pkg: ModelPackage,
  encoder: string,
  policy: string,
  samples: readonly PreparedSample[],
  runs: number,
  dir: string,
): Promise<Record<string, number>> {
  const prefix = join(dir, `profile-${Math.random().toString(36).slice(2)}`);
  const runner = await GraphRunner.create(pkg, encoder, policy, {
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  try {
    for (let i = 0; i < runs; i++) {
      const s = samples[i % samples.length];
      if (s !== undefined) await runner.run(s);
    }
    runner.encoder.endProfiling();
    runner.policy.endProfiling();
  } finally {
    await runner.release();
  }
  const totals = new Map<string, number>();
  const base = prefix.slice(dir.length + 1);
  for (const f of await readdir(dir)) {
    if (!f.startsWith(base)) continue;
    const events = JSON.parse(await readFile(join(dir, f), 'utf8')) as {
      cat?: string;
      name?: string;
      dur?: number;
      args?: { op_name?: string };
    }[];
    for (const e of events) {
      if (e.cat !== 'Node' || !(e.name ?? '').endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? '?';
      totals.set(op, (totals.get(op) ?? 0) + (e.dur ?? 0));
    }
  }
  return Object.fromEntries([...totals].sort((a, b) => b[1] - a[1]).slice(0, 8));
}

/** The variant's name and file names for a mode. */
export function variantNames(mode: QuantMode): { name: string; suffix: string } {
  return mode === 'static'
    ? { name: 'int8', suffix: 'int8' }
    : { name: 'int8-dynamic', suffix: 'int8-dynamic' };
}

function checkExclusions(
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  exclude: readonly string[],
): void {
  const known = new Set(ROLES.flatMap((r) => graphOf(graphs[r]).node.map((n) => n.name)));
  const missing = exclude.filter((e) => !known.has(e));
  if (missing.length > 0) {
    throw new InputError(
      `Expected --exclude to name nodes of the graphs but ${missing.map((m) => JSON.stringify(m)).join(', ')} are not nodes`,
      { field: 'exclude' },
    );
  }
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<string> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  return tmp;
}

/**
 * Quantize a model package with a calibration set, validate the INT8 variant against fp32 and
 * add it to the package. Everything is written to temporary files first; the package's files
 * and manifest change only once all steps succeeded.
 */
export async function compressPackage(options: CompressOptions): Promise<CompressionReport> {
  const progress = options.progress;
  const pkg = await loadModelPackage(options.model);
  const fp32 = selectVariant(pkg, 'fp32');
  const samples = await prepareSamples(pkg, await readCalibrationSet(options.calibration));
  const graphs = {
    encoder: await loadOnnx(fp32.paths.encoder, 'manifest.variants.fp32.files.encoder'),
    policy: await loadOnnx(fp32.paths.policy, 'manifest.variants.fp32.files.policy'),
  };
  const excluded = {
    encoder: defaultExclusions(graphs.encoder, 'encoder'),
    policy: defaultExclusions(graphs.policy, 'policy'),
  };
  if (options.exclude !== undefined) {
    const ex = options.exclude.filter((e) => e !== 'none');
    checkExclusions(graphs, ex);
    const enc = new Set(graphOf(graphs.encoder).node.map((n) => n.name));
    excluded.encoder = ex.filter((e) => enc.has(e));
    excluded.policy = ex.filter((e) => !enc.has(e));
  }
  const targets = {
    encoder: planQuantization(graphs.encoder, new Set(excluded.encoder), 'graphs.encoder'),
    policy: planQuantization(graphs.policy, new Set(excluded.policy), 'graphs.policy'),
  };
  progress(
    `quantizing ${targets.encoder.length} encoder and ${targets.policy.length} policy weight nodes (${options.mode}); kept in float: ${[...excluded.encoder, ...excluded.policy].join(', ') || 'none'}`,
  );

  let ranges: Record<GraphRole, Map<string, Range>> = { encoder: new Map(), policy: new Map() };
  if (options.mode === 'static') {
    ranges = await calibrate(
      pkg,
      graphs,
      targets,
      samples,
      options.method,
      options.batchSize,
      progress,
    );
  }
  const bytes = {
    encoder: encodeOnnx(
      quantizeModel(graphs.encoder, targets.encoder, options.mode, ranges.encoder),
    ),
    policy: encodeOnnx(quantizeModel(graphs.policy, targets.policy, options.mode, ranges.policy)),
  };
  const { name, suffix } = variantNames(options.mode);
  const files = {
    encoder: fp32.files.encoder.path.replace(/\.onnx$/, `.${suffix}.onnx`),
    policy: fp32.files.policy.path.replace(/\.onnx$/, `.${suffix}.onnx`),
  };
  const reportPath = `reports/${name}.json`;
  const variant: Variant = {
    name,
    precision: 'int8',
    files: {
      encoder: { path: files.encoder, sha256: sha256(bytes.encoder) },
      policy: { path: files.policy, sha256: sha256(bytes.policy) },
    },
    report: reportPath,
    providers: ['cpu'],
  };

  const work = await mkdtemp(join(tmpdir(), 'vla-compress-'));
  try {
    // A scratch package holding fp32 and the new variant, so closed-loop validation runs the real pipeline.
    const scratch = join(work, 'package');
    await mkdir(scratch);
    const manifest: Manifest = { ...pkg.manifest, variants: [fp32Variant(pkg), variant] };
    await writeFile(join(scratch, 'manifest.json'), JSON.stringify(manifest, null, 2));
    await copyFile(
      join(pkg.dir, pkg.manifest.tokenizer.file),
      join(scratch, pkg.manifest.tokenizer.file),
    );
    for (const role of ROLES) {
      await copyFile(fp32.paths[role], join(scratch, fp32.files[role].path));
      await writeFile(join(scratch, files[role]), bytes[role]);
    }

    const heldOut = await prepareSamples(
      pkg,
      simulatorSamples(options.heldOut, (options.seed + 0x5eed) >>> 0, 3),
    );
    progress(`action error on ${heldOut.length} held-out frames...`);
    const reference = await GraphRunner.create(pkg, fp32.paths.encoder, fp32.paths.policy);
    const quant = await GraphRunner.create(
      pkg,
      join(scratch, files.encoder),
      join(scratch, files.policy),
    );
    const a = pkg.manifest.chunk.action_dim;
    const sum = new Float64Array(a);
    const max = new Float64Array(a);
    let count = 0;
    let lat: {
      fp32: { encoder: number; policy: number };
      int8: { encoder: number; policy: number };
    };
    try {
      for (const s of heldOut) {
        const r = (await reference.run(s)).actions;
        const q = (await quant.run(s)).actions;
        for (let j = 0; j < r.length; j++) {
          const e = Math.abs((r[j] as number) - (q[j] as number));
          sum[j % a] = (sum[j % a] as number) + e;
          max[j % a] = Math.max(max[j % a] as number, e);
        }
        count += r.length / a;
      }
      progress(`latency: ${options.latencyRounds} rounds per variant, one thread...`);
      await reference.latency(heldOut, 20);
      await quant.latency(heldOut, 20);
      // Interleave the two variants so background load hits both alike.
      const half = Math.max(1, Math.floor(options.latencyRounds / 2));
      const f1 = await reference.latency(heldOut, half);
      const q1 = await quant.latency(heldOut, half);
      const q2 = await quant.latency(heldOut, half);
      const f2 = await reference.latency(heldOut, half);
      lat = {
        fp32: { encoder: (f1.encoder + f2.encoder) / 2, policy: (f1.policy + f2.policy) / 2 },
        int8: { encoder: (q1.encoder + q2.encoder) / 2, policy: (q1.policy + q2.policy) / 2 },
      };
    } finally {
      await Promise.all([reference.release(), quant.release()]);
    }
    const profiles = {
      fp32: await profileOps(pkg, fp32.paths.encoder, fp32.paths.policy, heldOut, 50, work),
      int8: await profileOps(
        pkg,
        join(scratch, files.encoder),
        join(scratch, files.policy),
        heldOut,
        50,
        work,
      ),
    };

    const closed = {
      fp32: await closedLoop(scratch, 'fp32', options, progress),
      int8: await closedLoop(scratch, 'int8', options, progress),
    };

    const meanAbs = [...sum].map((v) => round(v / Math.max(1, count), 5));
    const maxAbs = [...max].map((v) => round(v, 5));
    const reasons: string[] = [];
    const worst = Math.max(...meanAbs);
    if (!(worst < options.errorThreshold))
      reasons.push(`mean action error ${worst} is not under ${options.errorThreshold}`);
    const drop = 100 * (closed.fp32.rate - closed.int8.rate);
    if (drop > options.successTolerance)
      reasons.push(
        `success dropped ${round(drop, 1)} points (fp32 ${100 * closed.fp32.rate}%, int8 ${100 * closed.int8.rate}%), more than ${options.successTolerance}`,
      );
    const size = {
      fp32:
        (await readFile(fp32.paths.encoder)).length + (await readFile(fp32.paths.policy)).length,
      int8: bytes.encoder.length + bytes.policy.length,
    };
    const totalRatio = (lat.int8.encoder + lat.int8.policy) / (lat.fp32.encoder + lat.fp32.policy);
    const report: CompressionReport = {
      format: 'vla-node/compression-report@1',
      variant: name,
      precision: 'int8',
      mode: options.mode,
      method: options.mode === 'static' ? options.method : null,
      calibration: { dir: options.calibration, frames: samples.length },
      excluded,
      quantized_nodes: { encoder: targets.encoder.length, policy: targets.policy.length },
      action_error: {
        frames: heldOut.length,
        names: pkg.manifest.action.names,
        mean_abs: meanAbs,
        max_abs: maxAbs,
        threshold: options.errorThreshold,
      },
      closed_loop: {
        episodes: options.episodes,
        seed: options.seed,
        fp32_success_rate: closed.fp32.rate,
        int8_success_rate: closed.int8.rate,
        tolerance_points: options.successTolerance,
        sim_stage_p50_ms: { fp32: closed.fp32.stages, int8: closed.int8.stages },
      },
      latency: {
        cpu: cpuName(),
        threads: 1,
        fp32_p50_ms: { encoder: round(lat.fp32.encoder), policy: round(lat.fp32.policy) },
        int8_p50_ms: { encoder: round(lat.int8.encoder), policy: round(lat.int8.policy) },
        ratio: {
          encoder: round(lat.int8.encoder / lat.fp32.encoder, 3),
          policy: round(lat.int8.policy / lat.fp32.policy, 3),
          total: round(totalRatio, 3),
        },
        int8_top_ops_us: profiles.int8,
        fp32_top_ops_us: profiles.fp32,
      },
      size_bytes: { ...size, ratio: round(size.int8 / size.fp32, 3) },
      gate: { passed: reasons.length === 0, provider: 'cpu', reasons },
    };

    // Commit: every file goes to a temporary name next to its target, then all are renamed.
    const staged: [string, string][] = [];
    try {
      await mkdir(join(pkg.dir, 'reports'), { recursive: true });
      for (const role of ROLES) {
        const target = join(pkg.dir, files[role]);
        staged.push([await writeAtomic(target, bytes[role]), target]);
      }
      const jsonTarget = join(pkg.dir, reportPath);
      staged.push([
        await writeAtomic(jsonTarget, `${JSON.stringify(report, null, 2)}\n`),
        jsonTarget,
      ]);
      const mdTarget = jsonTarget.replace(/\.json$/, '.md');
      staged.push([await writeAtomic(mdTarget, reportMarkdown(report)), mdTarget]);
      if (options.mode === 'static') {
        const rangesTarget = options.rangesOut ?? join(options.calibration, 'ranges.json');
        await mkdir(dirname(rangesTarget), { recursive: true });
        const json = {
          format: 'vla-node/calibration-ranges@1',
          model: pkg.manifest.name,
          method: options.method,
          frames: samples.length,
          encoder: Object.fromEntries(ranges.encoder),
          policy: Object.fromEntries(ranges.policy),
        };
        staged.push([
          await writeAtomic(rangesTarget, `${JSON.stringify(json, null, 2)}\n`),
          rangesTarget,
        ]);
      }
      const manifestPath = join(pkg.dir, 'manifest.json');
      const text = await readFile(manifestPath, 'utf8');
      const variants = [...(JSON.parse(text) as { variants: Variant[] }).variants];
      const at = variants.findIndex((v) => v.name === name);
      if (at >= 0) variants[at] = variant;
      else variants.push(variant);
      staged.push([await writeAtomic(manifestPath, withVariants(text, variants)), manifestPath]);
    } catch (error) {
      await Promise.all(staged.map(([tmp]) => rm(tmp, { force: true })));
      throw error;
    }
    for (const [tmp, target] of staged) await rename(tmp, target);
    return report;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The manifest text with its top-level `variants` array replaced, leaving every other byte as it
 * was (numbers such as `0.0` keep their spelling).
 */
export function withVariants(text: string, variants: readonly Variant[]): string {
  const key = text.indexOf('"variants"');
  const open = key < 0 ? -1 : text.indexOf('[', key);
  let close = -1;
  if (open >= 0) {
    let depth = 0;
    let inString = false;
    for (let i = open; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '[' || c === '{') depth++;
      else if (c === ']' || c === '}') {
        depth--;
        if (depth === 0) {
          close = i;
          break;
        }
      }
    }
  }
  if (close < 0) {
    const raw = JSON.parse(text) as Record<string, unknown>;
    return `${JSON.stringify({ ...raw, variants }, null, 2)}\n`;
  }
  const body = JSON.stringify(variants, null, 2).replace(/\n/g, '\n  ');
  return `${text.slice(0, open)}${body}${text.slice(close + 1)}`;
}

function fp32Variant(pkg: ModelPackage): Variant {
  const v = pkg.manifest.variants.find((x) => x.precision === 'fp32');
  if (v === undefined)
    throw new InputError('Expected an fp32 variant', { field: 'manifest.variants' });
  return v;
}

async function closedLoop(
  dir: string,
  precision: 'fp32' | 'int8',
  options: CompressOptions,
  progress: (line: string) => void,
): Promise<{ rate: number; stages: { encode: number; policy: number } }> {
  const config = await loadConfig({
    overrides: {
      'model.path': dir,
      'model.precision': precision,
      'sim.episodes': options.episodes,
      'sim.seed': options.seed,
      'pruning.strategy': 'none',
      'backend.execution_providers': ['cpu'],
    },
  });
  progress(`closed loop: ${options.episodes} episodes with ${precision}...`);
  const report = await simulate(config, 'model', () => undefined);
  const p = report.stage_percentiles_ms ?? {};
  return {
    rate: report.success_rate,
    stages: { encode: p.encode?.p50 ?? Number.NaN, policy: p.policy?.p50 ?? Number.NaN },
  };
}

function cpuName(): string {
  return cpus()[0]?.model.trim() ?? 'unknown';
}

export function reportMarkdown(r: CompressionReport): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  return [
    `# ${r.variant}: INT8 ${r.mode} quantization report`,
    '',
    `Gate (${r.gate.provider}): **${r.gate.passed ? 'passed' : 'failed'}**${r.gate.reasons.length > 0 ? ` — ${r.gate.reasons.join('; ')}` : ''}`,
    '',
    `- Calibration: ${r.calibration.frames} frames from \`${r.calibration.dir}\`, method ${r.method ?? 'n/a (dynamic: activations quantized at run time by DynamicQuantizeLinear, MatMulInteger)'}`,
    `- Quantized weight nodes: encoder ${r.quantized_nodes.encoder}, policy ${r.quantized_nodes.policy}; kept in float: ${[...r.excluded.encoder, ...r.excluded.policy].join(', ') || 'none'} (plus LayerNormalization, Softmax and activation×activation MatMuls)`,
    '',
    '## Action error against fp32',
    '',
    `${r.action_error.frames} held-out simulator frames (all visual tokens kept), table units:`,
    '',
    '| dimension | mean abs | max abs |',
    '|---|---|---|',
    ...r.action_error.names.map(
      (n, i) =>
        `| ${n} | ${String(r.action_error.mean_abs[i])} | ${String(r.action_error.max_abs[i])} |`,
    ),
    '',
    `Threshold on the mean: ${r.action_error.threshold}.`,
    '',
    '## Closed loop',
    '',
    `${r.closed_loop.episodes} episodes, seed ${r.closed_loop.seed}: fp32 ${pct(r.closed_loop.fp32_success_rate)}, int8 ${pct(r.closed_loop.int8_success_rate)} (tolerance ${r.closed_loop.tolerance_points} points).`,
    '',
    '## Latency and size on this CPU',
    '',
    `${r.latency.cpu}, one intra-op thread, p50 in ms, measured in one run:`,
    '',
    '| stage | fp32 | int8 | int8/fp32 |',
    '|---|---|---|---|',
    `| encoder | ${r.latency.fp32_p50_ms.encoder} | ${r.latency.int8_p50_ms.encoder} | ${r.latency.ratio.encoder} |`,
    `| policy | ${r.latency.fp32_p50_ms.policy} | ${r.latency.int8_p50_ms.policy} | ${r.latency.ratio.policy} |`,
    `| total | | | ${r.latency.ratio.total} |`,
    '',
    `In the closed loop (pipeline stage p50): fp32 encode ${r.closed_loop.sim_stage_p50_ms.fp32.encode} ms / policy ${r.closed_loop.sim_stage_p50_ms.fp32.policy} ms; int8 encode ${r.closed_loop.sim_stage_p50_ms.int8.encode} ms / policy ${r.closed_loop.sim_stage_p50_ms.int8.policy} ms.`,
    '',
    `File size: fp32 ${r.size_bytes.fp32} bytes, int8 ${r.size_bytes.int8} bytes (ratio ${r.size_bytes.ratio}).`,
    '',
    'Kernel time by operator over 50 profiled runs (µs, ORT `enableProfiling`):',
    '',
    `- int8: ${Object.entries(r.latency.int8_top_ops_us)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `- fp32: ${Object.entries(r.latency.fp32_top_ops_us)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    '',
  ].join('\n');
}
