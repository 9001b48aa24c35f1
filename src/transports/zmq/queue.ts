import { performance } from 'node:perf_hooks';

/**
 * A bounded FIFO between the socket and the inference worker (one consumer). `offer` never
 * blocks: a full queue refuses (the server answers `busy`) instead of growing. `take(max, waitMs)`
 * hands the worker up to `max` jobs at once, waiting up to `waitMs` after the first arrived for
 * the batch to fill.
 */
export class RequestQueue<T> {
  readonly capacity: number;
  #items: T[] = [];
  /** When each item was offered (performance.now()), in the order of `#items`. */
  #times: number[] = [];
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
    this.#times.push(performance.now());
    this.#wake();
    return true;
  }

  /**
   * Wait for at least one job and take up to `max` in arrival order; [] once closed and empty.
   * With `ready`, take only the longest prefix of jobs that are ready (waiting for the first to be;
   * call {@link notify} when a job becomes ready), so that the order is kept. With `waitMs` > 0 and
   * fewer than `max` jobs to take, keep waiting for more until `max` are there, `waitMs` have
   * passed since the first of them was offered, or the queue closes.
   */
  async take(max = 1, waitMs = 0, ready: (item: T) => boolean = () => true): Promise<T[]> {
    const n = Math.max(1, max);
    const prefix = (): number => {
      let k = 0;
      while (k < n && k < this.#items.length && ready(this.#items[k] as T)) k++;
      return k;
    };
    while (prefix() === 0) {
      if (this.#closed && this.#items.length === 0) return [];
      await this.#next(undefined);
    }
    if (waitMs > 0) {
      const deadline = (this.#times[0] ?? performance.now()) + waitMs;
      for (;;) {
        const left = deadline - performance.now();
        if (prefix() >= n || this.#closed || left <= 0) break;
        await this.#next(left);
      }
    }
    const k = prefix();
    this.#times.splice(0, k);
    return this.#items.splice(0, k);
  }

  /** Wake a waiting {@link take}: a job it waits for became ready. */
  notify(): void {
    this.#wake();
  }

  /** Remove and return every waiting job. */
  drain(): T[] {
    this.#times.length = 0;
    return this.#items.splice(0);
  }

  /** Refuse new jobs; a waiting `take` returns what is left, then []. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  /** Until the next offer or close, or `timeoutMs` (when given). */
  #next(timeoutMs: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.#wake();
            }, timeoutMs);
      this.#waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
