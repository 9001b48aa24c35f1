import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import { BackendError } from '../errors.js';
import type { ModelPackage } from '../model/manifest.js';
import type { PreparedSample } from './calibration.js';
import type { Range } from './quantize.js';
import { median } from '../util/stats.js';
import { byRole } from '../util/roles.js';

export type CalibrationMethod = 'minmax' | 'percentile';

/** Encoder + policy sessions that run one prepared sample with all visual tokens kept. */
export class GraphRunner {
  readonly #pkg: ModelPackage;
  readonly encoder: ort.InferenceSession;
  readonly policy: ort.InferenceSession;
  readonly #positions: ort.Tensor;

  private constructor(
    pkg: ModelPackage,
    encoder: ort.InferenceSession,
    policy: ort.InferenceSession,
  ) {
    this.#pkg = pkg;
    this.encoder = encoder;
    this.policy = policy;
    const n = pkg.manifest.patch_grid.width * pkg.manifest.patch_grid.height;
    this.#positions = new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      [1, n],
    );
  }

  /** Sessions from files or model bytes; one intra-op thread so timings are comparable. */
  static async create(
    pkg: ModelPackage,
    encoder: string | Uint8Array,
    policy: string | Uint8Array,
    extra: ort.InferenceSession.SessionOptions = {},
  ): Promise<GraphRunner> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
      ...extra,
    };
    const open = async (what: string | Uint8Array): Promise<ort.InferenceSession> => {
      try {
        return typeof what === 'string'
          ? await ort.InferenceSession.create(what, options)
          : await ort.InferenceSession.create(what, options);
      } catch (cause) {
        throw new BackendError(
          `Expected ONNX Runtime to load the graph but it failed: ${cause instanceof Error ? cause.message : String(cause)}`,
          { field: 'model', cause },
        );
      }
    };
    const enc = await open(encoder);
    const pol = await open(policy).catch(async (e: unknown) => {
      await enc.release();
      throw e;
    });
    return new GraphRunner(pkg, enc, pol);
  }

  async encode(s: PreparedSample): Promise<ort.InferenceSession.OnnxValueMapType> {
    const m = this.#pkg.manifest;
    const name = m.graphs.encoder.inputs[0]?.name ?? '';
    return this.encoder.run({
      [name]: new ort.Tensor('float32', s.pixels, [1, 3, m.image.height, m.image.width]),
    });
  }

  async act(s: PreparedSample, tokens: ort.Tensor): Promise<ort.InferenceSession.OnnxValueMapType> {
    const m = this.#pkg.manifest;
    const [t, p, i, st] = m.graphs.policy.inputs.map((x) => x.name);
    return this.policy.run({
      [t ?? '']: tokens,
      [p ?? '']: this.#positions,
      [i ?? '']: new ort.Tensor('int64', s.ids, [1, s.ids.length]),
      [st ?? '']: new ort.Tensor('float32', s.state, [1, s.state.length]),
    });
  }

  /** Both stages; the actions in manifest units (horizon × action_dim). */
  async run(s: PreparedSample): Promise<{
    encoder: ort.InferenceSession.OnnxValueMapType;
    policy: ort.InferenceSession.OnnxValueMapType;
    actions: Float32Array;
  }> {
    const m = this.#pkg.manifest;
    const encoder = await this.encode(s);
    const tokens = encoder[m.graphs.encoder.outputs[0]?.name ?? ''] as ort.Tensor;
    const policy = await this.act(s, tokens);
    const raw = policy[m.graphs.policy.outputs[0]?.name ?? '']?.data as Float32Array;
    const a = m.chunk.action_dim;
    const actions = raw.map(
      (v, j) => v * (m.action.std[j % a] as number) + (m.action.mean[j % a] as number),
    );
    return { encoder, policy, actions };
  }

  /** p50 of each stage over `rounds` passes through `samples` (ms). */
  async latency(
    samples: readonly PreparedSample[],
    rounds: number,
  ): Promise<{ encoder: number; policy: number }> {
    const m = this.#pkg.manifest;
    const enc: number[] = [];
    const pol: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const s = samples[r % samples.length];
      if (s === undefined) break;
      const t0 = performance.now();
      const e = await this.encode(s);
      const t1 = performance.now();
      await this.act(s, e[m.graphs.encoder.outputs[0]?.name ?? ''] as ort.Tensor);
      const t2 = performance.now();
      enc.push(t1 - t0);
      pol.push(t2 - t1);
    }
    return { encoder: median(enc), policy: median(pol) };
  }

  async release(): Promise<void> {
    await Promise.all([this.encoder.release(), this.policy.release()]);
  }
}

/** Values kept per tensor per frame for the percentile method (a strided subset beyond this). */
const PERCENTILE_SAMPLES_PER_FRAME = 2048;

/**
 * Accumulates activation ranges over calibration batches. minmax: the overall extremes.
 * percentile: the lower and upper `percentile` of the values pooled over all frames (a strided
 * subset of each large tensor), so tensors with few values per frame (the robot state) keep
 * their full spread.
 */
export class RangeCollector implements ActivationCollector {
  readonly #method: CalibrationMethod;
  readonly #percentile: number;
  readonly #stats = new Map<string, { min: number; max: number; pool: Float32Array[] }>();

  constructor(method: CalibrationMethod, percentile = 99.99) {
    this.#method = method;
    this.#percentile = percentile;
  }

  add(name: string, data: Float32Array): void {
    let min = Infinity;
    let max = -Infinity;
    for (const v of data) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    let s = this.#stats.get(name);
    if (s === undefined) {
      s = { min, max, pool: [] };
      this.#stats.set(name, s);
    } else {
      s.min = Math.min(s.min, min);
      s.max = Math.max(s.max, max);
    }
    if (this.#method === 'percentile') {
      const stride = Math.max(1, Math.ceil(data.length / PERCENTILE_SAMPLES_PER_FRAME));
      s.pool.push(stride === 1 ? Float32Array.from(data) : data.filter((_, i) => i % stride === 0));
    }
  }

  ranges(): Map<string, Range> {
    return new Map(
      [...this.#stats].map(([k, s]) => {
        if (this.#method === 'minmax') return [k, { min: s.min, max: s.max }];
        const all = new Float32Array(s.pool.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of s.pool) {
          all.set(p, at);
          at += p.length;
        }
        all.sort();
        const cut = Math.floor(((100 - this.#percentile) / 100) * (all.length - 1));
        return [k, { min: all[cut] ?? s.min, max: all[all.length - 1 - cut] ?? s.max }];
      }),
    );
  }
}

/** An activation statistic fed one graph output at a time: {@link RangeCollector}, {@link PeakCollector}. */
export interface ActivationCollector {
  add(name: string, data: Float32Array): void;
}

/**
 * The largest finite |value| of each activation over the calibration inputs: the FP16 gate fails
 * when one computed in float16 exceeds 65504.
 */
export class PeakCollector implements ActivationCollector {
  readonly #peaks = new Map<string, number>();

  add(name: string, data: Float32Array): void {
    let peak = this.#peaks.get(name) ?? 0;
    // ±Infinity (a mask) is representable in float16: only finite values can overflow.
    for (const x of data) if (Number.isFinite(x) && Math.abs(x) > peak) peak = Math.abs(x);
    this.#peaks.set(name, peak);
  }

  peaks(): Map<string, number> {
    return this.#peaks;
  }
}

/**
 * Runs a family's graphs, with the activations `names` added as outputs, over its calibration
 * inputs: each graph run's outputs go to `consume` by role, the count of frames done to `onFrame`.
 * `T` is what the family learns on the way (the flow family: the graph calls it captured).
 */
export type InstrumentedRun<R extends string, T> = (
  names: Readonly<Record<R, readonly string[]>>,
  consume: (role: R, outputs: ort.InferenceSession.OnnxValueMapType) => void,
  onFrame: (done: number) => void,
) => Promise<T>;

/** How often to write a progress line: every `every` frames of `total`, and after the last. */
export interface FrameProgress {
  readonly total: number;
  readonly every: number;
  readonly progress: (line: string) => void;
}

/** Activation ranges of `names` per graph (`run`'s result beside them), by `method`. */
export async function collectRanges<R extends string, T>(
  roles: readonly R[],
  names: Readonly<Record<R, readonly string[]>>,
  run: InstrumentedRun<R, T>,
  method: CalibrationMethod,
  frames: FrameProgress,
): Promise<{ ranges: Record<R, Map<string, Range>>; result: T }> {
  const collectors = byRole(roles, () => new RangeCollector(method));
  const result = await collect(names, run, collectors, `calibrating (${method})`, frames);
  return { ranges: byRole(roles, (r) => collectors[r].ranges()), result };
}

/** The largest finite |value| of each of `names` per graph (`run`'s result beside them). */
export async function collectPeaks<R extends string, T>(
  roles: readonly R[],
  names: Readonly<Record<R, readonly string[]>>,
  run: InstrumentedRun<R, T>,
  frames: FrameProgress,
): Promise<{ peaks: Record<R, Map<string, number>>; result: T }> {
  const collectors = byRole(roles, () => new PeakCollector());
  const result = await collect(names, run, collectors, 'activation range', frames);
  return { peaks: byRole(roles, (r) => collectors[r].peaks()), result };
}

/**
 * Feed each role's collector its float32 outputs among `names` (one the run did not give, or that
 * is not float32, has no range or float16 peak), writing `<what>: done/total frames` as it goes.
 */
async function collect<R extends string, T>(
  names: Readonly<Record<R, readonly string[]>>,
  run: InstrumentedRun<R, T>,
  collectors: Readonly<Record<R, ActivationCollector>>,
  what: string,
  { total, every, progress }: FrameProgress,
): Promise<T> {
  return run(
    names,
    (role, outputs) => {
      for (const name of names[role]) {
        const data = outputs[name]?.data;
        if (data instanceof Float32Array) collectors[role].add(name, data);
      }
    },
    (done) => {
      if (done % every === 0 || done === total) progress(`${what}: ${done}/${total} frames`);
    },
  );
}
