/**
 * Continuous batching of autoregressive decodes: an active set of up to `maxActive` sequences
 * advanced together, one decoder call per step for all of them, and requests admitted into it
 * between two steps. A request that arrives while others decode does not wait for their chunks:
 * its prefill runs before the next step and its sequence joins that step. A sequence leaves as
 * soon as its chunk is whole, which frees its place for the next request.
 *
 * Each sequence decodes exactly as it would alone ({@link DecodeSequence} takes its own rows of
 * every shared call), so batching changes when a chunk is ready, never what it is.
 */
import { compactTogether, type DecodeResult, type DecodeSequence } from './decode.js';
import type { DecoderGraphs, StepResult } from './decoder-graphs.js';

/** A request admitted into the active set: its sequence and what to make of its decoded chunk. */
export interface Admission<T> {
  readonly sequence: DecodeSequence;
  /** Called once the chunk is whole; its value (or throw) settles the request. */
  finish(result: DecodeResult): T;
}

/** What the scheduler did so far (the serve report shows it). */
export interface SchedulerStats {
  /** Shared decoder calls. */
  readonly steps: number;
  /** Requests admitted (prefilled) into the active set. */
  readonly admitted: number;
  /**
   * Requests admitted while other sequences were part-way through their chunks: they joined a
   * running batch instead of waiting for it to finish.
   */
  readonly joined: number;
  /** Requests that failed before or while decoding. */
  readonly failed: number;
  /** Sequences per step, on average and at most. */
  readonly mean_active: number;
  readonly max_active: number;
}

interface Waiting<T> {
  readonly start: () => Promise<Admission<T>>;
  readonly resolve: (value: T) => void;
  readonly reject: (reason: unknown) => void;
}

interface Active<T> {
  readonly admission: Admission<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * The active set and its loop. {@link submit} queues a request; the loop, running while there is
 * work, admits waiting requests up to `maxActive` (in arrival order), runs one shared decoder
 * call, and settles the sequences whose chunks are whole. A request whose admission throws (a bad
 * frame, an encoder failure) fails alone; a failed shared call fails the sequences in it, and the
 * loop goes on with the next requests.
 */
export class DecodeScheduler {
  readonly maxActive: number;
  readonly #graphs: Pick<DecoderGraphs, 'stepMany'>;
  #waiting: Waiting<never>[] = [];
  #active: Active<never>[] = [];
  #loop: Promise<void> = Promise.resolve();
  #running = false;
  #steps = 0;
  #admitted = 0;
  #joined = 0;
  #failed = 0;
  #activeSum = 0;
  #activeMax = 0;

  constructor(graphs: Pick<DecoderGraphs, 'stepMany'>, maxActive: number) {
    this.#graphs = graphs;
    this.maxActive = Math.max(1, Math.floor(maxActive));
  }

  /** Requests waiting to be admitted, and sequences decoding. */
  get pending(): { readonly waiting: number; readonly active: number } {
    return { waiting: this.#waiting.length, active: this.#active.length };
  }

  /**
   * Queue a request: `start` (encode, prune, prefill) runs when there is room in the active set,
   * between two decoder calls; the promise settles with `finish`'s value once the chunk is whole.
   */
  submit<T>(start: () => Promise<Admission<T>>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The loop holds requests of many result types; each settles its own promise.
      this.#waiting.push({ start, resolve, reject } as unknown as Waiting<never>);
      if (!this.#running) {
        this.#running = true;
        this.#loop = this.#run();
      }
    });
  }

  /** Until every submitted request has settled. */
  async idle(): Promise<void> {
    while (this.#running) await this.#loop;
  }

  stats(): SchedulerStats {
    return {
      steps: this.#steps,
      admitted: this.#admitted,
      joined: this.#joined,
      failed: this.#failed,
      mean_active:
        this.#steps === 0 ? 0 : Math.round((this.#activeSum / this.#steps) * 1000) / 1000,
      max_active: this.#activeMax,
    };
  }

  /** Zero the counters (after a warm-up). */
  resetStats(): void {
    this.#steps = this.#admitted = this.#joined = this.#failed = 0;
    this.#activeSum = this.#activeMax = 0;
  }

  async #run(): Promise<void> {
    for (;;) {
      if (this.#waiting.length === 0 && this.#active.length === 0) {
        // In the same turn as the check for work, so that a later submit starts a new loop.
        this.#running = false;
        return;
      }
      await this.#admit();
      if (this.#active.length === 0) continue;
      const active = this.#active;
      this.#steps++;
      this.#activeSum += active.length;
      this.#activeMax = Math.max(this.#activeMax, active.length);
      compactTogether(active.map((a) => a.admission.sequence));
      let results: StepResult[];
      try {
        results = await this.#graphs.stepMany(
          active.map((a) => a.admission.sequence.state),
          active.map((a) => a.admission.sequence.feed()),
        );
      } catch (reason) {
        // The shared call failed: no sequence in it can go on.
        this.#active = [];
        this.#failed += active.length;
        for (const a of active) a.reject(reason);
        continue;
      }
      this.#active = active.filter((a, i) => {
        try {
          // Its own rows only: logits without an admissible token fail this sequence alone.
          a.admission.sequence.take(results[i] as StepResult);
        } catch (reason) {
          this.#failed++;
          a.reject(reason);
          return false;
        }
        if (!a.admission.sequence.done) return true;
        this.#settle(a);
        return false;
      });
    }
  }

  /** Admit waiting requests, in arrival order, while there is room. */
  async #admit(): Promise<void> {
    while (this.#waiting.length > 0 && this.#active.length < this.maxActive) {
      const w = this.#waiting.shift() as Waiting<never>;
      // Sequences already past their first step: the new one joins their batch.
      const running = this.#active.some((a) => a.admission.sequence.decoderCalls > 0);
      let admission: Admission<never>;
      try {
        admission = await w.start();
      } catch (reason) {
        this.#failed++;
        w.reject(reason);
        continue;
      }
      this.#admitted++;
      if (running) this.#joined++;
      const entry = { admission, resolve: w.resolve, reject: w.reject };
      // A chunk the prefill alone completes (one token) needs no decoder call.
      if (admission.sequence.done) this.#settle(entry);
      else this.#active.push(entry);
    }
  }

  #settle(a: Active<never>): void {
    let value: never;
    try {
      value = a.admission.finish(a.admission.sequence.result());
    } catch (reason) {
      this.#failed++;
      a.reject(reason);
      return;
    }
    a.resolve(value);
  }
}
