/**
 * Resident memory over a long run: samples once a second and summarises the growth after a
 * warm-up, so a leak shows as a figure, not as a robot that stops after a day.
 */

import { round } from '../util/stats.js';

/** One sample of the process's memory, MiB. */
export interface MemorySample {
  /** Seconds since sampling started. */
  readonly t_s: number;
  readonly rss_mb: number;
  readonly heap_used_mb: number;
  /** Memory outside V8's heap held by JS objects (typed arrays, buffers). */
  readonly external_mb: number;
}

/** What a soak run's memory did. */
export interface MemoryReport {
  readonly samples: number;
  readonly warmup_s: number;
  readonly rss_mb: {
    readonly first: number;
    /** The first sample at or after the warm-up. */
    readonly after_warmup: number;
    readonly last: number;
    readonly max: number;
    /** Largest sample after the warm-up. */
    readonly max_after_warmup: number;
  };
  /** (last − after warm-up) / after warm-up, %. */
  readonly growth_after_warmup_pct: number;
  /** (max after warm-up − after warm-up) / after warm-up, %. */
  readonly peak_growth_after_warmup_pct: number;
  readonly heap_used_mb: { readonly after_warmup: number; readonly last: number };
  readonly external_mb: { readonly after_warmup: number; readonly last: number };
  /** Every 10th sample (one per ~10 s), for a chart. */
  readonly series: readonly MemorySample[];
}

const MIB = 1024 * 1024;

function sample(t0: number): MemorySample {
  const m = process.memoryUsage();
  return {
    t_s: round((performance.now() - t0) / 1000, 1),
    rss_mb: round(m.rss / MIB, 1),
    heap_used_mb: round(m.heapUsed / MIB, 1),
    external_mb: round((m.external + m.arrayBuffers) / MIB, 1),
  };
}

/** Samples the process's memory every `periodMs` from {@link start} to {@link stop}. */
export class MemorySampler {
  readonly #samples: MemorySample[] = [];
  readonly #periodMs: number;
  #timer: NodeJS.Timeout | undefined;
  #t0 = 0;

  constructor(periodMs = 1000) {
    this.#periodMs = periodMs;
  }

  start(): void {
    this.#t0 = performance.now();
    this.#samples.push(sample(this.#t0));
    this.#timer = setInterval(() => {
      this.#samples.push(sample(this.#t0));
    }, this.#periodMs);
  }

  /** Stop and take a last sample. */
  stop(): readonly MemorySample[] {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#samples.push(sample(this.#t0));
    return this.#samples;
  }
}

/**
 * Summarise samples (in time order, at least one): growth is measured from the first sample at or
 * after `warmupS` (the last sample when the run was shorter).
 */
export function memoryReport(samples: readonly MemorySample[], warmupS: number): MemoryReport {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined) throw new RangeError('Expected samples');
  const warm = samples.find((s) => s.t_s >= warmupS) ?? last;
  const after = samples.filter((s) => s.t_s >= warm.t_s);
  const maxAfter = Math.max(...after.map((s) => s.rss_mb));
  const pct = (v: number): number => round(((v - warm.rss_mb) / warm.rss_mb) * 100, 2);
  return {
    samples: samples.length,
    warmup_s: warmupS,
    rss_mb: {
      first: first.rss_mb,
      after_warmup: warm.rss_mb,
      last: last.rss_mb,
      max: Math.max(...samples.map((s) => s.rss_mb)),
      max_after_warmup: maxAfter,
    },
    growth_after_warmup_pct: pct(last.rss_mb),
    peak_growth_after_warmup_pct: pct(maxAfter),
    heap_used_mb: { after_warmup: warm.heap_used_mb, last: last.heap_used_mb },
    external_mb: { after_warmup: warm.external_mb, last: last.external_mb },
    series: samples.filter((_, i) => i % 10 === 0 || i === samples.length - 1),
  };
}
