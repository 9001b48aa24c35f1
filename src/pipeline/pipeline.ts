import { performance } from 'node:perf_hooks';
import { OnnxBackend, type ExecutionProvider, type ProviderFallback } from '../backend/onnx.js';
import type { TokenPolicyBackend } from '../backend/backend.js';
import { BackendError, InputError } from '../errors.js';
import { kernelBackend, warnOnce } from '../native/index.js';
import { defaultIngestLimits, FrameIngest, type Frame, type RawFrame } from '../ingest/index.js';
import { selectVariant, type ModelPackage, type Precision } from '../model/manifest.js';
import { tokenBudget, type Pruner } from '../pruning/pruner.js';
import { createPruner } from '../pruning/strategies.js';
import {
  BatchResults,
  BatchSlots,
  normaliseState,
  policyGroups,
  pruneInput,
  toActions,
} from './batch.js';
import { checkObservation, checkState } from './observation.js';
import {
  PreparedObservation,
  type ActionChunk,
  type Observation,
  type PipelineOptions,
} from './types.js';
import { BUDGET_TUNING, BudgetController } from '../runtime/budget.js';
import { LatencyBook, LatencyHistogram, type StageTimings } from '../runtime/latency.js';
import { resolveLimits, type ActionLimits } from '../runtime/safety.js';
import { SerialQueue } from '../runtime/serial-queue.js';

export {
  PreparedObservation,
  type ActionChunk,
  type Observation,
  type PipelineOptions,
} from './types.js';

/**
 * The core pipeline: frame → ingest → vision encoder → token pruner → policy → safe action chunk.
 * It knows nothing of ROS, ZeroMQ or MCAP.
 *
 * Concurrency: calls may overlap. {@link infer} and {@link inferBatch} are serialised by a queue
 * inside the pipeline (they share the model's input buffers and the pruner's state across their
 * awaits), so each call returns its own observation's chunk, in call order; {@link prepare} runs
 * at once, in parallel with them. For throughput across callers, batch with `inferBatch`.
 *
 * @example
 * const pipeline = await VlaPipeline.create(await loadModelPackage('models/tiny-vla'), options);
 * const chunk = await pipeline.infer({ frame, instruction: 'move to the red block', state: [0.5, 0.5] });
 */
export class VlaPipeline {
  readonly model: ModelPackage;
  readonly latency = new LatencyBook();
  /** End-to-end latency since the keep ratio last changed (the budget controller's settled state). */
  readonly latencyAtCurrentRatio = new LatencyHistogram();
  readonly #backend: TokenPolicyBackend;
  readonly #ingest: FrameIngest;
  readonly #pruner: Pruner;
  readonly #limits: ActionLimits;
  readonly #maxStateDeviation: number;
  readonly #kept: Int32Array;
  #budget: number;
  readonly #controller: BudgetController | undefined;
  #keptSum = 0;
  #runs = 0;
  #lastRgb: Uint8Array | undefined;
  #lastKept = 0;
  #sequence = 0;
  #ready = false;
  readonly #slots: BatchSlots;
  /** Inferences one at a time, in call order (see the class description). */
  readonly #queue = new SerialQueue();

  private constructor(model: ModelPackage, backend: TokenPolicyBackend, options: PipelineOptions) {
    this.model = model;
    this.#backend = backend;
    const m = model.manifest;
    const limits = options.ingest ?? defaultIngestLimits();
    this.#maxStateDeviation = limits.maxStateDeviation;
    this.#ingest = new FrameIngest(
      {
        width: m.image.width,
        height: m.image.height,
        resize: m.image.resize,
        mean: m.image.mean,
        std: m.image.std,
      },
      limits,
    );
    this.#pruner = createPruner(options.pruning.strategy, { seed: options.pruning.seed });
    this.#kept = new Int32Array(m.patch_grid.width * m.patch_grid.height);
    this.#slots = new BatchSlots(m, this.#kept.length);
    this.#controller =
      options.latencyBudgetMs > 0 && options.pruning.strategy !== 'none'
        ? new BudgetController({
            budgetMs: options.latencyBudgetMs,
            minRatio: Math.min(options.pruning.minKeepRatio, options.pruning.keepRatio),
            maxRatio: options.pruning.keepRatio,
            ...BUDGET_TUNING,
          })
        : undefined;
    this.#budget = tokenBudget(
      this.#kept.length,
      options.pruning.keepRatio,
      options.pruning.keepCount,
    );
    this.#limits = resolveLimits(m, options.limits);
  }

  /** Load the variant, create the sessions on the provider chain, and warm up. */
  static async create(model: ModelPackage, options: PipelineOptions): Promise<VlaPipeline> {
    warnOnce(options.backend.log ?? ((line) => process.stderr.write(`${line}\n`)));
    resolveLimits(model.manifest, options.limits); // bad limits fail before sessions are made
    const backend = await OnnxBackend.create(
      model,
      selectVariant(model, options.precision, options.backend.executionProviders[0]),
      options.backend,
    );
    const pipeline = new VlaPipeline(model, backend, options);
    await pipeline.#warmup(options.warmupRuns);
    return pipeline;
  }

  /** True once warm-up finished. */
  get ready(): boolean {
    return this.#ready;
  }
  get provider(): ExecutionProvider {
    return this.#backend.provider;
  }
  get providerFallbacks(): readonly ProviderFallback[] {
    return this.#backend.fallbacks;
  }
  get precision(): Precision {
    return this.#backend.variant.precision;
  }
  get totalTokens(): number {
    return this.#kept.length;
  }
  /** The keep ratio now (the latency-budget controller's when it is on). */
  get keepRatio(): number {
    return this.#budget / this.#kept.length;
  }
  /** Mean visual tokens the policy saw per inference since ready. */
  get meanKeptTokens(): number {
    return this.#runs === 0 ? 0 : this.#keptSum / this.#runs;
  }
  /** Tokens the policy sees per frame under the current budget. */
  get tokenBudget(): number {
    return this.#budget;
  }
  /**
   * The last frame as the encoder saw it (RGB8 at the model's size) and the grid positions of the
   * tokens the pruner kept; views valid until the next `infer` or `inferBatch` (the image is a batch
   * slot's buffer, which the next raw frame is converted into).
   */
  get lastSelection(): { readonly rgb: Uint8Array; readonly positions: Int32Array } | undefined {
    if (this.#lastRgb === undefined) return undefined;
    return { rgb: this.#lastRgb, positions: this.#kept.subarray(0, this.#lastKept) };
  }
  /** The limits every action is clamped to (configured, else the manifest's; the derived step limit). */
  get actionLimits(): ActionLimits {
    return this.#limits;
  }
  /** Which implementation runs the pruning and ingest kernels ('native' or 'typescript'). */
  get kernels(): string {
    return kernelBackend().name;
  }
  get pruner(): Pruner {
    return this.#pruner;
  }
  /**
   * Most observations {@link inferBatch} takes at once: more than 1 only when the model's
   * manifest declares a batch dimension.
   */
  get maxBatch(): number {
    return this.#backend.maxBatch;
  }

  /**
   * Run one observation through the pipeline, after the inferences already queued (calls may
   * overlap; see the class description): a batch of one, the same path as {@link inferBatch}.
   * Throws InputError for bad frames or state.
   */
  async infer(obs: Observation): Promise<ActionChunk> {
    // A bad observation fails at once, not after the inferences queued before it.
    checkObservation(obs, this.model.manifest, this.#maxStateDeviation);
    return this.#queue.run(async () => one(await this.#inferBatchNow([obs], true)));
  }

  /**
   * Check an observation and decode its frame to RGB at the model's size, without touching the
   * pipeline's state: safe to call for the next observations while an inference runs (the decode
   * and the raw-frame kernel run on libuv's thread pool, so several observations prepare in
   * parallel). Pass the result to {@link inferBatch}.
   *
   * @throws {InputError} as {@link infer} does, for the same observations.
   */
  async prepare(obs: Observation): Promise<PreparedObservation> {
    const t0 = performance.now();
    const budget = this.#checkObservation(obs);
    // On the thread pool: the JavaScript thread stays free for a running inference.
    const rgb = await this.#ingest.toRgbAsync(obs.frame);
    return new PreparedObservation(obs, rgb, budget, performance.now() - t0);
  }

  /**
   * Whether {@link prepare} ahead of {@link inferBatch} saves the batch time for `obs`: yes for
   * an encoded frame (JPEG/PNG, decoded on libuv's pool meanwhile); no for a raw frame, which
   * `inferBatch` converts itself, with the batch's other raw frames, in one native call that
   * writes the encoder's input directly: faster than a hop to the pool and back for each.
   */
  benefitsFromPrepare(obs: Observation): boolean {
    return obs.frame.kind !== 'raw';
  }

  /**
   * The checks of {@link prepare} (those of `checkObservation`, state included, unless `checked`
   * says {@link infer} made them already); the observation's own token budget, if any.
   */
  #checkObservation(obs: Observation, checked = false): number | undefined {
    if (!checked) checkObservation(obs, this.model.manifest, this.#maxStateDeviation);
    return obs.keepCount === undefined ? undefined : this.#budgetFor(obs.keepCount);
  }

  /**
   * The batch's observations not prepared yet, prepared now: their raw frames in one native call
   * on this thread and the kernel's few persistent threads (no hop to libuv's pool and back,
   * which costs more than the kernel itself at camera sizes), encoded frames decoded by sharp.
   * A bad observation rejects its own entry only.
   *
   * A raw frame's kernel pass also writes its normalised tensor into the encoder's input slot it
   * will take (the slot of its index among the entries that passed the checks); `tensorSlot[i]`
   * says which slot batch entry i's tensor is in, if any.
   */
  async #prepareNow(
    batch: readonly (Observation | PreparedObservation)[],
    checked: boolean,
  ): Promise<{
    settled: PromiseSettledResult<PreparedObservation>[];
    tensorSlot: (number | undefined)[];
  }> {
    const t0 = performance.now();
    const settled = new Array<PromiseSettledResult<PreparedObservation>>(batch.length);
    const tensorSlot = new Array<number | undefined>(batch.length);
    const todo: { j: number; obs: Observation; budget: number | undefined; slot: number }[] = [];
    let passed = 0;
    batch.forEach((o, j) => {
      if (o instanceof PreparedObservation) {
        settled[j] = { status: 'fulfilled', value: o };
        passed++;
        return;
      }
      try {
        todo.push({ j, obs: o, budget: this.#checkObservation(o, checked), slot: passed });
        passed++;
      } catch (reason) {
        settled[j] = { status: 'rejected', reason };
      }
    });
    const raw = todo.filter((t) => t.obs.frame.kind === 'raw');
    const encoded = todo.filter((t) => t.obs.frame.kind !== 'raw');
    // Encoded frames start decoding on libuv's pool first, and decode while the raw ones convert.
    // Settled from the start, so that a throw below leaves no decode's failure unheard (and no
    // promise made per frame when every frame is raw).
    const decoding =
      encoded.length > 0
        ? Promise.allSettled(encoded.map((t) => this.#ingest.toRgb(t.obs.frame)))
        : undefined;
    // Into the slots' own buffers: the previous batch's images are done with (lastSelection's
    // views are valid until the next inference).
    const pixels = raw.length > 0 ? this.#backend.pixelSlots(passed) : [];
    const converted = this.#ingest.rawToRgbMany(
      raw.map((t) => t.obs.frame as RawFrame),
      raw.map((_, k) => this.#slots.slot(k).rgb),
      raw.map((t) => pixels[t.slot]),
    );
    const decoded = decoding === undefined ? [] : await decoding;
    const ms = performance.now() - t0;
    const place = (
      { j, obs, budget }: (typeof todo)[number],
      r: PromiseSettledResult<Uint8Array>,
    ): void => {
      settled[j] =
        r.status === 'fulfilled'
          ? { status: 'fulfilled', value: new PreparedObservation(obs, r.value, budget, ms) }
          : r;
    };
    raw.forEach((t, i) => {
      const r = converted[i] as PromiseSettledResult<Uint8Array>;
      place(t, r);
      if (r.status === 'fulfilled') tensorSlot[t.j] = t.slot;
    });
    encoded.forEach((t, i) => {
      place(t, decoded[i] as PromiseSettledResult<Uint8Array>);
    });
    return { settled, tensorSlot };
  }

  /**
   * Run several observations (of different clients or streams) as one batch: ingest per
   * observation, one encoder call, pruning per observation (in order, so stateful pruners see each
   * stream's frames in the order given), then one policy call per group of observations that keep
   * the same number of tokens. Each result is what {@link infer} would return for that observation
   * run alone in the same order (up to float rounding of the batched graphs), or the error it would
   * throw: a bad observation fails only its own entry; a backend failure fails the entries it
   * affected. Needs a batch of at most {@link maxBatch}.
   *
   * In a batch, the stages of a chunk are the times its observation spent in each (stages the
   * batch shares count in full), and `latencyMs` is their sum. The latency-budget controller, when
   * on, adapts the token budget between batches (every observation of a batch without its own
   * keep count uses the budget the batch started with).
   *
   * @example
   * const results = await pipeline.inferBatch([obsA, obsB]);
   * for (const r of results) if (r.status === 'fulfilled') publish(r.value);
   * @throws {InputError} when there are more than {@link maxBatch} observations.
   */
  async inferBatch(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]> {
    return this.#queue.run(() => this.#inferBatchNow(batch));
  }

  /** `checked`: {@link infer} has checked the observations already (see #checkObservation). */
  async #inferBatchNow(
    batch: readonly (Observation | PreparedObservation)[],
    checked = false,
  ): Promise<PromiseSettledResult<ActionChunk>[]> {
    const m = this.model.manifest;
    const size = batch.length;
    if (size > this.maxBatch) {
      throw new InputError(
        `Expected at most ${this.maxBatch} observations in a batch${this.maxBatch === 1 ? ` (the manifest of ${m.name} declares no batch dimension)` : ''} but received ${size}`,
        { field: 'batch' },
      );
    }
    const { settled, tensorSlot } = await this.#prepareNow(batch, checked);
    const t0 = performance.now();
    const results = new BatchResults(settled);
    const items = results.items;
    const fail = (reason: unknown, slots: readonly number[]): void => {
      results.fail(reason, slots);
    };
    if (items.length === 0) return results.complete();
    const pending = items.map((_, j) => j);
    const n = this.#kept.length;
    const d = m.token_dim;
    const pixels = this.#backend.pixelSlots(items.length);
    const budget = this.#budget;
    // Entries that fail here (a PreparedObservation built by hand with a wrong frame or budget)
    // fail alone; their slot still goes through the encoder, and its output is ignored.
    const failed = new Set<number>();
    items.forEach(({ index, prepared }, j) => {
      const slot = this.#slots.slot(j);
      const obs = prepared.observation;
      try {
        const b = prepared.budget;
        if (b !== undefined && (!Number.isInteger(b) || b < 1 || b > n)) {
          throw new InputError(`Expected keep_count in [1, ${n}] but received ${b}`, {
            field: 'keep_count',
          });
        }
        // A raw frame's tensor is there already, unless an entry before it failed in the kernel's
        // checks and shifted it to another slot.
        if (tensorSlot[index] !== j)
          this.#ingest.normalise(prepared.rgb, pixels[j] as Float32Array);
        // The state of an observation prepared here was checked with it; one that came prepared
        // may have been built by hand.
        if (batch[index] instanceof PreparedObservation) this.#checkState(obs.state);
      } catch (error) {
        failed.add(j);
        fail(error, [j]);
        return;
      }
      normaliseState(obs.state, m.state, slot.state);
      if (obs.instruction !== slot.instruction) {
        this.model.tokenizer.encodeInto(obs.instruction, slot.ids);
        slot.instruction = obs.instruction;
      }
    });
    const t1 = performance.now();
    let encoded;
    try {
      encoded = await this.#backend.encodeBatch(items.length);
    } catch (error) {
      fail(error, pending);
      return results.complete();
    }
    const t2 = performance.now();
    const kept = new Int32Array(items.length).fill(-1);
    items.forEach(({ prepared }, j) => {
      if (failed.has(j)) return;
      const slot = this.#slots.slot(j);
      try {
        kept[j] = this.#pruner.prune(
          pruneInput(
            m,
            encoded.tokens.subarray(j * n * d, (j + 1) * n * d),
            encoded.saliency.subarray(j * n, (j + 1) * n),
            prepared.rgb,
            prepared.observation.stream,
          ),
          prepared.budget ?? budget,
          slot,
        );
      } catch (error) {
        fail(error, [j]);
      }
    });
    const t3 = performance.now();
    // One policy call per kept-token count, in order of first appearance.
    const a = m.chunk.action_dim;
    const per = m.chunk.horizon * a;
    const done: { j: number; actions: Float32Array; clamped: number; stages: StageTimings }[] = [];
    for (const { count, members } of policyGroups(kept)) {
      const g0 = performance.now();
      let raw: Float32Array;
      try {
        raw = await this.#backend.actBatch(
          count,
          members.map((j) => this.#slots.slot(j).input),
        );
      } catch (error) {
        fail(error, members);
        continue;
      }
      const g1 = performance.now();
      members.forEach((j, r) => {
        const item = items[j];
        if (item === undefined) return;
        const p0 = performance.now();
        let out: { actions: Float32Array; clamped: number };
        try {
          out = toActions(raw, r * per, m, this.#limits);
        } catch (error) {
          fail(error, [j]);
          return;
        }
        const { actions, clamped } = out;
        done.push({
          j,
          actions,
          clamped,
          stages: {
            preprocess: item.prepared.preprocessMs + (t1 - t0),
            encode: t2 - t1,
            prune: t3 - t2,
            policy: g1 - g0,
            postprocess: performance.now() - p0,
          },
        });
      });
    }
    done.sort((x, y) => x.j - y.j);
    for (const { j, actions, clamped, stages } of done) {
      const item = items[j];
      const k = kept[j] as number;
      if (item === undefined) continue;
      const latencyMs =
        stages.preprocess + stages.encode + stages.prune + stages.policy + stages.postprocess;
      this.#record(stages, latencyMs, k);
      results.fulfil(item, {
        sequence: this.#sequence++,
        actions,
        horizon: m.chunk.horizon,
        actionDim: a,
        dt: 1 / m.control_rate_hz,
        sourceStamp: item.prepared.observation.stamp,
        latencyMs,
        stages,
        tokens: { total: n, kept: k },
        clamped,
      });
    }
    const last = done[done.length - 1];
    if (last !== undefined) {
      const k = kept[last.j] as number;
      this.#kept.set(this.#slots.slot(last.j).positions.subarray(0, k));
      this.#lastKept = k;
      this.#lastRgb = items[last.j]?.prepared.rgb;
    }
    return results.complete();
  }

  /** Check the state's length and values as {@link infer} does. */
  #checkState(state: ArrayLike<number>): void {
    checkState(state, this.model.manifest.state, this.#maxStateDeviation);
  }

  /** Book one chunk's latency (after warm-up) and let the budget controller adapt. */
  #record(stages: StageTimings, latencyMs: number, kept: number): void {
    if (!this.#ready) return;
    this.latency.record(stages, latencyMs);
    this.latencyAtCurrentRatio.record(latencyMs);
    this.#keptSum += kept;
    this.#runs++;
    if (this.#controller !== undefined) {
      const budget = tokenBudget(this.#kept.length, this.#controller.observe(latencyMs), 0);
      if (budget !== this.#budget) this.latencyAtCurrentRatio.reset();
      this.#budget = budget;
    }
  }

  /** A per-inference keep count, checked: an integer in [1, total tokens]. */
  #budgetFor(keepCount: number): number {
    const total = this.#kept.length;
    if (!Number.isInteger(keepCount) || keepCount < 1 || keepCount > total) {
      throw new InputError(
        `Expected keep_count in [1, ${total}] (the model has ${total} visual tokens) but received ${keepCount}`,
        { field: 'keep_count' },
      );
    }
    return tokenBudget(total, 1, keepCount);
  }

  async #warmup(runs: number): Promise<void> {
    const m = this.model.manifest;
    const frame: Frame = {
      kind: 'raw',
      width: m.image.width,
      height: m.image.height,
      encoding: 'rgb8',
      data: new Uint8Array(m.image.width * m.image.height * 3).fill(128),
    };
    const state = m.state.mean;
    for (let i = 0; i < runs; i++)
      one(await this.#inferBatchNow([{ frame, instruction: '', state }]));
    this.#pruner.reset();
    this.#slots.forgetInstructions();
    this.#sequence = 0;
    this.#ready = true;
  }

  /** Release the sessions, after the inferences already queued. */
  async release(): Promise<void> {
    await this.#queue.idle();
    this.#ready = false;
    await this.#backend.release();
  }
}

/** The chunk of a batch of one, or the error its observation failed with. */
function one(results: readonly PromiseSettledResult<ActionChunk>[]): ActionChunk {
  const [result] = results;
  if (result === undefined) {
    throw new BackendError('Expected one result for a batch of one but received none', {
      field: 'batch',
    });
  }
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}
