/**
 * The instruction's keys and values kept across frames. In a block-causal prefix the words attend
 * only to the words, so their cache depends on the instruction alone: a robot told one thing for
 * hundreds of frames needs it computed once. A small least-recently-used map keyed by the word ids
 * bounds the memory when many streams (bridge clients) carry different instructions.
 */
import type * as ort from 'onnxruntime-node';

/** What the cache did so far (observable by tests and benchmarks). */
export interface InstructionCacheStats {
  /** Prefills whose instruction was cached (or being computed by an earlier prefill). */
  readonly hits: number;
  /** Prefills that ran the instruction graph. */
  readonly misses: number;
  /** Instructions dropped to stay within the capacity. */
  readonly evictions: number;
  /** Instructions held now. */
  readonly size: number;
  readonly capacity: number;
}

/** Instructions a package's runtime keeps by default (each L × layers × 2 × heads × head_dim). */
export const INSTRUCTION_CACHE_SIZE = 16;

/** A bounded LRU of the instruction graph's `present` tensors, keyed by the word ids. */
export class InstructionCache {
  // Promises, so that prefills of one instruction arriving together run the graph once.
  readonly #entries = new Map<string, Promise<readonly ort.Tensor[]>>();
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(readonly capacity: number = INSTRUCTION_CACHE_SIZE) {}

  /** The cache of `ids`, from `compute` when it is not held (a failure is not kept). */
  get(
    ids: BigInt64Array,
    compute: () => Promise<readonly ort.Tensor[]>,
  ): Promise<readonly ort.Tensor[]> {
    if (this.capacity <= 0) {
      this.#misses++;
      return compute();
    }
    const key = ids.join(',');
    const held = this.#entries.get(key);
    if (held !== undefined) {
      this.#hits++;
      // Most recently used last: a Map iterates in insertion order.
      this.#entries.delete(key);
      this.#entries.set(key, held);
      return held;
    }
    this.#misses++;
    const made = compute();
    this.#entries.set(key, made);
    made.catch(() => {
      if (this.#entries.get(key) === made) this.#entries.delete(key);
    });
    while (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
      this.#evictions++;
    }
    return made;
  }

  /** Forget every instruction (the counters stay). */
  clear(): void {
    this.#entries.clear();
  }

  get stats(): InstructionCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      size: this.#entries.size,
      capacity: this.capacity,
    };
  }
}
