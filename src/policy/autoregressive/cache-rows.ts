/**
 * The rows of a shared decoder call's key-value cache. `DecoderGraphs.stepMany` returns each
 * sequence's state as a row of the call's `present` tensors, sliced out only when something reads
 * that row alone: when the same sequences step together again, in the same order (a batch that
 * decodes together, step after step), the next call takes the tensors as they are, so that no
 * cache is copied in JavaScript between the steps of a batch.
 */
import * as ort from 'onnxruntime-node';
import type { KvState } from './decoder-graphs.js';

/** The `present` tensors of one shared call: `rows` sequences of `length` entries each. */
export interface SharedCache {
  readonly presents: readonly ort.Tensor[];
  readonly rows: number;
  readonly length: number;
}

/**
 * One sequence's state after a shared call: row `row` of `shared`, of which the first
 * `valid.length` entries are this sequence's (the rest is another row's padding).
 */
export class CacheRow implements KvState {
  #past: readonly ort.Tensor[] | undefined;

  constructor(
    readonly shared: SharedCache,
    readonly row: number,
    readonly valid: Uint8Array,
    readonly nextPosition: number,
    past?: readonly ort.Tensor[],
  ) {
    this.#past = past;
  }

  /** The row alone, `[1, heads, valid.length, dim]` per tensor: copied on the first read. */
  get past(): readonly ort.Tensor[] {
    this.#past ??= this.shared.presents.map((tensor) => {
      const [, heads, , dim] = tensor.dims as [number, number, number, number];
      const data = new Float32Array(heads * this.valid.length * dim);
      for (let h = 0; h < heads; h++) copyHead(this, tensor, h, data, h * this.valid.length * dim);
      return new ort.Tensor('float32', data, [1, heads, this.valid.length, dim]);
    });
    return this.#past;
  }

  /** The same entries with other flags (a verification hid some): the cache stays shared. */
  withValid(valid: Uint8Array, nextPosition: number): CacheRow {
    return new CacheRow(this.shared, this.row, valid, nextPosition, this.#past);
  }
}

/** The shared cache whose rows `states` are, all of them in order; undefined otherwise. */
export function wholeSharedCache(states: readonly KvState[]): SharedCache | undefined {
  const first = states[0];
  if (!(first instanceof CacheRow) || first.shared.rows !== states.length) return undefined;
  const { shared } = first;
  return states.every((s, r) => s instanceof CacheRow && s.shared === shared && s.row === r)
    ? shared
    : undefined;
}

/**
 * Writes `state`'s entries of its `i`-th cache tensor into row `r` of `data`, a
 * `[b, heads, length, dim]` tensor's data (read from the shared call's tensor when the state is a
 * row of one, so that nothing is copied twice).
 */
export function gatherRow(
  state: KvState,
  i: number,
  data: Float32Array,
  r: number,
  length: number,
): void {
  const tensor =
    state instanceof CacheRow ? state.shared.presents[i] : (state.past[i] as ort.Tensor);
  const [, heads, , dim] = (tensor as ort.Tensor).dims as [number, number, number, number];
  for (let h = 0; h < heads; h++)
    copyHead(state, tensor as ort.Tensor, h, data, (r * heads + h) * length * dim);
}

/** Copies head `h` of `state`'s entries (`valid.length` of them) from `tensor` to `data[at..]`. */
function copyHead(
  state: KvState,
  tensor: ort.Tensor,
  h: number,
  data: Float32Array,
  at: number,
): void {
  const [, heads, stride, dim] = tensor.dims as [number, number, number, number];
  const row = state instanceof CacheRow ? state.row : 0;
  const from = (row * heads + h) * stride * dim;
  data.set((tensor.data as Float32Array).subarray(from, from + state.valid.length * dim), at);
}
