/**
 * Continuous batching of autoregressive decodes: an active set of up to `maxActive` sequences
 * advanced together, one decoder call per step for all of them, and requests admitted into it
 * between two steps. A request that arrives while others decode does not wait for their chunks:
 * its prefill runs before the next step and its sequence joins that step. A sequence leaves as
 * soon as its chunk is whole, which frees its place for the next request.
 *
 * Requests waiting together are admitted together: one start for the group, which lets the
 * caller encode their frames in one encoder call and prefill them in one prefill call.
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

/**
 * Starts a group of waiting requests (encode, prune, prefill): one settled admission per request,
 * in order, so that a bad request fails alone.
 */
export type StartMany<R, T> = (
  requests: readonly R[],
) => Promise<readonly PromiseSettledResult<Admission<T>>[]>;

/** Requests that start themselves: each one's start in turn (no work shared between them). */
export async function startEach<T>(
  requests: readonly (() => Promise<Admission<T>>)[],
): Promise<PromiseSettledResult<Admission<T>>[]> {
  const settled: PromiseSettledResult<Admission<T>>[] = [];
  for (const start of requests) {
    try {
      settled.push({ status: 'fulfilled', value: await start() });
    } catch (reason) {
      settled.push({ status: 'rejected', reason });
    }
  }
  return settled;
}

/** What the scheduler did so far (the serve report shows it). */
export interface SchedulerStats {
  /** Shared decoder calls. */
  readonly steps: number;
  /** Requests admitted (prefilled) into the active set. */
  readonly admitted: number;
  /** Starts: groups of waiting requests started together (those that failed included). */
  readonly starts: number;
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

interface Waiting<R, T> {
  readonly request: R;
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
 * work, admits waiting requests up to `maxActive` (in arrival order, those waiting at the same
 * time in one `start`), runs one shared decoder call, and settles the sequences whose chunks are
 * whole. A request whose admission fails (a bad frame, an encoder failure) fails alone; a failed
 * shared call fails the sequences in it, and the loop goes on with the next requests.
 */
export class DecodeScheduler<R, T> {
  readonly maxActive: number;
  readonly #graphs: Pick<DecoderGraphs, 'stepMany'>;
  readonly #start: StartMany<R, T>;
  #waiting: Waiting<R, T>[] = [];
  #active: Active<T>[] = [];
  #loop: Promise<void> = Promise.resolve();
  #running = false;
  #steps = 0;
  #admitted = 0;
  #starts = 0;
  #joined = 0;
  #failed = 0;
  #activeSum = 0;
  #activeMax = 0;

  constructor(graphs: Pick<DecoderGraphs, 'stepMany'>, maxActive: number, start: StartMany<R, T>) {
    this.#graphs = graphs;
    this.maxActive = Math.max(1, Math.floor(maxActive));
    this.#start = start;
  }

  /** Requests waiting to be admitted, and sequences decoding. */
  get pending(): { readonly waiting: number; readonly active: number } {
    return { waiting: this.#waiting.length, active: this.#active.length };
  }

  /**
   * Queue a request: its start (encode, prune, prefill) runs when there is room in the active set,
   * between two decoder calls; the promise settles with `finish`'s value once the chunk is whole.
   */
  submit(request: R): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ request, resolve, reject });
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
      starts: this.#starts,
      joined: this.#joined,
      failed: this.#failed,
      mean_active:
        this.#steps === 0 ? 0 : Math.round((this.#activeSum / this.#steps) * 1000) / 1000,
      max_active: this.#activeMax,
    };
  }

  /** Zero the counters (after a warm-up). */
  resetStats(): void {
    this.#steps = this.#admitted = this.#starts = this.#joined = this.#failed = 0;
    this.#activeSum = this.#activeMax = 0;
  }

  async #run(): Promise<void> {
    // The requests submitted in the same turn (a batch handed over at once) start together.
    await Promise.resolve();
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

  /**
   * Admit waiting requests, in arrival order, while there is room: those waiting now in one start,
   * then those that arrived during it.
   */
  async #admit(): Promise<void> {
    while (this.#waiting.length > 0 && this.#active.length < this.maxActive) {
      const group = this.#waiting.splice(0, this.maxActive - this.#active.length);
      // Sequences already past their first step: the new ones join their batch.
      const running = this.#active.some((a) => a.admission.sequence.decoderCalls > 0);
      this.#starts++;
      let admissions: readonly PromiseSettledResult<Admission<T>>[];
      try {
        admissions = await this.#start(group.map((w) => w.request));
      } catch (reason) {
        admissions = group.map(() => ({ status: 'rejected', reason }));
      }
      group.forEach((w, i) => {
        const a = admissions[i];
        if (a?.status !== 'fulfilled') {
          this.#failed++;
          w.reject(a === undefined ? new Error('the start gave no admission') : a.reason);
          return;
        }
        this.#admitted++;
        if (running) this.#joined++;
        const entry = { admission: a.value, resolve: w.resolve, reject: w.reject };
        // A chunk the prefill alone completes (one token) needs no decoder call.
        if (a.value.sequence.done) this.#settle(entry);
        else this.#active.push(entry);
      });
    }
  }

  #settle(a: Active<T>): void {
    let value: T;
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
