/**
 * A flow-matching package behind the pipeline's interface (observation in, safe action chunk
 * out), so that the fronts built for the encoder + policy family (the bridge server first) serve
 * it too: every camera of the observation matched to the manifest's cameras and ingested under the
 * ingest limits, the state checked, the noise seeded per observation, the chunk clamped by the
 * runtime's safety limits.
 */

import { performance } from 'node:perf_hooks';
import { describe, InputError } from '../errors.js';
import {
  defaultIngestLimits,
  FrameIngest,
  type Frame,
  type IngestLimits,
} from '../ingest/index.js';
import { selectFlowVariant, type FlowCamera, type FlowPackage } from '../model/flow-manifest.js';
import type { Precision } from '../model/manifest.js';
import { checkState } from '../pipeline/observation.js';
import type { ActionChunk, Observation } from '../pipeline/types.js';
import { LatencyBook, type StageTimings } from '../runtime/latency.js';
import { SerialQueue } from '../runtime/serial-queue.js';
import {
  enforceLimits,
  resolveLimits,
  type ActionLimits,
  type LimitsRequest,
} from '../runtime/safety.js';
import { camerasToRgb, cameraList, matchCameras, sameImageSpec } from './cameras.js';
import { FlowPolicy, type FlowCacheOptions, type FlowPolicyOptions } from './policy.js';

/** How a {@link FlowPipeline} is built. */
export interface FlowPipelineOptions {
  readonly precision?: Precision | 'auto';
  /** Denoising steps (default: the manifest's `denoising.steps`). */
  readonly steps?: number;
  readonly pruning: FlowPolicyOptions['pruning'];
  readonly caches: FlowCacheOptions;
  /** Action limits (empty min/max = the manifest's, maxDeltaPerStep 0 = derived from it). */
  readonly limits: LimitsRequest;
  /** Pixel, byte and state bounds on every observation (`ingest.*`); the schema's defaults when absent. */
  readonly ingest?: IngestLimits;
  readonly intraOpThreads?: number;
  /** Inferences on a synthetic observation before the pipeline is handed out (default 0). */
  readonly warmupRuns?: number;
}

/**
 * The noise seed of an observation without one: a 32-bit FNV-1a hash of its stamp's float64 bytes.
 * The same recorded observation (same stamp) gets the same noise, so a replayed request gives the
 * same chunk, while a live camera (a new stamp per frame) gets fresh noise per frame.
 */
export function stampSeed(stamp: number): number {
  const bytes = new Uint8Array(Float64Array.of(stamp).buffer);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/**
 * A flow-matching VLA as a pipeline: {@link FlowPolicy} plus what the encoder + policy pipeline
 * does around its model. One FrameIngest per camera (the manifest's image spec, the configured
 * ingest limits) turns each camera's frame into RGB; the images are matched to the manifest's
 * cameras by their names (or by order when unnamed, see {@link matchCameras}); the noise is seeded
 * by `obs.seed`, else by {@link stampSeed} of `obs.stamp` (0 without one); the de-normalised chunk
 * goes through the runtime's {@link enforceLimits} (non-finite values refused, each value clamped
 * to the limits, the per-step change limited), so nothing outside the limits leaves.
 *
 * One observation runs at a time (calls may overlap; they queue), and there is no batching across
 * callers: {@link maxBatch} is 1. Frame-to-frame state (the pruner's, the cross-frame visual cache)
 * belongs to one stream: an observation of another stream than the last one starts afresh.
 *
 * @example
 * const pipeline = await FlowPipeline.create(await loadFlowPackage('models/tiny-vla-flow'), options);
 * const chunk = await pipeline.infer({
 *   frame: table,
 *   cameras: [{ camera: 'table', frame: table }, { camera: 'wrist', frame: wrist }],
 *   instruction: 'move to the red block',
 *   state: [0.5, 0.5],
 *   seed: 7,
 * });
 */
export class FlowPipeline {
  readonly model: FlowPackage;
  readonly policy: FlowPolicy;
  /** The manifest's cameras, in order: a request carries one image per camera. */
  readonly cameras: readonly FlowCamera[];
  /** The precision of the variant that runs. */
  readonly precision: Precision;
  readonly latency = new LatencyBook();
  /** One observation per run: flow packages are served one request at a time. */
  readonly maxBatch = 1;
  /** What the bridge calls on a client's `reset`: forget the frames of that stream (see the class). */
  readonly pruner: { reset(stream?: string): void };
  readonly #ingest: readonly FrameIngest[];
  /** Each camera's RGB8 at the model's size, reused frame after frame; undefined when the cameras'
   * image specs differ (then each frame gets its own). */
  readonly #rgb: Uint8Array[] | undefined;
  readonly #limits: ActionLimits;
  readonly #maxStateDeviation: number;
  #sequence = 0;
  #stream: string | undefined;
  readonly #queue = new SerialQueue();

  private constructor(
    pkg: FlowPackage,
    policy: FlowPolicy,
    limits: ActionLimits,
    ingest: IngestLimits,
    precision: Precision,
  ) {
    this.model = pkg;
    this.policy = policy;
    this.cameras = pkg.manifest.cameras;
    this.precision = precision;
    this.#limits = limits;
    this.#maxStateDeviation = ingest.maxStateDeviation;
    this.#ingest = this.cameras.map(
      (c) =>
        new FrameIngest(
          {
            width: c.image.width,
            height: c.image.height,
            resize: c.image.resize,
            mean: c.image.mean,
            std: c.image.std,
          },
          ingest,
        ),
    );
    this.#rgb = sameImageSpec(this.cameras)
      ? this.cameras.map((c) => new Uint8Array(c.image.width * c.image.height * 3))
      : undefined;
    this.pruner = {
      reset: (stream?: string) => {
        if (stream === undefined || stream === this.#stream) {
          this.#stream = undefined;
          this.policy.resetFrames();
        }
      },
    };
  }

  /**
   * Check the limits against the manifest, open the graphs and warm up.
   *
   * @throws {ConfigError} for limits that do not fit the model (before any graph is opened).
   */
  static async create(pkg: FlowPackage, options: FlowPipelineOptions): Promise<FlowPipeline> {
    const m = pkg.manifest;
    const limits = resolveLimits(m, options.limits);
    // The policy only de-normalises (and refuses non-finite actions); the clamp, its count and
    // the per-step change limit are enforceLimits', as in the encoder + policy pipeline.
    const open = m.action.names.map(() => Infinity);
    const policy = await FlowPolicy.create(pkg, {
      pruning: options.pruning,
      caches: options.caches,
      limits: { min: open.map((v) => -v), max: open },
      ...(options.precision === undefined ? {} : { precision: options.precision }),
      ...(options.steps === undefined ? {} : { steps: options.steps }),
      ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
    });
    const precision = selectFlowVariant(pkg, options.precision ?? 'fp32').precision;
    const pipeline = new FlowPipeline(
      pkg,
      policy,
      limits,
      options.ingest ?? defaultIngestLimits(),
      precision,
    );
    await pipeline.#warmup(options.warmupRuns ?? 0);
    return pipeline;
  }

  /** Visual tokens per observation before pruning, all cameras together. */
  get totalTokens(): number {
    return this.policy.totalTokens;
  }
  /** Visual tokens the prefix sees per observation (the per-camera budget times the cameras). */
  get tokenBudget(): number {
    return this.policy.tokenBudget * this.cameras.length;
  }
  /** The limits every action is clamped to (configured, else the manifest's; the derived step limit). */
  get actionLimits(): ActionLimits {
    return this.#limits;
  }

  /**
   * One observation → one safe action chunk, after the observations already queued.
   *
   * @throws {InputError} naming the field: `images` or `images[i].camera` for images that do not
   *   match the cameras, `images[i].…` for a frame the ingest refuses, `state[i]`, `seed`,
   *   `keep_count` (flow packages keep `pruning.keep_ratio` per camera).
   * @throws {BackendError} when a graph fails or the expert returns non-finite actions.
   */
  infer(obs: Observation): Promise<ActionChunk> {
    // A bad observation fails at once, not after the observations queued before it.
    let checked: CheckedObservation;
    try {
      checked = this.#check(obs);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#queue.run(() => this.#inferNow(obs, checked));
  }

  /** Release the graphs, after the observations already queued. */
  async release(): Promise<void> {
    await this.#queue.idle();
    await this.policy.release();
  }

  async #inferNow(obs: Observation, checked: CheckedObservation): Promise<ActionChunk> {
    const t0 = performance.now();
    const m = this.model.manifest;
    const { images, order, named } = checked;
    if (obs.stream !== this.#stream) {
      this.policy.resetFrames();
      this.#stream = obs.stream;
    }
    const frames = order.map((i) => images[i] as Frame);
    // Into this pipeline's own buffers: the policy keeps nothing of a frame's RGB past its
    // inference (the cross-frame cache and the temporal pruner copy what they keep).
    const decoded = await camerasToRgb(this.#ingest, this.#rgb !== undefined, frames, this.#rgb);
    const rgb = decoded.map((d, c) => {
      if (d.status === 'fulfilled') return d.value;
      throw named ? requestFieldError(d.reason, order[c] as number) : d.reason;
    });
    const t1 = performance.now();
    const result = await this.policy.infer({
      images: [],
      rgb,
      instruction: obs.instruction,
      state: obs.state,
      seed: obs.seed ?? stampSeed(obs.stamp ?? 0),
    });
    const t2 = performance.now();
    const actions = result.actions;
    const clamped = enforceLimits(actions, m.chunk.action_dim, this.#limits);
    const t3 = performance.now();
    const f = result.timings;
    const stages: StageTimings = {
      preprocess: t1 - t0 + f.ingest,
      encode: f.encode,
      prune: f.prune,
      policy: f.instruction + f.prefix + f.denoise,
      postprocess: t3 - t2,
    };
    const latencyMs = t3 - t0;
    this.latency.record(stages, latencyMs);
    return {
      sequence: this.#sequence++,
      actions,
      horizon: m.chunk.horizon,
      actionDim: m.chunk.action_dim,
      dt: 1 / m.control_rate_hz,
      sourceStamp: obs.stamp,
      latencyMs,
      stages,
      tokens: { total: this.totalTokens, kept: result.keptTokens },
      clamped,
    };
  }

  /**
   * The observation's checks: its images matched to the cameras, the instruction, state, seed and
   * keep count. `order[c]` is the index in `images` of camera c; `named` whether the images came
   * as `cameras` (their errors then name `images[i]`).
   */
  #check(obs: Observation): CheckedObservation {
    // Library callers write JavaScript too: nothing here trusts the types.
    if (typeof (obs as unknown) !== 'object' || (obs as unknown) === null) {
      throw new InputError(
        `Expected an object with cameras (or frame), instruction and state for observation but received ${describe(obs)}`,
        { field: 'observation' },
      );
    }
    const list = cameraList(obs.cameras, obs.frame);
    const order = matchCameras(
      this.cameras.map((c) => c.name),
      list.map((c) => c.camera),
    );
    if (typeof obs.instruction !== 'string') {
      throw new InputError(
        `Expected a string for instruction but received ${describe(obs.instruction)}`,
        { field: 'instruction' },
      );
    }
    checkState(obs.state, this.model.manifest.state, this.#maxStateDeviation);
    const seed = obs.seed;
    if (
      seed !== undefined &&
      (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    ) {
      throw new InputError(
        `Expected an integer in [0, 4294967295] for seed but received ${describe(seed)}`,
        { field: 'seed' },
      );
    }
    if (obs.keepCount !== undefined) {
      throw new InputError(
        `Expected no keep_count for ${this.model.manifest.name} (a flow package keeps pruning.keep_ratio of each camera's tokens) but received ${describe(obs.keepCount)}`,
        { field: 'keep_count' },
      );
    }
    if (obs.stamp !== undefined && (typeof obs.stamp !== 'number' || !Number.isFinite(obs.stamp))) {
      throw new InputError(
        `Expected a finite number for stamp but received ${describe(obs.stamp)}`,
        {
          field: 'stamp',
        },
      );
    }
    return { images: list.map((c) => c.frame), order, named: obs.cameras !== undefined };
  }

  async #warmup(runs: number): Promise<void> {
    if (runs <= 0) return;
    const m = this.model.manifest;
    const cameras = this.cameras.map((c) => ({
      camera: c.name,
      frame: {
        kind: 'raw',
        encoding: 'rgb8',
        width: c.image.width,
        height: c.image.height,
        data: new Uint8Array(c.image.width * c.image.height * 3).fill(128),
      } satisfies Frame,
    }));
    const frame = (cameras[0] as (typeof cameras)[number]).frame;
    for (let i = 0; i < runs; i++) {
      const obs = { frame, cameras, instruction: '', state: m.state.mean, seed: i };
      await this.#inferNow(obs, this.#check(obs));
    }
    this.policy.reset();
    this.latency.reset();
    this.#sequence = 0;
    this.#stream = undefined;
  }
}

/** An observation after its checks: its frames, which is which camera, whether they were named. */
interface CheckedObservation {
  readonly images: readonly Frame[];
  /** `order[c]`: the index in `images` of the manifest's camera c. */
  readonly order: readonly number[];
  /** Whether the images came as `cameras` (their errors then name `images[i]`). */
  readonly named: boolean;
}

/**
 * An ingest error of camera image `index` with its field as the request names it: the ingest
 * says `image.data`, the request `images[1].data`.
 */
function requestFieldError(error: unknown, index: number): unknown {
  if (!(error instanceof InputError)) return error;
  const field = error.field ?? 'image';
  const match = /^(?:image|frame)(?=$|[.[])(.*)$/.exec(field);
  const renamed = `images[${index}]${match === null ? `.${field}` : (match[1] ?? '')}`;
  return new InputError(error.message, { field: renamed, cause: error });
}
