import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { BackendError, InputError } from '../errors.js';
import { FrameIngest, type Frame } from '../ingest/index.js';
import type { FlowPackage } from '../model/flow-manifest.js';
import { selectFlowVariant } from '../model/flow-manifest.js';
import type { Precision } from '../model/manifest.js';
import { createPruner } from '../pruning/strategies.js';
import { tokenBudget, type Pruner } from '../pruning/pruner.js';
import { Rng } from '../util/rng.js';
import { FlowBudgetController, type FlowEffort } from '../runtime/flow-budget.js';
import { camerasToRgb, sameImageSpec } from './cameras.js';
import { openFlowSessions, type FlowSessions } from './graphs.js';
import { KvLayout, VisualKvCache } from './kv.js';
import { guidedVelocity, type BatchVelocity, type RtcGuidance } from './rtc.js';
import type { FlowPolicyOptions, FlowRequest, FlowResult, FlowTimings } from './policy-types.js';

// The options and results are part of the policy's API: importers take them from this module.
export * from './policy-types.js';

/** Instruction keys/values kept as ONNX Runtime tensors, fed to every frame's graphs as they are. */
interface InstructionKv {
  readonly text: string;
  readonly keys: ort.Tensor;
  readonly values: ort.Tensor;
}

/**
 * The runtime of a flow-matching VLA: every camera ingested and encoded (one batched encoder call),
 * pruned per camera, the prefix built once per frame, the action expert integrated with Euler
 * steps from seeded Gaussian noise, de-normalised and clamped. The prefix keys/values stay in the
 * tensors ONNX Runtime returned; every denoising step feeds those same tensors.
 *
 * @example
 * const policy = await FlowPolicy.create(await loadFlowPackage('models/tiny-vla-flow'), options);
 * const { actions } = await policy.infer({ images: [table, wrist], instruction, state, seed: 1 });
 */
export class FlowPolicy {
  readonly pkg: FlowPackage;
  /** The variant running (what `precision: auto` resolved to). */
  readonly variant: { readonly name: string; readonly precision: Precision };
  readonly steps: number;
  readonly totalTokens: number;
  readonly tokenBudget: number;
  readonly #sessions: FlowSessions;
  readonly #options: FlowPolicyOptions;
  readonly #ingest: FrameIngest[];
  readonly #pruner: Pruner;
  readonly #layout: KvLayout;
  readonly #visual: VisualKvCache;
  readonly #pixels: Float32Array;
  readonly #rgb: Uint8Array[];
  readonly #limits: { readonly min: readonly number[]; readonly max: readonly number[] };
  readonly #controller: FlowBudgetController | undefined;
  readonly #tokensPerCamera: number;
  /** Whether every camera has the same image spec (one ingest call converts them all). */
  readonly #sharedSpec: boolean;
  #instruction: InstructionKv | undefined;

  private constructor(
    pkg: FlowPackage,
    variant: { readonly name: string; readonly precision: Precision },
    sessions: FlowSessions,
    options: FlowPolicyOptions,
  ) {
    const m = pkg.manifest;
    this.pkg = pkg;
    this.variant = { name: variant.name, precision: variant.precision };
    this.#sessions = sessions;
    this.#options = options;
    this.steps = checkSteps(options.steps ?? m.denoising.steps, 'flow.steps');
    const cam = m.cameras[0];
    if (cam === undefined) throw new InputError('Expected a camera', { field: 'manifest.cameras' });
    const n = cam.patch_grid.width * cam.patch_grid.height;
    this.totalTokens = n * m.cameras.length;
    this.tokenBudget = tokenBudget(n, options.pruning.keepRatio, options.pruning.keepCount);
    this.#tokensPerCamera = n;
    this.#sharedSpec = sameImageSpec(m.cameras);
    const budget = options.latencyBudget;
    this.#controller =
      budget !== undefined && budget.budgetMs > 0
        ? new FlowBudgetController({
            budgetMs: budget.budgetMs,
            keepRatio: options.pruning.keepRatio,
            minKeepRatio:
              options.pruning.strategy === 'none'
                ? options.pruning.keepRatio
                : Math.min(budget.minKeepRatio, options.pruning.keepRatio),
            steps: this.steps,
            minSteps: budget.minSteps === 0 ? this.steps : Math.min(budget.minSteps, this.steps),
          })
        : undefined;
    this.#ingest = m.cameras.map(
      (c) =>
        new FrameIngest({
          width: c.image.width,
          height: c.image.height,
          resize: c.image.resize,
          mean: c.image.mean,
          std: c.image.std,
        }),
    );
    this.#pruner = createPruner(options.pruning.strategy, { seed: options.pruning.seed });
    this.#layout = new KvLayout(m.prefix.layers, m.prefix.heads, m.prefix.head_dim);
    this.#visual = new VisualKvCache(this.#layout, m.cameras, options.caches);
    this.#pixels = new Float32Array(m.cameras.length * 3 * cam.image.width * cam.image.height);
    this.#rgb = m.cameras.map(() => new Uint8Array(0));
    this.#limits = options.limits ?? { min: m.action.min, max: m.action.max };
  }

  /** Open the package's graphs (CPU provider) and check them against the manifest. */
  static async create(pkg: FlowPackage, options: FlowPolicyOptions): Promise<FlowPolicy> {
    const variant = selectFlowVariant(pkg, options.precision ?? 'fp32');
    const sessions = await openFlowSessions(pkg, variant, {
      intraOpThreads: options.intraOpThreads ?? 0,
    });
    return new FlowPolicy(pkg, variant, sessions, options);
  }

  /** The keep ratio and steps the latency-budget controller chose (undefined: no budget). */
  get effort(): FlowEffort | undefined {
    return this.#controller?.effort;
  }

  /** Forget every cache (instruction keys/values, reused visual tokens, pruner state). */
  reset(): void {
    this.#instruction = undefined;
    this.resetFrames();
  }

  /** Forget what earlier frames left (reused visual tokens, pruner state): a new scene. */
  resetFrames(): void {
    this.#visual.reset();
    this.#pruner.reset();
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.#sessions).map((s) => s.release()));
  }

  /**
   * One observation → one action chunk.
   *
   * @throws {InputError} for a wrong number of images, a bad frame or state.
   * @throws {BackendError} when a graph fails or returns non-finite actions.
   */
  async infer(request: FlowRequest): Promise<FlowResult> {
    const m = this.pkg.manifest;
    const t0 = performance.now();
    const timings: FlowTimings = {
      ingest: 0,
      encode: 0,
      prune: 0,
      instruction: 0,
      prefix: 0,
      denoise: 0,
      total: 0,
    };
    const cams = m.cameras;
    const given = request.rgb?.length ?? request.images.length;
    if (given !== cams.length) {
      throw new InputError(
        `Expected ${cams.length} images (${cams.map((c) => c.name).join(', ')}) but received ${given}`,
        { field: request.rgb === undefined ? 'images' : 'rgb' },
      );
    }
    const S = m.state.names.length;
    const state = new Float32Array(S);
    for (let i = 0; i < S; i++) {
      const v = request.state[i];
      if (v === undefined || !Number.isFinite(v)) {
        throw new InputError(
          `Expected ${S} finite state values but received ${String(v)} at state[${i}]`,
          { field: `state[${i}]` },
        );
      }
      state[i] = (v - (m.state.mean[i] ?? 0)) / (m.state.std[i] ?? 1);
    }
    const effort = this.#controller?.effort;
    const steps = checkSteps(request.steps ?? effort?.steps ?? this.steps, 'steps');

    // Ingest every camera into one batch for the shared encoder.
    const plane = this.#pixels.length / cams.length;
    const images = request.rgb ?? (await this.#toRgb(request.images));
    for (let c = 0; c < cams.length; c++) {
      const rgb = images[c] as Uint8Array;
      this.#rgb[c] = rgb;
      (this.#ingest[c] as FrameIngest).normalise(
        rgb,
        this.#pixels.subarray(c * plane, (c + 1) * plane),
      );
    }
    const t1 = performance.now();
    timings.ingest = t1 - t0;
    const cam = cams[0] as (typeof cams)[number];
    const enc = await this.#run('encoder', [
      new ort.Tensor('float32', this.#pixels, [cams.length, 3, cam.image.height, cam.image.width]),
    ]);
    const tokens = enc[0]?.data as Float32Array;
    const saliency = enc[1]?.data as Float32Array;
    const t2 = performance.now();
    timings.encode = t2 - t1;

    // Prune per camera; positions are global (camera c's patch p at c·N + p).
    const kept = this.#visual.select(this.#pruner, {
      tokens,
      saliency,
      rgb: this.#rgb,
      budget:
        effort === undefined
          ? this.tokenBudget
          : tokenBudget(this.#tokensPerCamera, effort.keepRatio, 0),
      tokenDim: m.token_dim,
    });
    const t3 = performance.now();
    timings.prune = t3 - t2;

    const instruction = await this.#instructionKv(request.instruction);
    const t4 = performance.now();
    timings.instruction = t4 - t3;

    // Context = the instruction's keys/values, plus the reused visual tokens' when any.
    const context =
      kept.reused.length === 0
        ? { keys: instruction.keys, values: instruction.values }
        : this.#visual.context(instruction, kept.reused);
    const stateTensor = new ort.Tensor('float32', state, [1, S]);
    const prefix = await this.#run('prefix', [
      new ort.Tensor('float32', kept.tokens, [1, kept.positions.length, m.token_dim]),
      new ort.Tensor('int64', kept.positions, [1, kept.positions.length]),
      stateTensor,
      context.keys,
      context.values,
    ]);
    const [pk, pv] = prefix as [ort.Tensor, ort.Tensor];
    this.#visual.store(kept, pk, pv, this.#rgb);
    const t5 = performance.now();
    timings.prefix = t5 - t4;

    const actions = await this.#denoise(request, steps, stateTensor, context, pk, pv);
    const t6 = performance.now();
    timings.denoise = t6 - t5;
    timings.total = t6 - t0;
    this.#controller?.observe(timings.total);
    return {
      actions: this.#denormalise(actions),
      timings,
      keptTokens: kept.positions.length + kept.reused.length,
      reusedTokens: kept.reused.length,
      instructionCached: instruction.cached,
      steps,
    };
  }

  /**
   * Every camera's frame to RGB at its model size. Raw frames of cameras with one image spec (the
   * usual case) are converted together in one native call that splits their rows across threads;
   * otherwise each camera's own ingest runs ({@link camerasToRgb}). A bad frame fails the request
   * with its camera named.
   */
  async #toRgb(frames: readonly Frame[]): Promise<Uint8Array[]> {
    const cams = this.pkg.manifest.cameras;
    const named = (c: number, error: unknown): never => {
      if (error instanceof InputError && error.field !== undefined) {
        throw new InputError(`${cams[c]?.name ?? c} camera: ${error.message}`, {
          field: `images[${c}].${error.field}`,
          cause: error,
        });
      }
      throw error;
    };
    const results = await camerasToRgb(this.#ingest, this.#sharedSpec, frames);
    return results.map((r, c) => (r.status === 'fulfilled' ? r.value : named(c, r.reason)));
  }

  /** Euler integration of the expert's velocity from seeded noise (t = 0) to the chunk (t = 1). */
  async #denoise(
    request: FlowRequest,
    steps: number,
    state: ort.Tensor,
    context: { keys: ort.Tensor; values: ort.Tensor },
    pk: ort.Tensor,
    pv: ort.Tensor,
  ): Promise<Float32Array> {
    const { horizon: H, action_dim: A } = this.pkg.manifest.chunk;
    const x = new Float32Array(H * A);
    if (request.noise !== undefined) {
      if (request.noise.length !== x.length) {
        throw new InputError(
          `Expected ${x.length} noise values (horizon × action_dim) but received ${request.noise.length}`,
          { field: 'noise' },
        );
      }
      x.set(request.noise);
    } else {
      const rng = new Rng(request.seed);
      for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    }
    const t = new Float32Array(1);
    const xTensor = new ort.Tensor('float32', x, [1, H, A]);
    const tTensor = new ort.Tensor('float32', t, [1]);
    const kv = [context.keys, context.values, pk, pv];
    const feeds = (): ort.Tensor[] =>
      this.#options.copyKvPerStep === true ? kv.map(copyTensor) : kv;
    const velocity = async (time: number): Promise<Float32Array> => {
      t[0] = time;
      const [v] = await this.#run('expert', [xTensor, tTensor, state, ...feeds()]);
      return v?.data as Float32Array;
    };
    // Several chunks against the one prefix (batch 1 keys/values broadcast in the graph).
    const batch: BatchVelocity = async (xs, count, time) => {
      const S = state.dims[1] as number;
      const states = new Float32Array(count * S);
      for (let b = 0; b < count; b++) states.set(state.data as Float32Array, b * S);
      const [v] = await this.#run('expert', [
        new ort.Tensor('float32', xs, [count, H, A]),
        new ort.Tensor('float32', new Float32Array(count).fill(time), [count]),
        new ort.Tensor('float32', states, [count, S]),
        ...feeds(),
      ]);
      return v?.data as Float32Array;
    };
    const guide = request.guidance;
    const y = guide === undefined ? undefined : this.#normalisedGuide(guide);
    const dt = 1 / steps;
    for (let s = 0; s < steps; s++) {
      const time = s * dt;
      const v =
        guide === undefined || y === undefined
          ? await velocity(time)
          : await guidedVelocity(guide, x, time, batch, y, A);
      for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) + dt * (v[i] as number);
    }
    return x;
  }

  /** The guidance target in normalised action units (the executor works in manifest units). */
  #normalisedGuide(g: RtcGuidance): Float32Array {
    const m = this.pkg.manifest;
    const A = m.chunk.action_dim;
    const out = new Float32Array(g.target.length);
    for (let i = 0; i < out.length; i++) {
      const a = i % A;
      out[i] = ((g.target[i] as number) - (m.action.mean[a] ?? 0)) / (m.action.std[a] ?? 1);
    }
    return out;
  }

  #denormalise(x: Float32Array): Float32Array {
    const m = this.pkg.manifest;
    const A = m.chunk.action_dim;
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const a = i % A;
      const v = (x[i] as number) * (m.action.std[a] ?? 1) + (m.action.mean[a] ?? 0);
      if (!Number.isFinite(v)) {
        throw new BackendError(
          `Expected finite actions from the expert but received ${v} at actions[${i}]`,
          { field: 'actions' },
        );
      }
      const lo = this.#limits.min[a] ?? -Infinity;
      const hi = this.#limits.max[a] ?? Infinity;
      out[i] = v < lo ? lo : v > hi ? hi : v;
    }
    return out;
  }

  async #instructionKv(text: string): Promise<InstructionKv & { cached: boolean }> {
    const cached = this.#instruction;
    if (this.#options.caches.instruction && cached?.text === text)
      return { ...cached, cached: true };
    const m = this.pkg.manifest;
    const ids = new BigInt64Array(m.tokenizer.max_length);
    this.pkg.tokenizer.encodeInto(text, ids);
    const [keys, values] = (await this.#run('instruction', [
      new ort.Tensor('int64', ids, [1, ids.length]),
    ])) as [ort.Tensor, ort.Tensor];
    const kv = { text, keys, values };
    this.#instruction = kv;
    return { ...kv, cached: false };
  }

  async #run(role: keyof FlowSessions, inputs: readonly ort.Tensor[]): Promise<ort.Tensor[]> {
    const spec = this.pkg.manifest.graphs[role];
    const feeds: Record<string, ort.Tensor> = {};
    spec.inputs.forEach((t, i) => {
      feeds[t.name] = inputs[i] as ort.Tensor;
    });
    this.#options.onGraphRun?.(role, feeds);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.#sessions[role].run(feeds);
    } catch (cause) {
      throw new BackendError(
        `Expected the ${role} graph to run but ONNX Runtime failed: ${cause instanceof Error ? cause.message : String(cause)}`,
        { field: `graphs.${role}`, cause },
      );
    }
    return spec.outputs.map((t) => out[t.name] as ort.Tensor);
  }
}

function copyTensor(t: ort.Tensor): ort.Tensor {
  return new ort.Tensor('float32', (t.data as Float32Array).slice(), t.dims);
}

function checkSteps(steps: number, field: string): number {
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000) {
    throw new InputError(`Expected ${field} to be an integer in [1, 1000] but received ${steps}`, {
      field,
    });
  }
  return steps;
}
