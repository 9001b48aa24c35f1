/**
 * The inference backend contract: what the pipeline needs of whatever runs a policy's graphs. ONNX
 * Runtime's js/node binding puts its own backends behind one interface; this is the same idea one
 * level up, per kind of policy graph:
 *
 * - `encoder-policy` (the shipped tiny-vla family, {@link TokenPolicyBackend}): a vision encoder
 *   giving visual tokens and saliency, pruning in between, an action policy over the kept tokens.
 *   `OnnxBackend` implements it.
 * - Other families implement {@link InferenceBackend} with their own `kind` and stages, e.g. a
 *   flow-matching VLA (per-camera encoders, a prefix graph returning keys and values, an action
 *   expert run K times) or an autoregressive decoder; the pipeline dispatches on `kind`.
 *
 * Every method works on batches: one observation is a batch of one. Buffers a method returns are
 * the backend's and valid until its next call of the same method, so a caller that awaits in
 * between copies what it keeps.
 */
import type { ExecutionProvider } from '../config/generated.js';
import type { Variant } from '../model/manifest.js';

/** A provider of the configured chain that could not be used, and why. */
export interface ProviderFallback {
  readonly provider: ExecutionProvider;
  readonly reason: string;
}

/** What every backend reports and owns, whatever its graphs. */
export interface InferenceBackend {
  /** The kind of policy graph it runs; the pipeline picks its stages by it. */
  readonly kind: string;
  /** The execution provider the sessions run on. */
  readonly provider: ExecutionProvider;
  /** Providers tried before `provider`, with the reason each was skipped. */
  readonly fallbacks: readonly ProviderFallback[];
  /** The model package variant loaded (precision, files). */
  readonly variant: Variant;
  /** Most observations one call takes; 1 when the graphs have no batch dimension. */
  readonly maxBatch: number;
  /** Free the sessions; the backend is unusable afterwards. */
  release(): Promise<void>;
}

/** Visual tokens [size, N, D] and saliency [size, N] of a batch, row-major. */
export interface EncoderOutput {
  readonly tokens: Float32Array;
  readonly saliency: Float32Array;
}

/** One observation's input to the action policy: the kept tokens and their context. */
export interface PolicyInput {
  /** Kept visual tokens, `count` × D, in grid order. */
  readonly tokens: Float32Array;
  /** Grid index of each kept token. */
  readonly positions: Int32Array;
  /** Tokenized instruction, the manifest's `tokenizer.max_length` ids. */
  readonly instructionIds: ArrayLike<bigint>;
  /** Normalised robot state, one value per state name. */
  readonly state: ArrayLike<number>;
}

/** The encoder–pruning–policy family (`kind: 'encoder-policy'`). */
export interface TokenPolicyBackend extends InferenceBackend {
  readonly kind: 'encoder-policy';
  /**
   * The image slots of a batch of `size` observations (CHW float32 each): ingest writes
   * observation i into slot i before {@link encodeBatch}.
   */
  pixelSlots(size: number): readonly Float32Array[];
  /** Run the vision encoder on the first `size` slots of {@link pixelSlots}. */
  encodeBatch(size: number): Promise<EncoderOutput>;
  /**
   * Run the policy on `inputs.length` observations that each keep `count` tokens: the normalised
   * chunks [inputs.length, H, A], row-major.
   */
  actBatch(count: number, inputs: readonly PolicyInput[]): Promise<Float32Array>;
}
