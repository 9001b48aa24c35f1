/** The action error of a compressed variant against fp32: per-dimension mean and max |difference|. */
import { round } from '../util/stats.js';

/** Mean and max absolute action error per dimension (table units), rounded for the report. */
export interface ActionError {
  readonly meanAbs: number[];
  readonly maxAbs: number[];
}

/**
 * Sums |reference − candidate| per action dimension over flattened chunks, so that both families
 * (encoder + policy, flow) round and average their errors the same way.
 */
export class ActionErrorSum {
  readonly #dim: number;
  readonly #sum: Float64Array;
  readonly #max: Float64Array;
  #count = 0;

  /** @param dim the action dimension: a chunk of `n · dim` values holds `n` actions. */
  constructor(dim: number) {
    this.#dim = dim;
    this.#sum = new Float64Array(dim);
    this.#max = new Float64Array(dim);
  }

  /** Adds one chunk of each: `reference[j]` and `candidate[j]` are the same action's value. */
  add(reference: ArrayLike<number>, candidate: ArrayLike<number>): void {
    const a = this.#dim;
    for (let j = 0; j < reference.length; j++) {
      const e = Math.abs((reference[j] as number) - (candidate[j] as number));
      this.#sum[j % a] = (this.#sum[j % a] as number) + e;
      this.#max[j % a] = Math.max(this.#max[j % a] as number, e);
    }
    this.#count += reference.length / a;
  }

  /** The mean (over every action added; zeros when none was) and the max, rounded to 5 places. */
  result(): ActionError {
    return {
      meanAbs: [...this.#sum].map((v) => round(v / Math.max(1, this.#count), 5)),
      maxAbs: [...this.#max].map((v) => round(v, 5)),
    };
  }
}
