/**
 * An autoregressive package behind the pipeline's interface (observation in, safe action chunk
 * out), so that the fronts built for the encoder + policy family (the bridge server, replay, the
 * simulator) serve it too: the frame ingested under the ingest limits, the state checked as the
 * pipeline checks it, the visual tokens pruned before the prefill, the chunk decoded by the
 * configured strategy and clamped by the runtime's safety limits.
 */

import { performance } from 'node:perf_hooks';
import {
  defaultIngestLimits,
  FrameIngest,
  type Frame,
  type IngestLimits,
} from '../../ingest/index.js';
import type { FlowCamera } from '../../model/flow-manifest.js';
import type { ArManifest } from '../../model/ar-manifest.js';
import type { Precision } from '../../model/manifest.js';
import { PreparedObservation, type ActionChunk, type Observation } from '../../pipeline/types.js';
import { LatencyBook, type StageTimings } from '../../runtime/latency.js';
import { SerialQueue } from '../../runtime/serial-queue.js';
import { controlRate } from '../../config/rules.js';
import { enforceLimits, resolveLimits, type ActionLimits } from '../../runtime/safety.js';
import { ArPolicy, type ArAction, type ArActOptions, type ArObservation } from './policy.js';
import { PrunedArPolicy } from './pruned.js';
import { syncExecuteSteps } from '../../runtime/control-loop.js';
import { DraftBook } from './drafts.js';
import { checkArObservation, type CheckedObservation } from './observation.js';
import type { DecodeResult } from './decode.js';
import { DecodeScheduler, type Admission, type SchedulerStats } from './scheduler.js';
import { mapFulfilled, togetherOrAlone } from '../../util/together-or-alone.js';
import type { ArDecodeTotals, ArDecodingOptions, ArPipelineOptions } from './pipeline-options.js';

// The options are part of the pipeline's API: importers take them from this module.
export * from './pipeline-options.js';

/** A continuous-batching request: the observation, its model-size input, its own budget, and
 * when it started (`t0`) and was ready to decode (`t1`), performance.now(). */
interface ContinuousRequest {
  readonly obs: Observation;
  readonly input: ArObservation;
  readonly budget: number | undefined;
  readonly t0: number;
  readonly t1: number;
}

/**
 * An autoregressive VLA as a pipeline: {@link PrunedArPolicy} (encoder, pruning before the prefill
 * with the latency-budget controller, prefill and decoding) plus what the encoder + policy
 * pipeline does around its model. A FrameIngest (the manifest camera's image spec, the configured
 * ingest limits) turns the frame into RGB; the observation is checked as VlaPipeline checks it
 * (state length, finiteness and distance from the manifest's mean, `keep_count` in
 * [1, visual tokens]); the chunk is decoded by the configured strategy and the absolute actions go
 * through the runtime's {@link enforceLimits} (non-finite values refused, each value clamped to
 * the limits, the per-step change limited), so nothing outside the limits leaves.
 *
 * Speculative decoding drafts from the previous chunk of the same stream (`obs.stream`), shifted
 * by the steps executed since: the stamps' difference times the control rate (`controlRateHz`,
 * else the manifest's) when both observations carry one, else `executeSteps`. The draft changes
 * only how many decoder calls a chunk takes, never its tokens.
 *
 * One call runs at a time (calls may overlap; they queue). {@link inferBatch} decodes up to
 * {@link maxBatch} observations together, greedily in shared decoder calls (each chunk exactly its
 * own greedy chunk, which every strategy gives); a request does not join a batch already decoding.
 * With `continuous` on, every call goes to a {@link DecodeScheduler} instead: up to
 * {@link maxBatch} sequences decode together, each by the configured strategy, and a call that
 * arrives meanwhile joins them between two decoder calls (its frame decoded while they run).
 *
 * @example
 * const pipeline = await ArPipeline.create('models/tiny-vla-ar', {
 *   pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, minKeepRatio: 0.1, seed: 0, latencyBudgetMs: 0 },
 *   decoding: { strategy: 'speculative', window: 0 },
 *   limits: { min: [], max: [], maxDeltaPerStep: 0 },
 * });
 * const chunk = await pipeline.infer({ frame, instruction: 'move to the red block', state: [0.5, 0.5] });
 */
export class ArPipeline {
  readonly model: { readonly dir: string; readonly manifest: ArManifest };
  readonly policy: PrunedArPolicy;
  /** The manifest's one camera: a request carries its image (named by it, or unnamed). */
  readonly cameras: readonly FlowCamera[];
  /** The precision of the variant that runs. */
  readonly precision: Precision;
  readonly decoding: ArDecodingOptions;
  readonly latency = new LatencyBook();
  /** Observations {@link inferBatch} takes at most (1: one at a time). */
  readonly maxBatch: number;
  /** Whether calls are batched continuously (what the bridge hands over as soon as they arrive). */
  readonly continuous: boolean;
  /** The control rate a stream's stamps are counted in (configured, else the model's). */
  readonly controlRateHz: number;
  readonly decodeTotals: ArDecodeTotals = {
    chunks: 0,
    keptTokens: 0,
    tokens: 0,
    decoderCalls: 0,
    guessesFed: 0,
    guessesAccepted: 0,
  };
  /** What the bridge calls on a client's `reset`: forget that stream's frames and previous chunk. */
  readonly pruner: { reset(stream?: string): void };
  readonly #ingest: FrameIngest;
  readonly #limits: ActionLimits;
  readonly #maxStateDeviation: number;
  readonly #drafts: DraftBook;
  #sequence = 0;
  readonly #queue = new SerialQueue();
  readonly #scheduler: DecodeScheduler<ContinuousRequest, ActionChunk> | undefined;
  /** Continuous calls not settled yet. */
  readonly #inFlight = new Set<Promise<ActionChunk>>();

  private constructor(
    policy: ArPolicy,
    options: ArPipelineOptions,
    limits: ActionLimits,
    ingest: IngestLimits,
  ) {
    const pkg = policy.pkg;
    this.model = { dir: pkg.dir, manifest: pkg.manifest };
    this.policy = new PrunedArPolicy(policy, options.pruning);
    this.cameras = pkg.manifest.cameras;
    this.precision = pkg.variant.precision;
    this.decoding = options.decoding;
    this.maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 1));
    this.continuous = options.continuous === true;
    this.#scheduler = this.continuous
      ? new DecodeScheduler<ContinuousRequest, ActionChunk>(policy.graphs, this.maxBatch, (r) =>
          this.#startMany(r),
        )
      : undefined;
    this.#limits = limits;
    this.#maxStateDeviation = ingest.maxStateDeviation;
    this.controlRateHz = controlRate(options.controlRateHz, pkg.manifest.control_rate_hz);
    this.#drafts = new DraftBook(
      syncExecuteSteps(options.executeSteps ?? 0, pkg.horizon),
      this.controlRateHz,
    );
    this.#ingest = new FrameIngest(
      { width: pkg.image.width, height: pkg.image.height, ...pkg.normalisation },
      ingest,
    );
    this.pruner = {
      reset: (stream?: string) => {
        this.policy.reset(stream);
        this.#drafts.forget(stream);
      },
    };
  }

  /**
   * Check the limits against the manifest, open the package's variant of `precision` and warm up.
   *
   * @throws {ConfigError} for limits that do not fit the model (before any graph is opened).
   * @throws {ModelError} for a package that does not load (naming the manifest field).
   */
  static async create(dir: string, options: ArPipelineOptions): Promise<ArPipeline> {
    const threads = options.intraOpThreads ?? 0;
    const policy = await ArPolicy.load(
      dir,
      { ...(threads > 0 ? { intraOpNumThreads: threads } : {}), interOpNumThreads: 1 },
      { precision: options.precision ?? 'fp32' },
    );
    let pipeline: ArPipeline;
    try {
      const limits = resolveLimits(policy.pkg.manifest, options.limits);
      pipeline = new ArPipeline(policy, options, limits, options.ingest ?? defaultIngestLimits());
      await pipeline.#warmup(options.warmupRuns ?? 0);
    } catch (error) {
      await policy.close();
      throw error;
    }
    return pipeline;
  }

  /** Visual tokens per observation before pruning. */
  get totalTokens(): number {
    return this.policy.totalTokens;
  }
  /** Visual tokens the prefill sees now (the controller's budget when it is on). */
  get tokenBudget(): number {
    return this.policy.tokenBudget;
  }
  /** What continuous batching did since the start (or the last reset); undefined when it is off. */
  get batching(): SchedulerStats | undefined {
    return this.#scheduler?.stats();
  }

  /** Zero the counters of {@link batching} (after a warm-up). */
  resetBatching(): void {
    this.#scheduler?.resetStats();
  }

  /** The limits every action is clamped to (configured, else the manifest's; the derived step limit). */
  get actionLimits(): ActionLimits {
    return this.#limits;
  }

  /**
   * One observation → one safe action chunk, after the observations already queued.
   *
   * @throws {InputError} naming the field: `observation`, `frame…`, `images[i].camera`,
   *   `instruction`, `state[i]`, `stamp`, `stream`, `keep_count`, or the ingest's field for a frame
   *   it refuses.
   * @throws {BackendError} when a graph fails; {@link UnsafeActionError} for a non-finite action.
   */
  infer(obs: Observation): Promise<ActionChunk> {
    // A bad observation fails at once, not after the observations queued before it.
    let checked: CheckedObservation;
    try {
      checked = this.#check(obs);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.#scheduler !== undefined) {
      const t0 = performance.now();
      const run = this.#ingest
        .toRgbAsync(checked.frame)
        .then((rgb) => this.#decodeContinuous(obs, rgb, checked.budget, t0));
      // Until it settles, release() waits for it (its frame may still be decoding).
      this.#inFlight.add(run);
      const forget = (): void => {
        this.#inFlight.delete(run);
      };
      run.then(forget, forget);
      return run;
    }
    return this.#queue.run(() => this.#inferNow(obs, checked));
  }

  /** Release the graphs, after the observations already queued. */
  async release(): Promise<void> {
    await this.#queue.idle();
    await Promise.allSettled([...this.#inFlight]);
    await this.#scheduler?.idle();
    await this.policy.policy.close();
  }

  /**
   * Check an observation and decode its frame ahead of {@link inferBatch} (the bridge prepares
   * the next batch's frames while one runs).
   *
   * @throws {InputError} as {@link infer}.
   */
  async prepare(obs: Observation): Promise<PreparedObservation> {
    const t0 = performance.now();
    const checked = this.#check(obs);
    const rgb = await this.#ingest.toRgbAsync(checked.frame);
    return new PreparedObservation(obs, rgb, checked.budget, performance.now() - t0);
  }

  /**
   * Up to {@link maxBatch} observations decoded together, after the calls already queued; one
   * result per observation, a bad one rejecting its own entry only.
   */
  inferBatch(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]> {
    if (this.#scheduler !== undefined)
      return Promise.allSettled(
        batch.map((o) =>
          o instanceof PreparedObservation
            ? this.#decodeContinuous(
                o.observation,
                o.rgb,
                o.budget,
                performance.now() - o.preprocessMs,
              )
            : this.infer(o),
        ),
      );
    return this.#queue.run(() => this.#inferBatchNow(batch));
  }

  async #inferBatchNow(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]> {
    const t0 = performance.now();
    const prepared = await Promise.allSettled(
      batch.map((o) => (o instanceof PreparedObservation ? Promise.resolve(o) : this.prepare(o))),
    );
    const ready = prepared.flatMap((p, i) => (p.status === 'fulfilled' ? [{ p: p.value, i }] : []));
    const settled: PromiseSettledResult<ActionChunk>[] = prepared.map((p) =>
      p.status === 'rejected' ? p : { status: 'rejected', reason: new Error('not run') },
    );
    if (ready.length === 0) return settled;
    const inputs = ready.map(({ p }) => this.#arObservation(p.observation, p.rgb));
    const t1 = performance.now();
    try {
      const results = await this.policy.actGreedyMany(
        ready.map(({ p }, k) => ({
          obs: inputs[k] as ArObservation,
          ...(p.budget === undefined ? {} : { budget: p.budget }),
        })),
      );
      const t2 = performance.now();
      ready.forEach(({ p, i }, k) => {
        try {
          settled[i] = {
            status: 'fulfilled',
            value: this.#finish(p.observation, inputs[k] as ArObservation, results[k] as ArAction, [
              t0 - p.preprocessMs,
              t1,
              t2,
            ]),
          };
        } catch (reason) {
          settled[i] = { status: 'rejected', reason };
        }
      });
    } catch (reason) {
      for (const { i } of ready) settled[i] = { status: 'rejected', reason };
    }
    return settled;
  }

  async #inferNow(obs: Observation, checked: CheckedObservation): Promise<ActionChunk> {
    const t0 = performance.now();
    // One observation at a time: a raw frame is converted here, on this thread (no copy of the
    // frame and no hop to libuv's pool, which cost more than the kernel at camera sizes); an
    // encoded one is decoded by sharp on the pool.
    const rgb = await this.#ingest.toRgb(checked.frame);
    const input = this.#arObservation(obs, rgb);
    const t1 = performance.now();
    const result = await this.policy.act(input, this.#actOptions(obs, input, checked.budget));
    return this.#finish(obs, input, result, [t0, t1, performance.now()]);
  }

  /**
   * The decoding options of one observation: the configured strategy and window, the stream's
   * previous chunk as the speculative draft (taken now), and the request's token budget.
   */
  #actOptions(
    obs: Observation,
    input: ArObservation,
    budget: number | undefined,
  ): Omit<ArActOptions, 'pruner'> {
    const { strategy, window } = this.decoding;
    const previous =
      strategy === 'speculative'
        ? this.#drafts.draft(input.stream ?? 'default', obs.stamp)
        : undefined;
    return {
      strategy,
      ...(window > 0 ? { window } : {}),
      ...(previous === undefined ? {} : { previous }),
      ...(budget === undefined ? {} : { budget }),
    };
  }

  /**
   * One observation (frame decoded) through the scheduler: admitted into the active set between
   * two decoder calls (with the others waiting then, see {@link #startMany}), decoded with the
   * others, made safe by {@link #finish}.
   */
  #decodeContinuous(
    obs: Observation,
    rgb: Uint8Array,
    budget: number | undefined,
    t0: number,
  ): Promise<ActionChunk> {
    const scheduler = this.#scheduler as DecodeScheduler<ContinuousRequest, ActionChunk>;
    const input = this.#arObservation(obs, rgb);
    return scheduler.submit({ obs, input, budget, t0, t1: performance.now() });
  }

  /**
   * The requests waiting together, admitted together: one encoder call and one prefill
   * ({@link PrunedArPolicy.beginMany}). The draft of speculative decoding is taken now, from the
   * stream's latest chunk. If the group fails before pruning (a request's checks, the encoder),
   * each request starts alone, so that a bad one fails only itself; a failed prefill is retried
   * alone by the policy, from the tokens already pruned.
   */
  async #startMany(
    requests: readonly ContinuousRequest[],
  ): Promise<PromiseSettledResult<Admission<ActionChunk>>[]> {
    const started = performance.now();
    const begin = (group: readonly ContinuousRequest[]) =>
      this.policy.beginMany(
        group.map((r) => ({ obs: r.input, options: this.#actOptions(r.obs, r.input, r.budget) })),
      );
    const { results, alone } = await togetherOrAlone(requests, begin);
    return mapFulfilled(results, ({ sequence, kept, retried }, i) => {
      const { obs, input, budget, t0, t1 } = requests[i] as ContinuousRequest;
      // As PrunedArPolicy.act: encoder to last token, under the controller's budget only; not a
      // start that ran again after a failure (the failure's time says nothing of the load).
      const learns = budget === undefined && !alone && !retried;
      return {
        sequence,
        finish: (result: DecodeResult) => {
          const t2 = performance.now();
          if (learns) this.policy.learn(t2 - started);
          const action: ArAction = {
            ...result,
            actions: this.policy.policy.toActions(result.chunk, input.state),
            keptTokens: kept,
          };
          return this.#finish(obs, input, action, [t0, t1, t2]);
        },
      };
    });
  }

  /** The policy's view of an observation whose frame is RGB at the model's size. */
  #arObservation(obs: Observation, rgb: Uint8Array): ArObservation {
    const pkg = this.policy.policy.pkg;
    const pixels = new Float32Array(3 * pkg.image.width * pkg.image.height);
    this.#ingest.normalise(rgb, pixels);
    return {
      pixels,
      rgb,
      instruction: obs.instruction,
      state: Float32Array.from(obs.state),
      stream: obs.stream ?? 'default',
    };
  }

  /**
   * A decoded chunk made safe and recorded: kept as its stream's draft, the absolute actions
   * through the runtime's clamp, the totals and latency counted. `times`: start, decoding start
   * and end (performance.now()).
   */
  #finish(
    obs: Observation,
    input: ArObservation,
    result: ArAction,
    [t0, t1, t2]: readonly [number, number, number],
  ): ActionChunk {
    const pkg = this.policy.policy.pkg;
    const stream = input.stream ?? 'default';
    // Not clamped by the policy: the runtime's clamp counts every value it changes.
    const actions = this.policy.policy.toAbsolute(result.chunk, input.state);
    if (this.decoding.strategy === 'speculative') this.#drafts.keep(stream, actions, obs.stamp);
    const clamped = enforceLimits(actions, pkg.actionDim, this.#limits);
    const t3 = performance.now();
    const totals = this.decodeTotals;
    totals.chunks++;
    totals.keptTokens += result.keptTokens;
    totals.tokens += result.tokens.length;
    totals.decoderCalls += result.decoderCalls;
    totals.guessesFed += result.guessesFed;
    totals.guessesAccepted += result.guessesAccepted;
    // The policy stage is encoder, pruning, prefill and decoding together (ArPolicy runs them);
    // batched continuously, the wait for a place in the active set too.
    const stages: StageTimings = {
      preprocess: t1 - t0,
      encode: 0,
      prune: 0,
      policy: t2 - t1,
      postprocess: t3 - t2,
    };
    const latencyMs = t3 - t0;
    this.latency.record(stages, latencyMs);
    return {
      sequence: this.#sequence++,
      actions,
      horizon: pkg.horizon,
      actionDim: pkg.actionDim,
      dt: 1 / pkg.manifest.control_rate_hz,
      sourceStamp: obs.stamp,
      latencyMs,
      stages,
      tokens: { total: this.totalTokens, kept: result.keptTokens },
      clamped,
    };
  }

  /** {@link checkArObservation} with this pipeline's model, cameras and bounds. */
  #check(obs: Observation): CheckedObservation {
    return checkArObservation(obs, {
      manifest: this.model.manifest,
      cameras: this.cameras,
      totalTokens: this.totalTokens,
      maxStateDeviation: this.#maxStateDeviation,
    });
  }

  async #warmup(runs: number): Promise<void> {
    if (runs <= 0) return;
    const pkg = this.policy.policy.pkg;
    const frame: Frame = {
      kind: 'raw',
      encoding: 'rgb8',
      width: pkg.image.width,
      height: pkg.image.height,
      data: new Uint8Array(pkg.image.width * pkg.image.height * 3).fill(128),
    };
    for (let i = 0; i < runs; i++) {
      const obs: Observation = { frame, instruction: '', state: pkg.stateMean, stream: '' };
      await this.#inferNow(obs, this.#check(obs));
    }
    this.pruner.reset();
    this.latency.reset();
    for (const k of Object.keys(this.decodeTotals) as (keyof ArDecodeTotals)[])
      this.decodeTotals[k] = 0;
    this.#sequence = 0;
  }
}
