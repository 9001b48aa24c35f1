/**
 * OpenVLA's action tokenizer: each normalised action value is clipped to [-1, 1] and put in one of
 * `bins` uniform bins (edges `linspace(-1, 1, bins)`, `numpy.digitize`), decoded to the bin's
 * centre; one token per value, so a chunk is always `horizon × actionDim` tokens. OpenVLA counts
 * its tokens down from the end of Llama's vocabulary (`vocab_size - digitize(x)`); the local id
 * here is `bins - digitize(x)`, the same order, so a package maps it with one offset.
 */
import type { ActionTokenizer } from './action-tokenizer.js';

/** Uniform-bin tokenizer (OpenVLA). */
export class UniformBinTokenizer implements ActionTokenizer {
  readonly kind = 'uniform_bins' as const;
  readonly vocabSize: number;
  readonly maxTokens: number;
  readonly #edges: Float64Array;
  readonly #centres: Float64Array;

  constructor(
    readonly horizon: number,
    readonly actionDim: number,
    readonly bins = 256,
  ) {
    this.vocabSize = bins;
    this.maxTokens = horizon * actionDim;
    this.#edges = Float64Array.from({ length: bins }, (_, i) => -1 + (2 * i) / (bins - 1));
    this.#centres = Float64Array.from(
      { length: bins - 1 },
      (_, i) => ((this.#edges[i] as number) + (this.#edges[i + 1] as number)) / 2,
    );
  }

  encode(chunk: ArrayLike<number>): number[] {
    const tokens: number[] = [];
    for (let i = 0; i < this.maxTokens; i++) {
      const x = Math.min(1, Math.max(-1, Number.isNaN(chunk[i]) ? 0 : (chunk[i] as number)));
      tokens.push(this.bins - this.#digitize(x));
    }
    return tokens;
  }

  decode(tokens: readonly number[]): Float32Array {
    const out = new Float32Array(this.maxTokens);
    for (let i = 0; i < this.maxTokens; i++) {
      // A missing or out-of-vocabulary token decodes to the bin nearest zero rather than garbage;
      // constrained decoding never produces one.
      const token = tokens[i];
      const d =
        token === undefined || token < 0 || token >= this.bins
          ? this.#digitize(0)
          : this.bins - token;
      const index = Math.min(this.#centres.length - 1, Math.max(0, d - 1));
      out[i] = this.#centres[index] as number;
    }
    return out;
  }

  allowedNext(prefix: readonly number[], mask: Uint8Array): boolean {
    const open = prefix.length < this.maxTokens;
    mask.fill(open ? 1 : 0, 0, this.vocabSize);
    return open;
  }

  /** `numpy.digitize(x, edges)`: the index i with edges[i-1] <= x < edges[i] (right = false). */
  #digitize(x: number): number {
    let lo = 0;
    let hi = this.#edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#edges[mid] as number) <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
