/**
 * A bounded FIFO between the socket and the inference worker. `offer` never blocks: a full queue
 * refuses (the server answers `busy`) instead of growing. `take(max)` hands the worker up to `max`
 * jobs at once, so a batching worker (several clients' observations in one inference) can replace
 * the one-at-a-time worker without changing the queue.
 */
export class RequestQueue<T> {
  readonly capacity: number;
  #items: T[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Expected a queue capacity >= 1 but received ${capacity}`);
    }
    this.capacity = capacity;
  }

  /** Jobs waiting now. */
  get length(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Append `item`; false (and nothing queued) when the queue is full or closed. */
  offer(item: T): boolean {
    if (this.#closed || this.#items.length >= this.capacity) return false;
    this.#items.push(item);
    this.#wake();
    return true;
  }

  /** Wait for at least one job and take up to `max` in arrival order; [] once closed and empty. */
  async take(max = 1): Promise<T[]> {
    while (this.#items.length === 0) {
      if (this.#closed) return [];
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
    return this.#items.splice(0, Math.max(1, max));
  }

  /** Remove and return every waiting job. */
  drain(): T[] {
    return this.#items.splice(0);
  }

  /** Refuse new jobs; a waiting `take` returns what is left, then []. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
