import * as ort from 'onnxruntime-node';
import { BackendError, InputError, ModelError } from '../errors.js';
import type { ExecutionProvider } from '../config/generated.js';
export type { ExecutionProvider, GraphOptimizationLevel } from '../config/generated.js';
import type {
  EncoderOutput,
  PolicyInput,
  ProviderFallback,
  TokenPolicyBackend,
} from './backend.js';
import {
  checkGraph,
  createSessions,
  providerAvailability,
  run,
  sessionOptionsFor,
  withProgress,
  type BackendOptions,
} from './sessions.js';
import { applyTelemetryPolicy } from './telemetry.js';

export {
  checkGraph,
  providerAvailability,
  sessionOptionsFor,
  type BackendOptions,
} from './sessions.js';
import {
  batchDimension,
  type GraphRole,
  type ModelPackage,
  type Variant,
} from '../model/manifest.js';

export type { EncoderOutput, PolicyInput, ProviderFallback } from './backend.js';

/** Largest batch a backend runs in one call (the bound of `serve.max_batch`). */
export const MAX_BATCH = 64;

/** Input buffers of batched runs, sized for `capacity` observations; tensors are views of them per batch size. */
interface BatchBuffers {
  readonly capacity: number;
  readonly pixels: Float32Array;
  /** Slot i of `pixels`: the CHW image of observation i. */
  readonly slots: readonly Float32Array[];
  readonly tokens: Float32Array;
  readonly positions: BigInt64Array;
  /** `positions` as numbers (both start at zero), to skip converting unchanged entries. */
  readonly positionsHeld: Int32Array;
  readonly ids: BigInt64Array;
  readonly state: Float32Array;
  /** Outputs, written by ONNX Runtime in place: visual tokens, saliency, actions. */
  readonly visual: Float32Array;
  readonly saliency: Float32Array;
  readonly actions: Float32Array;
  /** Encoder input and outputs by batch size. */
  readonly encoderTensors: Map<
    number,
    { pixels: ort.Tensor; visual: ort.Tensor; saliency: ort.Tensor }
  >;
  /** Policy output by batch size. */
  readonly actionTensors: Map<number, ort.Tensor>;
  /** Instruction ids and state by batch size. */
  readonly contextTensors: Map<number, { ids: ort.Tensor; state: ort.Tensor }>;
  /** Kept tokens and positions by batch size × (N + 1) + token count. */
  readonly tokenTensors: Map<number, { tokens: ort.Tensor; positions: ort.Tensor }>;
}

/**
 * The two ONNX Runtime sessions of a model variant (vision encoder and policy) behind typed calls
 * over reused buffers.
 *
 * @example
 * const backend = await OnnxBackend.create(pkg, selectVariant(pkg, 'fp32'), options);
 * const { tokens, saliency } = await backend.encode(pixels);
 */
/**
 * The encoder–pruning–policy backend on ONNX Runtime: two sessions (vision encoder, action
 * policy) on the first execution provider of the chain that works.
 */
export class OnnxBackend implements TokenPolicyBackend {
  readonly kind = 'encoder-policy';
  readonly provider: ExecutionProvider;
  readonly fallbacks: readonly ProviderFallback[];
  readonly variant: Variant;
  /**
   * Most observations one {@link encodeBatch} / {@link actBatch} call takes: {@link MAX_BATCH}
   * when the manifest declares a batch dimension, else 1.
   */
  readonly maxBatch: number;
  #batch: BatchBuffers | undefined;
  readonly #pkg: ModelPackage;
  readonly #encoder: ort.InferenceSession;
  readonly #policy: ort.InferenceSession;
  readonly #pixels: ort.Tensor;
  readonly #pixelData: Float32Array;
  readonly #ids: ort.Tensor;
  readonly #idData: BigInt64Array;
  readonly #state: ort.Tensor;
  readonly #stateData: Float32Array;
  readonly #tokenTensors = new Map<number, { tokens: ort.Tensor; positions: ort.Tensor }>();
  readonly #tokenData: Float32Array;
  readonly #positionData: BigInt64Array;
  readonly #names: {
    encIn: string;
    encTokens: string;
    encSaliency: string;
    pol: [string, string, string, string];
    polOut: string;
  };

  private constructor(
    pkg: ModelPackage,
    variant: Variant,
    provider: ExecutionProvider,
    fallbacks: ProviderFallback[],
    encoder: ort.InferenceSession,
    policy: ort.InferenceSession,
  ) {
    this.#pkg = pkg;
    this.variant = variant;
    this.provider = provider;
    this.fallbacks = fallbacks;
    this.#encoder = encoder;
    this.#policy = policy;
    const m = pkg.manifest;
    this.maxBatch = batchDimension(m) === undefined ? 1 : MAX_BATCH;
    const grid = m.patch_grid.width * m.patch_grid.height;
    this.#pixelData = new Float32Array(3 * m.image.height * m.image.width);
    this.#pixels = new ort.Tensor('float32', this.#pixelData, [
      1,
      3,
      m.image.height,
      m.image.width,
    ]);
    this.#idData = new BigInt64Array(m.tokenizer.max_length);
    this.#ids = new ort.Tensor('int64', this.#idData, [1, m.tokenizer.max_length]);
    this.#stateData = new Float32Array(m.state.names.length);
    this.#state = new ort.Tensor('float32', this.#stateData, [1, m.state.names.length]);
    this.#tokenData = new Float32Array(grid * m.token_dim);
    this.#positionData = new BigInt64Array(grid);
    const e = m.graphs.encoder;
    const p = m.graphs.policy.inputs;
    this.#names = {
      encIn: e.inputs[0]?.name ?? '',
      encTokens: e.outputs[0]?.name ?? '',
      encSaliency: e.outputs[1]?.name ?? '',
      pol: [p[0]?.name ?? '', p[1]?.name ?? '', p[2]?.name ?? '', p[3]?.name ?? ''],
      polOut: m.graphs.policy.outputs[0]?.name ?? '',
    };
  }

  /** Create both sessions on the first provider of the chain that works, checking each graph against the manifest. */
  static async create(
    pkg: ModelPackage,
    variant: Variant & { readonly paths: Readonly<Record<GraphRole, string>> },
    options: BackendOptions,
  ): Promise<OnnxBackend> {
    const log = options.log ?? (() => undefined);
    applyTelemetryPolicy(options.telemetry ?? false);
    const availability = new Map(providerAvailability().map((a) => [a.provider, a]));
    const fallbacks: ProviderFallback[] = [];
    for (const provider of options.executionProviders) {
      const a = availability.get(provider);
      if (a !== undefined && !a.available) {
        fallbacks.push({ provider, reason: a.reason });
        log(`execution provider ${provider} skipped: ${a.reason}`);
        continue;
      }
      const sessionOptions = sessionOptionsFor(provider, pkg, options);
      try {
        const [encoder, policy] = await withProgress(
          provider === 'tensorrt'
            ? 'building TensorRT engines (first run can take minutes; cached afterwards)'
            : undefined,
          log,
          () => createSessions(variant.paths, sessionOptions),
        );
        try {
          checkGraph('encoder', encoder, pkg.manifest.graphs.encoder);
          checkGraph('policy', policy, pkg.manifest.graphs.policy);
        } catch (error) {
          await Promise.all([encoder.release(), policy.release()]);
          throw error;
        }
        return new OnnxBackend(pkg, variant, provider, fallbacks, encoder, policy);
      } catch (error) {
        if (error instanceof ModelError) throw error;
        const reason =
          error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
        fallbacks.push({ provider, reason });
        log(`execution provider ${provider} failed, falling back: ${reason}`);
      }
    }
    throw new BackendError(
      `Expected one of the execution providers ${options.executionProviders.join(', ')} to run ${pkg.manifest.name}, but none could: ${fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`,
      { field: 'backend.execution_providers' },
    );
  }

  /** The pixel tensor's buffer (CHW float32): ingest writes the normalised frame here. */
  get pixels(): Float32Array {
    return this.#pixelData;
  }

  /** Run the vision encoder on the frame in `pixels`. */
  async encode(): Promise<EncoderOutput> {
    const out = await run(this.#encoder, { [this.#names.encIn]: this.#pixels }, 'encoder');
    const tokens = out[this.#names.encTokens]?.data;
    const saliency = out[this.#names.encSaliency]?.data;
    if (!(tokens instanceof Float32Array) || !(saliency instanceof Float32Array)) {
      throw new BackendError('Expected float32 visual tokens and saliency from the encoder', {
        field: 'encoder.outputs',
      });
    }
    const n = this.#positionData.length;
    const d = this.#pkg.manifest.token_dim;
    if (tokens.length !== n * d || saliency.length !== n) {
      throw new ModelError(
        'MODEL_MISMATCH',
        `Expected ${n}×${d} visual tokens and ${n} saliency scores from the encoder (the manifest's patch grid and token_dim) but it produced ${tokens.length} and ${saliency.length} values`,
        { field: 'manifest.graphs.encoder.outputs' },
      );
    }
    return { tokens, saliency };
  }

  /** The policy's visual-token buffer (N × D): the pruner writes the kept tokens here. */
  get keptTokens(): Float32Array {
    return this.#tokenData;
  }

  /**
   * Run the policy on the first `count` tokens of `keptTokens`, whose grid indices are
   * `positions[0..count)`; `instructionIds` and the normalised `state` are copied.
   */
  async act(
    count: number,
    positions: Int32Array,
    instructionIds: ArrayLike<bigint>,
    state: ArrayLike<number>,
  ): Promise<Float32Array> {
    const m = this.#pkg.manifest;
    const d = m.token_dim;
    const expect = (ok: boolean, field: string, what: string, received: number): void => {
      if (!ok)
        throw new InputError(`Expected ${what} for ${field} but received ${received}`, { field });
    };
    expect(
      Number.isInteger(count) && count >= 1 && count <= this.#positionData.length,
      'policy.token_count',
      `an integer in [1, ${this.#positionData.length}]`,
      count,
    );
    expect(
      instructionIds.length === this.#idData.length,
      'policy.instruction_ids',
      `${this.#idData.length} ids`,
      instructionIds.length,
    );
    expect(
      state.length === this.#stateData.length,
      'policy.state',
      `${this.#stateData.length} values`,
      state.length,
    );
    let t = this.#tokenTensors.get(count);
    if (t === undefined) {
      t = {
        tokens: new ort.Tensor('float32', this.#tokenData.subarray(0, count * d), [1, count, d]),
        positions: new ort.Tensor('int64', this.#positionData.subarray(0, count), [1, count]),
      };
      this.#tokenTensors.set(count, t);
    }
    expect(
      positions.length >= count,
      'policy.positions',
      `at least ${count} positions`,
      positions.length,
    );
    for (let i = 0; i < count; i++) this.#positionData[i] = BigInt(positions[i] as number);
    for (let i = 0; i < this.#idData.length; i++) this.#idData[i] = instructionIds[i] as bigint;
    this.#stateData.set(state);
    const [vt, vp, vi, vs] = this.#names.pol;
    const out = await run(
      this.#policy,
      { [vt]: t.tokens, [vp]: t.positions, [vi]: this.#ids, [vs]: this.#state },
      'policy',
    );
    const actions = out[this.#names.polOut]?.data;
    if (
      !(actions instanceof Float32Array) ||
      actions.length !== m.chunk.horizon * m.chunk.action_dim
    ) {
      throw new BackendError(
        `Expected ${m.chunk.horizon}×${m.chunk.action_dim} float32 actions from the policy`,
        { field: 'policy.outputs' },
      );
    }
    return actions;
  }

  /**
   * The image slots of a batch of `size` observations (CHW float32 each, like {@link pixels}):
   * ingest writes observation i into slot i, then {@link encodeBatch} runs them together. The
   * buffers are allocated for the largest batch asked for so far and reused; views are valid until
   * a larger batch is asked for.
   *
   * @throws {InputError} when `size` is outside [1, maxBatch].
   */
  pixelSlots(size: number): readonly Float32Array[] {
    return this.#batchBuffers(size).slots;
  }

  /**
   * Run the vision encoder on the first `size` slots of {@link pixelSlots}: visual tokens
   * [size, N, D] and saliency [size, N], row-major (observation i at offset i × N × D and i × N).
   */
  async encodeBatch(size: number): Promise<EncoderOutput> {
    const b = this.#batchBuffers(size);
    const m = this.#pkg.manifest;
    const n = this.#positionData.length;
    const d = m.token_dim;
    let t = b.encoderTensors.get(size);
    if (t === undefined) {
      t = {
        pixels: new ort.Tensor('float32', b.pixels.subarray(0, size * plane(m)), [
          size,
          3,
          m.image.height,
          m.image.width,
        ]),
        visual: new ort.Tensor('float32', b.visual.subarray(0, size * n * d), [size, n, d]),
        saliency: new ort.Tensor('float32', b.saliency.subarray(0, size * n), [size, n]),
      };
      b.encoderTensors.set(size, t);
    }
    const names = this.#names;
    await run(
      this.#encoder,
      { [names.encIn]: t.pixels },
      'encoder',
      // ONNX Runtime writes the outputs into the batch's buffers: nothing is allocated per run.
      { [names.encTokens]: t.visual, [names.encSaliency]: t.saliency },
    );
    return {
      tokens: b.visual.subarray(0, size * n * d),
      saliency: b.saliency.subarray(0, size * n),
    };
  }

  /**
   * Run the policy once on `inputs.length` observations that each keep `count` tokens (the
   * batched {@link act}): each input is copied into the batch's buffers. Returns the normalised
   * chunks [inputs.length, H, A], row-major; a view valid until the next call.
   *
   * @throws {InputError} for a batch size outside [1, maxBatch] or inputs of the wrong length.
   */
  async actBatch(count: number, inputs: readonly PolicyInput[]): Promise<Float32Array> {
    const m = this.#pkg.manifest;
    const size = inputs.length;
    const b = this.#batchBuffers(size);
    const n = this.#positionData.length;
    const d = m.token_dim;
    const l = this.#idData.length;
    const sl = this.#stateData.length;
    if (!(Number.isInteger(count) && count >= 1 && count <= n)) {
      throw new InputError(
        `Expected an integer in [1, ${n}] for policy.token_count but received ${count}`,
        { field: 'policy.token_count' },
      );
    }
    inputs.forEach((input, i) => {
      checkLength(i, 'tokens', input.tokens.length, count * d, 'at least');
      checkLength(i, 'positions', input.positions.length, count, 'at least');
      checkLength(i, 'instruction_ids', input.instructionIds.length, l, 'exactly');
      checkLength(i, 'state', input.state.length, sl, 'exactly');
      b.tokens.set(input.tokens.subarray(0, count * d), i * count * d);
      const positions = input.positions;
      for (let k = 0, o = i * count; k < count; k++, o++) {
        // BigInt() allocates: only the positions that changed since the last call are converted.
        const p = positions[k] as number;
        if (b.positionsHeld[o] !== p) {
          b.positions[o] = BigInt(p);
          b.positionsHeld[o] = p;
        }
      }
      for (let k = 0, o = i * l; k < l; k++) b.ids[o + k] = input.instructionIds[k] as bigint;
      for (let k = 0, o = i * sl; k < sl; k++) b.state[o + k] = input.state[k] as number;
    });
    const key = size * (n + 1) + count;
    let t = b.tokenTensors.get(key);
    if (t === undefined) {
      t = {
        tokens: new ort.Tensor('float32', b.tokens.subarray(0, size * count * d), [size, count, d]),
        positions: new ort.Tensor('int64', b.positions.subarray(0, size * count), [size, count]),
      };
      b.tokenTensors.set(key, t);
    }
    let c = b.contextTensors.get(size);
    if (c === undefined) {
      c = {
        ids: new ort.Tensor('int64', b.ids.subarray(0, size * l), [size, l]),
        state: new ort.Tensor('float32', b.state.subarray(0, size * sl), [size, sl]),
      };
      b.contextTensors.set(size, c);
    }
    const per = m.chunk.horizon * m.chunk.action_dim;
    let out = b.actionTensors.get(size);
    if (out === undefined) {
      out = new ort.Tensor('float32', b.actions.subarray(0, size * per), [
        size,
        m.chunk.horizon,
        m.chunk.action_dim,
      ]);
      b.actionTensors.set(size, out);
    }
    const [vt, vp, vi, vs] = this.#names.pol;
    await run(
      this.#policy,
      { [vt]: t.tokens, [vp]: t.positions, [vi]: c.ids, [vs]: c.state },
      'policy',
      { [this.#names.polOut]: out },
    );
    return b.actions.subarray(0, size * per);
  }

  /** The batch buffers, grown to hold `size` observations. */
  #batchBuffers(size: number): BatchBuffers {
    if (!(Number.isInteger(size) && size >= 1 && size <= this.maxBatch)) {
      throw new InputError(
        `Expected a batch of 1 to ${this.maxBatch} observations${this.maxBatch === 1 ? ` (the manifest of ${this.#pkg.manifest.name} declares no batch dimension)` : ''} but received ${size}`,
        { field: 'batch' },
      );
    }
    const current = this.#batch;
    if (current !== undefined && current.capacity >= size) return current;
    const m = this.#pkg.manifest;
    const p = plane(m);
    const n = this.#positionData.length;
    const pixels = new Float32Array(size * p);
    const next: BatchBuffers = {
      capacity: size,
      pixels,
      slots: Array.from({ length: size }, (_, i) => pixels.subarray(i * p, (i + 1) * p)),
      tokens: new Float32Array(size * n * m.token_dim),
      positions: new BigInt64Array(size * n),
      positionsHeld: new Int32Array(size * n),
      ids: new BigInt64Array(size * this.#idData.length),
      state: new Float32Array(size * this.#stateData.length),
      visual: new Float32Array(size * n * m.token_dim),
      saliency: new Float32Array(size * n),
      actions: new Float32Array(size * m.chunk.horizon * m.chunk.action_dim),
      encoderTensors: new Map(),
      actionTensors: new Map(),
      contextTensors: new Map(),
      tokenTensors: new Map(),
    };
    this.#batch = next;
    return next;
  }

  async release(): Promise<void> {
    await Promise.all([this.#encoder.release(), this.#policy.release()]);
  }
}

/** Values of one CHW image of the model's size. */
function plane(m: ModelPackage['manifest']): number {
  return 3 * m.image.height * m.image.width;
}

/** Refuse policy input `i` when its `name` holds too few values (`at least`) or not `exactly` `expected`. */
function checkLength(
  i: number,
  name: string,
  actual: number,
  expected: number,
  rule: 'at least' | 'exactly',
): void {
  if (rule === 'at least' ? actual >= expected : actual === expected) return;
  throw new InputError(
    `Expected ${rule === 'exactly' ? '' : 'at least '}${expected} values for policy.inputs[${i}].${name} but received ${actual}`,
    { field: `policy.inputs[${i}].${name}` },
  );
}
