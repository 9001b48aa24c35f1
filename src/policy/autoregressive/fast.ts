/**
 * pi0-FAST's action tokenizer (Pertsch et al., 2025): the DCT of each action dimension over the
 * chunk, scaled and rounded to integers, flattened frequency-major (the low frequencies of every
 * dimension first), shifted by the smallest coefficient seen in training and compressed by
 * byte-pair encoding. A smooth chunk becomes a handful of tokens followed by the end token.
 *
 * Decoding is made total, which FAST's reference decoder is not: a sequence that stops early is
 * completed with zero coefficients (the high frequencies it did not state), one that runs long is
 * cut at `horizon × actionDim` coefficients, so every admitted sequence is a chunk.
 */
import type { ActionTokenizer } from './action-tokenizer.js';
import { SymbolBpe, type BpeMerge } from './bpe.js';
import { dctColumns, idctColumns } from './dct.js';

/** What a package states about its FAST tokenizer (`action_tokenizer` in the manifest). */
export interface FastSpec {
  readonly horizon: number;
  readonly actionDim: number;
  /** Multiplies the DCT coefficients before rounding (FAST's default: 10). */
  readonly scale: number;
  /** The smallest rounded coefficient in training; symbols are `coefficient - minToken`. */
  readonly minToken: number;
  /** Number of base symbols (coefficients `minToken … minToken + alphabet - 1`). */
  readonly alphabet: number;
  readonly merges: readonly BpeMerge[];
}

/** numpy's `around`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The FAST tokenizer; the last local id (`vocabSize - 1`) is the end token. */
export class FastTokenizer implements ActionTokenizer {
  readonly kind = 'fast' as const;
  readonly horizon: number;
  readonly actionDim: number;
  readonly vocabSize: number;
  readonly maxTokens: number;
  readonly endToken: number;
  readonly bpe: SymbolBpe;
  readonly #spec: FastSpec;

  constructor(spec: FastSpec) {
    this.#spec = spec;
    this.horizon = spec.horizon;
    this.actionDim = spec.actionDim;
    this.bpe = new SymbolBpe(spec.alphabet, spec.merges);
    this.endToken = this.bpe.vocabSize;
    this.vocabSize = this.bpe.vocabSize + 1;
    this.maxTokens = spec.horizon * spec.actionDim + 1;
  }

  /** The rounded, shifted DCT coefficients of a chunk: FAST's symbols before byte-pair encoding. */
  symbols(chunk: ArrayLike<number>): number[] {
    const { horizon, actionDim, scale, minToken, alphabet } = this.#spec;
    const clipped = Float64Array.from({ length: horizon * actionDim }, (_, i) => {
      const x = chunk[i] ?? 0;
      return Number.isNaN(x) ? 0 : Math.min(1, Math.max(-1, x));
    });
    const coefficients = dctColumns(clipped, horizon, actionDim);
    // A coefficient beyond the range seen in training has no symbol; it is clipped to the nearest
    // one (FAST's reference clips only below).
    return Array.from(coefficients, (c) =>
      Math.min(alphabet - 1, Math.max(0, roundHalfEven(c * scale) - minToken)),
    );
  }

  encode(chunk: ArrayLike<number>): number[] {
    return [...this.bpe.encode(this.symbols(chunk)), this.endToken];
  }

  decode(tokens: readonly number[]): Float32Array {
    const { horizon, actionDim, scale, minToken } = this.#spec;
    const n = horizon * actionDim;
    const end = tokens.indexOf(this.endToken);
    const body = (end < 0 ? tokens : tokens.slice(0, end)).filter(
      (t) => Number.isInteger(t) && t >= 0 && t < this.bpe.vocabSize,
    );
    const symbols = this.bpe.decode(body);
    const coefficients = new Float64Array(n);
    for (let i = 0; i < Math.min(n, symbols.length); i++)
      coefficients[i] = ((symbols[i] as number) + minToken) / scale;
    const actions = idctColumns(coefficients, horizon, actionDim);
    return Float32Array.from(actions, (x) => Math.min(1, Math.max(-1, x)));
  }

  allowedNext(prefix: readonly number[], mask: Uint8Array): boolean {
    const n = this.horizon * this.actionDim;
    let used = 0;
    for (const t of prefix) {
      if (t === this.endToken) {
        mask.fill(0, 0, this.vocabSize);
        return false;
      }
      used += this.bpe.symbolLength(t);
    }
    if (used >= n) {
      mask.fill(0, 0, this.vocabSize);
      return false;
    }
    for (let t = 0; t < this.bpe.vocabSize; t++)
      mask[t] = used + this.bpe.symbolLength(t) <= n ? 1 : 0;
    mask[this.endToken] = prefix.length > 0 ? 1 : 0;
    return true;
  }
}
