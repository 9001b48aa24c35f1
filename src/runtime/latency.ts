import * as hdr from 'hdr-histogram-js';
import { round } from '../util/stats.js';

/** Percentiles of a latency histogram, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** A latency histogram (HdrHistogram, microsecond resolution, 3 significant digits, up to 60 s). */
export class LatencyHistogram {
  readonly #h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  #sum = 0;

  /** Record one duration in milliseconds. */
  record(ms: number): void {
    const us = Math.min(60_000_000, Math.max(1, Math.round(ms * 1000)));
    this.#h.recordValue(us);
    this.#sum += ms;
  }

  get count(): number {
    return this.#h.totalCount;
  }

  summary(): LatencySummary {
    // A percentile is its bucket's upper edge, which can exceed the largest value recorded.
    const q = (p: number): number =>
      round(Math.min(this.#h.getValueAtPercentile(p), this.#h.maxValue) / 1000);
    const count = this.#h.totalCount;
    return {
      count,
      mean: count === 0 ? 0 : round(this.#sum / count),
      p50: q(50),
      p95: q(95),
      p99: q(99),
      max: round(this.#h.maxValue / 1000),
    };
  }

  reset(): void {
    this.#h.reset();
    this.#sum = 0;
  }
}

/** The pipeline's stages, in order. */
export const STAGES = ['preprocess', 'encode', 'prune', 'policy', 'postprocess'] as const;
export type Stage = (typeof STAGES)[number];
export type StageTimings = Record<Stage, number>;

/** Per-stage and end-to-end histograms. */
export class LatencyBook {
  readonly total = new LatencyHistogram();
  readonly stages: Record<Stage, LatencyHistogram> = Object.fromEntries(
    STAGES.map((s) => [s, new LatencyHistogram()]),
  ) as Record<Stage, LatencyHistogram>;

  record(timings: StageTimings, totalMs: number): void {
    for (const s of STAGES) this.stages[s].record(timings[s]);
    this.total.record(totalMs);
  }

  /** Mean milliseconds per stage. */
  stageMeans(): StageTimings {
    return Object.fromEntries(
      STAGES.map((s) => [s, this.stages[s].summary().mean]),
    ) as StageTimings;
  }

  reset(): void {
    this.total.reset();
    for (const s of STAGES) this.stages[s].reset();
  }
}
