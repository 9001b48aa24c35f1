/**
 * Action tokenizers of the autoregressive VLA family: how a chunk of normalised actions
 * (`[horizon, action_dim]`, row-major, in [-1, 1]) becomes the token ids a decoder emits, and back.
 * Two are implemented, the ones deployed models use: OpenVLA's uniform bins (one token per action
 * value) and pi0-FAST's DCT + byte-pair encoding (a few tokens per chunk).
 *
 * Token ids here are local to the action vocabulary (`0 … vocabSize - 1`); the package maps them to
 * the decoder's vocabulary with an offset. Decoding is total: any sequence the constraint admits
 * decodes to exactly `horizon × action_dim` finite values, which is what lets greedy decoding be
 * constrained to valid action tokens.
 */

/** The shared contract of both tokenizers. */
export interface ActionTokenizer {
  readonly kind: 'uniform_bins' | 'fast';
  readonly horizon: number;
  readonly actionDim: number;
  /** Local action-token ids are `0 … vocabSize - 1` (FAST's end token included). */
  readonly vocabSize: number;
  /** The most tokens one chunk can take (the decode loop's bound). */
  readonly maxTokens: number;
  /** Tokens of a normalised chunk (`horizon × actionDim` values; out-of-range values are clipped). */
  encode(chunk: ArrayLike<number>): number[];
  /** The normalised chunk of a token sequence; always `horizon × actionDim` finite values. */
  decode(tokens: readonly number[]): Float32Array;
  /**
   * Which tokens may follow `prefix` (true = allowed), written into `mask` (length vocabSize);
   * returns false when `prefix` is already a complete chunk.
   */
  allowedNext(prefix: readonly number[], mask: Uint8Array): boolean;
}
