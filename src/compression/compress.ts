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
import { InputError } from '../errors.js';
import {
  loadModelPackage,
  selectVariant,
  type GraphRole,
  type Manifest,
  type ModelPackage,
  type Precision,
  type Variant,
} from '../model/manifest.js';
import {
  prepareSamples,
  readCalibrationSet,
  type CalibrationSample,
  type PreparedSample,
} from './calibration.js';
import {
  convertToFloat16,
  DEFAULT_FP16_KEEP_OPS,
  emulateFloat16,
  floatActivations,
  FLOAT16_MAX,
  FP16_KNOWN_OPS,
  type Fp16Stats,
} from './fp16.js';
import {
  encodeOnnx,
  graphOf,
  loadOnnx,
  withExtraOutputs,
  type ModelProto,
} from '../util/onnx-graph.js';
import {
  defaultExclusions,
  planQuantization,
  quantizeModel,
  type QuantMode,
  type QuantTarget,
  type Range,
} from './quantize.js';
import { GraphRunner, RangeCollector, type CalibrationMethod } from './runner.js';
import { round } from '../util/stats.js';

/** What `compress` makes: INT8 (`static` QDQ, `dynamic`) or an FP16 variant for GPU providers. */
export type CompressMode = QuantMode | 'fp16';

/** The precisions `compress` writes. */
export type CompressedPrecision = 'int8' | 'fp16';

export interface CompressOptions {
  readonly model: string;
  readonly calibration: string;
  /** Activation ranges (static INT8 only). */
  readonly method: CalibrationMethod;
  readonly mode: CompressMode;
  /**
   * What stays in float; undefined = the defaults. INT8: node names (default: patch embedding,
   * action head). FP16: operator types or node names kept in float32 (default
   * {@link DEFAULT_FP16_KEEP_OPS}). `none` keeps nothing.
   */
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
  /**
   * Scores the model on its own task: the held-out observations and the closed loop of the
   * gate. The built-in tabletop's is `tabletopEvaluator()` (src/sim/evaluator.ts); a model
   * trained for another task passes its own.
   */
  readonly evaluator: CompressionEvaluator;
}

/** Closed-loop score of one variant: success rate and the p50 of the encode and policy stages, ms. */
export interface ClosedLoopScore {
  readonly rate: number;
  readonly stages: { readonly encode: number; readonly policy: number };
}

/** What the compression gate needs of the model's task (see {@link CompressOptions.evaluator}). */
export interface CompressionEvaluator {
  /** `count` observations, seeded by `seed`, that calibration did not see: the action error's. */
  heldOut(count: number, seed: number): readonly CalibrationSample[];
  /** Run `episodes` closed-loop episodes (seeded by `seed`) of the package in `dir` at `precision`. */
  closedLoop(
    dir: string,
    precision: Precision,
    run: { readonly episodes: number; readonly seed: number },
  ): Promise<ClosedLoopScore>;
}

type StageMs = { readonly encoder: number; readonly policy: number };
type SimStageMs = { readonly encode: number; readonly policy: number };

/**
 * The validation sections every report has; the compressed variant's figures are keyed by its
 * precision (`int8_success_rate`, `fp16_p50_ms`, ...).
 */
export type ValidationSections<P extends CompressedPrecision> = {
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
    readonly tolerance_points: number;
    readonly sim_stage_p50_ms: Readonly<Record<'fp32' | P, SimStageMs>>;
  } & { readonly [K in `${P}_success_rate`]: number };
  readonly latency: {
    readonly cpu: string;
    readonly threads: 1;
    readonly fp32_p50_ms: StageMs;
    readonly ratio: { readonly encoder: number; readonly policy: number; readonly total: number };
    readonly fp32_top_ops_us: Readonly<Record<string, number>>;
  } & { readonly [K in `${P}_p50_ms`]: StageMs } & {
    /** Kernel time per operator type over the profiled runs (µs), slowest first. */
    readonly [K in `${P}_top_ops_us`]: Readonly<Record<string, number>>;
  };
  readonly size_bytes: { readonly fp32: number; readonly ratio: number } & {
    readonly [K in P]: number;
  };
  /** Measured on the CPU provider (the only one `compress` runs). */
  readonly gate: { readonly passed: boolean; readonly provider: 'cpu'; readonly reasons: string[] };
};

/** The report of an INT8 variant (`reports/int8.json`, `reports/int8-dynamic.json`). */
export type Int8Report = {
  readonly format: 'vla-node/compression-report@1';
  readonly variant: string;
  readonly precision: 'int8';
  readonly mode: QuantMode;
  readonly method: CalibrationMethod | null;
  readonly calibration: { readonly dir: string; readonly frames: number };
  readonly excluded: Readonly<Record<GraphRole, readonly string[]>>;
  readonly quantized_nodes: Readonly<Record<GraphRole, number>>;
} & ValidationSections<'int8'>;

/** The report of the FP16 variant (`reports/fp16.json`). */
export type Fp16Report = {
  readonly format: 'vla-node/compression-report@1';
  readonly variant: string;
  readonly precision: 'fp16';
  readonly mode: 'fp16';
  readonly method: null;
  /** The providers FP16 is made for; the figures below were measured on the CPU provider. */
  readonly intended_providers: readonly ['tensorrt', 'cuda'];
  readonly calibration: { readonly dir: string; readonly frames: number };
  /** Operator types kept in float32, and the nodes that stayed float32 because of them or by name. */
  readonly kept_fp32: {
    readonly ops: readonly string[];
    readonly nodes: Readonly<Record<GraphRole, readonly string[]>>;
  };
  readonly converted: Readonly<Record<GraphRole, Omit<Fp16Stats, 'fp32_nodes'>>>;
  /** The largest |value| of the fp32 graphs' float activations over the calibration frames. */
  readonly activations: {
    readonly max_abs: Readonly<
      Record<GraphRole, { readonly tensor: string; readonly value: number }>
    >;
    /** Activations computed in float16 whose magnitude exceeds 65504 (they would overflow). */
    readonly over_fp16_max: readonly string[];
  };
  /**
   * The action error of {@link emulateFloat16} (every float16 result rounded as a GPU stores it)
   * on the same frames: ONNX Runtime's CPU provider computes most activations of the float16
   * graph in float32, so `action_error` alone understates what a GPU gives. Gated too.
   */
  readonly emulated_action_error: {
    readonly mean_abs: readonly number[];
    readonly max_abs: readonly number[];
  };
} & ValidationSections<'fp16'>;

export type CompressionReport = Int8Report | Fp16Report;

/** The compressed variant's own figures of a report, whatever its precision. */
export function variantFigures(r: CompressionReport): {
  readonly successRate: number;
  readonly p50: StageMs;
  readonly topOps: Readonly<Record<string, number>>;
  readonly stages: SimStageMs;
  readonly bytes: number;
} {
  return r.precision === 'int8'
    ? {
        successRate: r.closed_loop.int8_success_rate,
        p50: r.latency.int8_p50_ms,
        topOps: r.latency.int8_top_ops_us,
        stages: r.closed_loop.sim_stage_p50_ms.int8,
        bytes: r.size_bytes.int8,
      }
    : {
        successRate: r.closed_loop.fp16_success_rate,
        p50: r.latency.fp16_p50_ms,
        topOps: r.latency.fp16_top_ops_us,
        stages: r.closed_loop.sim_stage_p50_ms.fp16,
        bytes: r.size_bytes.fp16,
      };
}

const ROLES: readonly GraphRole[] = ['encoder', 'policy'];

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

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

/**
 * The largest |value| of every float tensor the fp32 graphs compute, over `samples` (each
 * tensor is added as an output; the FP16 gate fails when one computed in float16 exceeds 65504).
 */
export async function activationPeaks(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  batchSize: number,
  progress: (line: string) => void,
): Promise<Record<GraphRole, Map<string, number>>> {
  const names = {
    encoder: floatActivations(graphs.encoder, 'graphs.encoder'),
    policy: floatActivations(graphs.policy, 'graphs.policy'),
  };
  const runner = await GraphRunner.create(
    pkg,
    encodeOnnx(withExtraOutputs(graphs.encoder, names.encoder)),
    encodeOnnx(withExtraOutputs(graphs.policy, names.policy)),
  );
  const peaks = { encoder: new Map<string, number>(), policy: new Map<string, number>() };
  try {
    for (let start = 0; start < samples.length; start += batchSize) {
      for (const s of samples.slice(start, start + batchSize)) {
        const out = await runner.run(s);
        for (const role of ROLES) {
          for (const name of names[role]) {
            const data = out[role][name]?.data;
            if (!(data instanceof Float32Array)) continue;
            let peak = peaks[role].get(name) ?? 0;
            // ±Infinity (a mask) is representable in float16: only finite values can overflow.
            for (const x of data) if (Number.isFinite(x) && Math.abs(x) > peak) peak = Math.abs(x);
            peaks[role].set(name, peak);
          }
        }
      }
      progress(
        `activation range: ${Math.min(start + batchSize, samples.length)}/${samples.length} frames`,
      );
    }
  } finally {
    await runner.release();
  }
  return peaks;
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
export function variantNames(mode: CompressMode): { name: string; suffix: string } {
  if (mode === 'fp16') return { name: 'fp16', suffix: 'fp16' };
  return mode === 'static'
    ? { name: 'int8', suffix: 'int8' }
    : { name: 'int8-dynamic', suffix: 'int8-dynamic' };
}

function checkExclusions(
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  exclude: readonly string[],
  opTypes: ReadonlySet<string> = new Set(),
): void {
  const known = new Set(ROLES.flatMap((r) => graphOf(graphs[r]).node.map((n) => n.name)));
  const missing = exclude.filter((e) => !known.has(e) && !opTypes.has(e));
  if (missing.length > 0) {
    throw new InputError(
      `Expected --exclude to name nodes of the graphs${opTypes.size > 0 ? ' or operator types the fp16 converter knows' : ''} but ${missing.map((m) => JSON.stringify(m)).join(', ')} ${missing.length === 1 ? 'is' : 'are'} neither`,
      { field: 'exclude' },
    );
  }
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<string> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  return tmp;
}

/** A compressed variant's graphs before validation, with what its report says about how. */
type Built =
  | {
      readonly precision: 'int8';
      readonly bytes: Readonly<Record<GraphRole, Uint8Array>>;
      readonly details: Pick<Int8Report, 'mode' | 'method' | 'excluded' | 'quantized_nodes'>;
      readonly ranges: Readonly<Record<GraphRole, Map<string, Range>>>;
    }
  | {
      readonly precision: 'fp16';
      readonly bytes: Readonly<Record<GraphRole, Uint8Array>>;
      /** The float32 graphs that round like float16 ({@link emulateFloat16}). */
      readonly emulated: Readonly<Record<GraphRole, Uint8Array>>;
      readonly details: Pick<Fp16Report, 'kept_fp32' | 'converted' | 'activations'>;
    };

async function buildInt8(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  options: CompressOptions & { readonly mode: QuantMode },
): Promise<Built> {
  const progress = options.progress;
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
  return {
    precision: 'int8',
    bytes: {
      encoder: encodeOnnx(
        quantizeModel(graphs.encoder, targets.encoder, options.mode, ranges.encoder),
      ),
      policy: encodeOnnx(quantizeModel(graphs.policy, targets.policy, options.mode, ranges.policy)),
    },
    details: {
      mode: options.mode,
      method: options.mode === 'static' ? options.method : null,
      excluded,
      quantized_nodes: { encoder: targets.encoder.length, policy: targets.policy.length },
    },
    ranges,
  };
}

async function buildFp16(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  options: CompressOptions,
): Promise<Built> {
  const progress = options.progress;
  let keepOps: string[] = [...DEFAULT_FP16_KEEP_OPS];
  let keepNodes: string[] = [];
  if (options.exclude !== undefined) {
    const ex = options.exclude.filter((e) => e !== 'none');
    checkExclusions(graphs, ex, FP16_KNOWN_OPS);
    const names = new Set(ROLES.flatMap((r) => graphOf(graphs[r]).node.map((n) => n.name)));
    keepNodes = ex.filter((e) => names.has(e));
    keepOps = ex.filter((e) => !names.has(e));
  }
  const fp16Options = { keepOps: new Set(keepOps), keepNodes: new Set(keepNodes) };
  const converted = {
    encoder: convertToFloat16(graphs.encoder, fp16Options, 'graphs.encoder'),
    policy: convertToFloat16(graphs.policy, fp16Options, 'graphs.policy'),
  };
  const fp32Nodes = {
    encoder: converted.encoder.stats.fp32_nodes,
    policy: converted.policy.stats.fp32_nodes,
  };
  progress(
    `converting to float16: ${converted.encoder.stats.fp16_nodes} encoder and ${converted.policy.stats.fp16_nodes} policy nodes; kept in float32: ${[...fp32Nodes.encoder, ...fp32Nodes.policy].join(', ') || 'none'}`,
  );
  const peaks = await activationPeaks(pkg, graphs, samples, options.batchSize, progress);
  const fp32Tensors = new Set(
    ROLES.flatMap((r) =>
      graphOf(graphs[r])
        .node.filter((n) => fp32Nodes[r].includes(n.name))
        .flatMap((n) => n.output),
    ),
  );
  const over = ROLES.flatMap((r) =>
    [...peaks[r]]
      .filter(([name, v]) => v > FLOAT16_MAX && !fp32Tensors.has(name))
      .map(([name]) => name),
  );
  const largest = (r: GraphRole): { tensor: string; value: number } => {
    let best = { tensor: '', value: 0 };
    for (const [tensor, value] of peaks[r]) if (value > best.value) best = { tensor, value };
    return { tensor: best.tensor, value: round(best.value, 3) };
  };
  const stats = (r: GraphRole): Omit<Fp16Stats, 'fp32_nodes'> => {
    const { fp32_nodes: _, ...rest } = converted[r].stats;
    return rest;
  };
  return {
    precision: 'fp16',
    bytes: {
      encoder: encodeOnnx(converted.encoder.model),
      policy: encodeOnnx(converted.policy.model),
    },
    emulated: {
      encoder: encodeOnnx(emulateFloat16(converted.encoder.model, 'graphs.encoder')),
      policy: encodeOnnx(emulateFloat16(converted.policy.model, 'graphs.policy')),
    },
    details: {
      kept_fp32: { ops: keepOps, nodes: fp32Nodes },
      converted: { encoder: stats('encoder'), policy: stats('policy') },
      activations: {
        max_abs: { encoder: largest('encoder'), policy: largest('policy') },
        over_fp16_max: over,
      },
    },
  };
}

/** Figures of the new variant against fp32, measured on the CPU provider. */
interface Measurement extends ActionError {
  readonly frames: number;
  /** The action error of the float16 emulation (FP16 only). */
  readonly emulated?: ActionError;
  readonly latency: Readonly<Record<'fp32' | 'variant', StageMs>>;
  readonly profiles: Readonly<Record<'fp32' | 'variant', Record<string, number>>>;
  readonly closed: Readonly<Record<'fp32' | 'variant', { rate: number; stages: SimStageMs }>>;
  readonly size: { readonly fp32: number; readonly variant: number };
}

/** Mean and max absolute action error per dimension (table units), rounded for the report. */
interface ActionError {
  readonly meanAbs: number[];
  readonly maxAbs: number[];
}

async function actionError(
  pkg: ModelPackage,
  reference: GraphRunner,
  candidate: GraphRunner,
  samples: readonly PreparedSample[],
): Promise<ActionError> {
  const a = pkg.manifest.chunk.action_dim;
  const sum = new Float64Array(a);
  const max = new Float64Array(a);
  let count = 0;
  for (const s of samples) {
    const r = (await reference.run(s)).actions;
    const q = (await candidate.run(s)).actions;
    for (let j = 0; j < r.length; j++) {
      const e = Math.abs((r[j] as number) - (q[j] as number));
      sum[j % a] = (sum[j % a] as number) + e;
      max[j % a] = Math.max(max[j % a] as number, e);
    }
    count += r.length / a;
  }
  return {
    meanAbs: [...sum].map((v) => round(v / Math.max(1, count), 5)),
    maxAbs: [...max].map((v) => round(v, 5)),
  };
}

/**
 * Validate a variant in a scratch package holding fp32 and the new variant, so closed-loop
 * validation runs the real pipeline: action error on held-out frames (also of `emulated`, when
 * given), latency, profiled operators, closed-loop success.
 */
async function measure(
  pkg: ModelPackage,
  variant: Variant,
  bytes: Readonly<Record<GraphRole, Uint8Array>>,
  options: CompressOptions,
  work: string,
  emulated?: Readonly<Record<GraphRole, Uint8Array>>,
): Promise<Measurement> {
  const progress = options.progress;
  const fp32 = selectVariant(pkg, 'fp32');
  const scratch = join(work, 'package');
  await mkdir(scratch);
  const manifest: Manifest = { ...pkg.manifest, variants: [fp32Variant(pkg), variant] };
  await writeFile(join(scratch, 'manifest.json'), JSON.stringify(manifest, null, 2));
  await copyFile(
    join(pkg.dir, pkg.manifest.tokenizer.file),
    join(scratch, pkg.manifest.tokenizer.file),
  );
  const paths = {
    encoder: join(scratch, variant.files.encoder.path),
    policy: join(scratch, variant.files.policy.path),
  };
  for (const role of ROLES) {
    await copyFile(fp32.paths[role], join(scratch, fp32.files[role].path));
    await writeFile(paths[role], bytes[role]);
  }

  const heldOut = await prepareSamples(
    pkg,
    options.evaluator.heldOut(options.heldOut, (options.seed + 0x5eed) >>> 0),
  );
  progress(`action error on ${heldOut.length} held-out frames...`);
  const reference = await GraphRunner.create(pkg, fp32.paths.encoder, fp32.paths.policy);
  const candidate = await GraphRunner.create(pkg, paths.encoder, paths.policy).catch(
    async (e: unknown) => {
      await reference.release();
      throw e;
    },
  );
  let error: ActionError;
  let emulatedError: ActionError | undefined;
  let latency: Measurement['latency'];
  try {
    error = await actionError(pkg, reference, candidate, heldOut);
    if (emulated !== undefined) {
      const runner = await GraphRunner.create(pkg, emulated.encoder, emulated.policy);
      try {
        emulatedError = await actionError(pkg, reference, runner, heldOut);
      } finally {
        await runner.release();
      }
    }
    progress(`latency: ${options.latencyRounds} rounds per variant, one thread...`);
    await reference.latency(heldOut, 20);
    await candidate.latency(heldOut, 20);
    // Interleave the two variants so background load hits both alike.
    const half = Math.max(1, Math.floor(options.latencyRounds / 2));
    const f1 = await reference.latency(heldOut, half);
    const q1 = await candidate.latency(heldOut, half);
    const q2 = await candidate.latency(heldOut, half);
    const f2 = await reference.latency(heldOut, half);
    latency = {
      fp32: { encoder: (f1.encoder + f2.encoder) / 2, policy: (f1.policy + f2.policy) / 2 },
      variant: { encoder: (q1.encoder + q2.encoder) / 2, policy: (q1.policy + q2.policy) / 2 },
    };
  } finally {
    await Promise.all([reference.release(), candidate.release()]);
  }
  const profiles = {
    fp32: await profileOps(pkg, fp32.paths.encoder, fp32.paths.policy, heldOut, 50, work),
    variant: await profileOps(pkg, paths.encoder, paths.policy, heldOut, 50, work),
  };
  const closed = {
    fp32: await closedLoop(scratch, 'fp32', options, progress),
    variant: await closedLoop(scratch, variant.precision, options, progress),
  };
  return {
    frames: heldOut.length,
    ...error,
    ...(emulatedError === undefined ? {} : { emulated: emulatedError }),
    latency,
    profiles,
    closed,
    size: {
      fp32:
        (await readFile(fp32.paths.encoder)).length + (await readFile(fp32.paths.policy)).length,
      variant: bytes.encoder.length + bytes.policy.length,
    },
  };
}

/** The report sections common to every precision, keyed by `precision`, and the gate. */
function validationSections<P extends CompressedPrecision>(
  precision: P,
  pkg: ModelPackage,
  m: Measurement,
  options: CompressOptions,
  extraReasons: readonly string[],
): ValidationSections<P> {
  const reasons: string[] = [];
  const worst = Math.max(...m.meanAbs);
  if (!(worst < options.errorThreshold))
    reasons.push(`mean action error ${worst} is not under ${options.errorThreshold}`);
  const drop = 100 * (m.closed.fp32.rate - m.closed.variant.rate);
  if (drop > options.successTolerance)
    reasons.push(
      `success dropped ${round(drop, 1)} points (fp32 ${100 * m.closed.fp32.rate}%, ${precision} ${100 * m.closed.variant.rate}%), more than ${options.successTolerance}`,
    );
  reasons.push(...extraReasons);
  const lat = m.latency;
  const totalRatio =
    (lat.variant.encoder + lat.variant.policy) / (lat.fp32.encoder + lat.fp32.policy);
  const p50 = (s: StageMs): StageMs => ({
    encoder: round(s.encoder, 4),
    policy: round(s.policy, 4),
  });
  // Computed keys (`${precision}_success_rate`) are typed by ValidationSections<P>.
  const sections = {
    action_error: {
      frames: m.frames,
      names: pkg.manifest.action.names,
      mean_abs: m.meanAbs,
      max_abs: m.maxAbs,
      threshold: options.errorThreshold,
    },
    closed_loop: {
      episodes: options.episodes,
      seed: options.seed,
      fp32_success_rate: m.closed.fp32.rate,
      [`${precision}_success_rate`]: m.closed.variant.rate,
      tolerance_points: options.successTolerance,
      sim_stage_p50_ms: { fp32: m.closed.fp32.stages, [precision]: m.closed.variant.stages },
    },
    latency: {
      cpu: cpuName(),
      threads: 1,
      fp32_p50_ms: p50(lat.fp32),
      [`${precision}_p50_ms`]: p50(lat.variant),
      ratio: {
        encoder: round(lat.variant.encoder / lat.fp32.encoder, 3),
        policy: round(lat.variant.policy / lat.fp32.policy, 3),
        total: round(totalRatio, 3),
      },
      [`${precision}_top_ops_us`]: m.profiles.variant,
      fp32_top_ops_us: m.profiles.fp32,
    },
    size_bytes: {
      fp32: m.size.fp32,
      [precision]: m.size.variant,
      ratio: round(m.size.variant / m.size.fp32, 3),
    },
    gate: { passed: reasons.length === 0, provider: 'cpu', reasons },
  };
  return sections as unknown as ValidationSections<P>;
}

/** FP16's gate beyond the common one: no activation overflows, the emulated error is small. */
function fp16Reasons(
  overflowing: readonly string[],
  emulated: ActionError | undefined,
  options: CompressOptions,
): string[] {
  const reasons: string[] = [];
  if (overflowing.length > 0)
    reasons.push(
      `activations beyond the float16 range (65504): ${overflowing.join(', ')}; keep their nodes in float32 with --exclude`,
    );
  const worst = Math.max(...(emulated?.meanAbs ?? [Number.NaN]));
  if (!(worst < options.errorThreshold))
    reasons.push(
      `mean action error of the float16 emulation ${worst} is not under ${options.errorThreshold}`,
    );
  return reasons;
}

/**
 * Compress a model package and add the variant to it: INT8 (`static` QDQ calibrated on the
 * calibration set, or `dynamic`) or FP16 (for GPU providers; the calibration set checks that no
 * activation overflows float16). The variant is validated against fp32 on the CPU provider.
 * Everything is written to temporary files first; the package's files and manifest change only
 * once all steps succeeded.
 */
export async function compressPackage(options: CompressOptions): Promise<CompressionReport> {
  const pkg = await loadModelPackage(options.model);
  const fp32 = selectVariant(pkg, 'fp32');
  const samples = await prepareSamples(pkg, await readCalibrationSet(options.calibration));
  const graphs = {
    encoder: await loadOnnx(fp32.paths.encoder, 'manifest.variants.fp32.files.encoder'),
    policy: await loadOnnx(fp32.paths.policy, 'manifest.variants.fp32.files.policy'),
  };
  const mode = options.mode;
  const built =
    mode === 'fp16'
      ? await buildFp16(pkg, graphs, samples, options)
      : await buildInt8(pkg, graphs, samples, { ...options, mode });
  const bytes = built.bytes;
  const { name, suffix } = variantNames(options.mode);
  const files = {
    encoder: fp32.files.encoder.path.replace(/\.onnx$/, `.${suffix}.onnx`),
    policy: fp32.files.policy.path.replace(/\.onnx$/, `.${suffix}.onnx`),
  };
  const reportPath = `reports/${name}.json`;
  const variant: Variant = {
    name,
    precision: built.precision,
    files: {
      encoder: { path: files.encoder, sha256: sha256(bytes.encoder) },
      policy: { path: files.policy, sha256: sha256(bytes.policy) },
    },
    report: reportPath,
    providers: built.precision === 'fp16' ? ['tensorrt', 'cuda'] : ['cpu'],
  };

  const work = await mkdtemp(join(tmpdir(), 'vla-compress-'));
  try {
    const m = await measure(
      pkg,
      variant,
      bytes,
      options,
      work,
      built.precision === 'fp16' ? built.emulated : undefined,
    );
    const calibration = { dir: options.calibration, frames: samples.length };
    const head = { format: 'vla-node/compression-report@1', variant: name } as const;
    const report: CompressionReport =
      built.precision === 'fp16'
        ? {
            ...head,
            precision: 'fp16',
            mode: 'fp16',
            method: null,
            intended_providers: ['tensorrt', 'cuda'],
            calibration,
            ...built.details,
            emulated_action_error: {
              mean_abs: m.emulated?.meanAbs ?? [],
              max_abs: m.emulated?.maxAbs ?? [],
            },
            ...validationSections(
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
            mode: built.details.mode,
            method: built.details.method,
            calibration,
            excluded: built.details.excluded,
            quantized_nodes: built.details.quantized_nodes,
            ...validationSections('int8', pkg, m, options, []),
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
      if (built.precision === 'int8' && options.mode === 'static') {
        const rangesTarget = options.rangesOut ?? join(options.calibration, 'ranges.json');
        await mkdir(dirname(rangesTarget), { recursive: true });
        const json = {
          format: 'vla-node/calibration-ranges@1',
          model: pkg.manifest.name,
          method: options.method,
          frames: samples.length,
          encoder: Object.fromEntries(built.ranges.encoder),
          policy: Object.fromEntries(built.ranges.policy),
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
  precision: Precision,
  options: CompressOptions,
  progress: (line: string) => void,
): Promise<ClosedLoopScore> {
  progress(`closed loop: ${options.episodes} episodes with ${precision}...`);
  return options.evaluator.closedLoop(dir, precision, {
    episodes: options.episodes,
    seed: options.seed,
  });
}

function cpuName(): string {
  return cpus()[0]?.model.trim() ?? 'unknown';
}

/** The report as Markdown (`reports/<variant>.md`). */
export function reportMarkdown(r: CompressionReport): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  const p = r.precision;
  const v = variantFigures(r);
  const head =
    r.precision === 'int8'
      ? [
          `# ${r.variant}: INT8 ${r.mode} quantization report`,
          '',
          `Gate (${r.gate.provider}): **${r.gate.passed ? 'passed' : 'failed'}**${r.gate.reasons.length > 0 ? ` — ${r.gate.reasons.join('; ')}` : ''}`,
          '',
          `- Calibration: ${r.calibration.frames} frames from \`${r.calibration.dir}\`, method ${r.method ?? 'n/a (dynamic: activations quantized at run time by DynamicQuantizeLinear, MatMulInteger)'}`,
          `- Quantized weight nodes: encoder ${r.quantized_nodes.encoder}, policy ${r.quantized_nodes.policy}; kept in float: ${[...r.excluded.encoder, ...r.excluded.policy].join(', ') || 'none'} (plus LayerNormalization, Softmax and activation×activation MatMuls)`,
        ]
      : [
          `# ${r.variant}: FP16 report`,
          '',
          `FP16 is meant for the GPU providers (${r.intended_providers.join(', ')}). Everything below was measured on the **CPU** provider, the only one here. ONNX Runtime's CPU provider runs the float16 graph by inserting Casts around the operators that lack float16 kernels, so the latency below says nothing about a GPU, and the action error is also given for a float16 emulation (see below). \`precision: auto\` picks a variant only from a report measured on the provider in use, so it does not pick this one on a GPU until it is measured there.`,
          '',
          `Gate (${r.gate.provider}): **${r.gate.passed ? 'passed' : 'failed'}**${r.gate.reasons.length > 0 ? ` — ${r.gate.reasons.join('; ')}` : ''}`,
          '',
          `- Conversion: float32 initializers and constants to float16 (round to nearest even; ${r.converted.encoder.values_clamped + r.converted.policy.values_clamped} values clamped to ±65504, ${r.converted.encoder.values_flushed + r.converted.policy.values_flushed} flushed to zero); graph inputs and outputs stay float32 behind Casts (encoder ${r.converted.encoder.casts_added}, policy ${r.converted.policy.casts_added} Casts added)`,
          `- Nodes in float16: encoder ${r.converted.encoder.fp16_nodes}, policy ${r.converted.policy.fp16_nodes}; kept in float32: ${[...r.kept_fp32.nodes.encoder, ...r.kept_fp32.nodes.policy].join(', ') || 'none'} (operator types kept: ${r.kept_fp32.ops.join(', ') || 'none'})`,
          `- Activation range on ${r.calibration.frames} calibration frames from \`${r.calibration.dir}\` (fp32 graphs): largest |value| ${r.activations.max_abs.encoder.value} in the encoder (\`${r.activations.max_abs.encoder.tensor}\`), ${r.activations.max_abs.policy.value} in the policy (\`${r.activations.max_abs.policy.tensor}\`); beyond 65504: ${r.activations.over_fp16_max.join(', ') || 'none'}`,
        ];
  return [
    ...head,
    '',
    '## Action error against fp32',
    '',
    `${r.action_error.frames} held-out simulator frames (all visual tokens kept), table units:`,
    '',
    ...(r.precision === 'fp16'
      ? [
          '| dimension | mean abs | max abs | mean abs, float16 emulated | max abs, float16 emulated |',
          '|---|---|---|---|---|',
          ...r.action_error.names.map(
            (n, i) =>
              `| ${n} | ${String(r.action_error.mean_abs[i])} | ${String(r.action_error.max_abs[i])} | ${String(r.emulated_action_error.mean_abs[i])} | ${String(r.emulated_action_error.max_abs[i])} |`,
          ),
          '',
          'The first two columns run the float16 files on the CPU provider, which removes float32→float16→float32 Cast pairs (onnxruntime#8787) and so computes most activations in float32: they mostly measure the float16 weights. The emulated columns run a float32 copy of the graph that rounds every float16 result to float16 (11 significant bits), as a GPU stores it; both are gated.',
        ]
      : [
          '| dimension | mean abs | max abs |',
          '|---|---|---|',
          ...r.action_error.names.map(
            (n, i) =>
              `| ${n} | ${String(r.action_error.mean_abs[i])} | ${String(r.action_error.max_abs[i])} |`,
          ),
        ]),
    '',
    `Threshold on the mean: ${r.action_error.threshold}.`,
    '',
    '## Closed loop',
    '',
    `${r.closed_loop.episodes} episodes, seed ${r.closed_loop.seed}: fp32 ${pct(r.closed_loop.fp32_success_rate)}, ${p} ${pct(v.successRate)} (tolerance ${r.closed_loop.tolerance_points} points).`,
    '',
    '## Latency and size on this CPU',
    '',
    `${r.latency.cpu}, one intra-op thread, p50 in ms, measured in one run:`,
    '',
    `| stage | fp32 | ${p} | ${p}/fp32 |`,
    '|---|---|---|---|',
    `| encoder | ${r.latency.fp32_p50_ms.encoder} | ${v.p50.encoder} | ${r.latency.ratio.encoder} |`,
    `| policy | ${r.latency.fp32_p50_ms.policy} | ${v.p50.policy} | ${r.latency.ratio.policy} |`,
    `| total | | | ${r.latency.ratio.total} |`,
    '',
    `In the closed loop (pipeline stage p50): fp32 encode ${r.closed_loop.sim_stage_p50_ms.fp32.encode} ms / policy ${r.closed_loop.sim_stage_p50_ms.fp32.policy} ms; ${p} encode ${v.stages.encode} ms / policy ${v.stages.policy} ms.`,
    '',
    `File size: fp32 ${r.size_bytes.fp32} bytes, ${p} ${v.bytes} bytes (ratio ${r.size_bytes.ratio}).`,
    '',
    'Kernel time by operator over 50 profiled runs (µs, ORT `enableProfiling`):',
    '',
    `- ${p}: ${Object.entries(v.topOps)
      .map(([k, x]) => `${k} ${x}`)
      .join(', ')}`,
    `- fp32: ${Object.entries(r.latency.fp32_top_ops_us)
      .map(([k, x]) => `${k} ${x}`)
      .join(', ')}`,
    '',
  ].join('\n');
}
