/**
 * Byte-pair encoding over integer symbols, the compression stage of the FAST action tokenizer.
 * A merge list learnt by the training recipe (`models/tiny-vla-ar/train/action_tokenizers.py`)
 * joins the most frequent adjacent pairs of quantised DCT coefficients into single tokens, so a
 * smooth chunk (mostly zeros after its first coefficients) needs few decoder steps.
 *
 * Encoding applies the merges in the order they were learnt (lowest rank first), each to every
 * non-overlapping occurrence from left to right, as the usual BPE encoders do. FAST's published
 * tokenizer runs Hugging Face's byte-level BPE over the characters `chr(symbol)`; this one works on
 * the symbols directly, which avoids the byte-level pre-tokenizer's splitting at whitespace code
 * points and needs no string round trip.
 */
import { ModelError } from '../../errors.js';

/** A learnt merge: tokens `left` and `right` become token `alphabet + rank`. */
export type BpeMerge = readonly [left: number, right: number];

/** The symbol-level byte-pair encoder. Token ids: `[0, alphabet)` symbols, then one per merge. */
export class SymbolBpe {
  readonly alphabet: number;
  readonly vocabSize: number;
  readonly #rank: ReadonlyMap<number, number>;
  readonly #parts: readonly BpeMerge[];
  readonly #lengths: Int32Array;

  /**
   * @param alphabet number of base symbols (ids `0 … alphabet - 1`)
   * @param merges learnt merges in order; each side must be an id defined before it
   * @param field where the merges came from, named in errors
   */
  constructor(alphabet: number, merges: readonly BpeMerge[], field = 'action_tokenizer.merges') {
    if (!Number.isInteger(alphabet) || alphabet < 1)
      throw new ModelError(
        'INVALID_MANIFEST',
        `Expected a positive integer alphabet size but received ${alphabet}`,
        {
          field: `${field}.alphabet`,
        },
      );
    const rank = new Map<number, number>();
    merges.forEach(([left, right], i) => {
      const defined = alphabet + i;
      for (const side of [left, right])
        if (!Number.isInteger(side) || side < 0 || side >= defined)
          throw new ModelError(
            'INVALID_MANIFEST',
            `Expected merge ${i} to join tokens defined before it (ids 0 … ${defined - 1}) but received [${left}, ${right}]`,
            { field: `${field}[${i}]` },
          );
      const key = pairKey(left, right, alphabet + merges.length);
      if (rank.has(key))
        throw new ModelError(
          'INVALID_MANIFEST',
          `Expected each pair to be merged once but [${left}, ${right}] repeats`,
          {
            field: `${field}[${i}]`,
          },
        );
      rank.set(key, i);
    });
    this.alphabet = alphabet;
    this.vocabSize = alphabet + merges.length;
    this.#rank = rank;
    this.#parts = merges;
    this.#lengths = new Int32Array(this.vocabSize).fill(1);
    merges.forEach(([left, right], i) => {
      this.#lengths[alphabet + i] =
        (this.#lengths[left] as number) + (this.#lengths[right] as number);
    });
  }

  /** Tokens of a symbol sequence (every symbol in `[0, alphabet)`). */
  encode(symbols: ArrayLike<number>): number[] {
    let tokens = Array.from(symbols);
    for (;;) {
      let best = Infinity;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const r = this.#rank.get(
          pairKey(tokens[i] as number, tokens[i + 1] as number, this.vocabSize),
        );
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) return tokens;
      const [left, right] = this.#parts[best] as BpeMerge;
      const merged: number[] = [];
      for (let i = 0; i < tokens.length; i++) {
        if (tokens[i] === left && tokens[i + 1] === right) {
          merged.push(this.alphabet + best);
          i++;
        } else merged.push(tokens[i] as number);
      }
      tokens = merged;
    }
  }

  /** The symbols a token sequence stands for; ids outside the vocabulary are a typed error. */
  decode(tokens: ArrayLike<number>, field = 'tokens'): number[] {
    const out: number[] = [];
    const expand = (token: number): void => {
      if (token < this.alphabet) {
        out.push(token);
        return;
      }
      const [left, right] = this.#parts[token - this.alphabet] as BpeMerge;
      expand(left);
      expand(right);
    };
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i] as number;
      if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize)
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected a token id in [0, ${this.vocabSize}) but received ${token}`,
          {
            field: `${field}[${i}]`,
          },
        );
      expand(token);
    }
    return out;
  }

  /** How many base symbols each token stands for (for bounding a decode to a chunk's length). */
  symbolLength(token: number): number {
    return this.#lengths[token] ?? 0;
  }
}

function pairKey(left: number, right: number, size: number): number {
  return left * size + right;
}
