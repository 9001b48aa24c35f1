/** Options of the latency-budget controller. */
export interface BudgetControllerOptions {
  /** p95 end-to-end latency to stay under, in ms. */
  readonly budgetMs: number;
  /** Bounds of the keep ratio. */
  readonly minRatio: number;
  readonly maxRatio: number;
  /** Latencies in the sliding window the p95 is taken over. */
  readonly window: number;
  /** Below (1 - hysteresis) × budget the ratio may grow again; between, it holds. */
  readonly hysteresis: number;
  /** Multiplicative step of one adjustment (e.g. 0.85: shrink to 85%, grow by 1/0.85). */
  readonly step: number;
}

/**
 * The controller's tuning the runtimes use: a 20-latency window, 15% hysteresis, steps of 15%.
 * (src/pipeline/pipeline.ts still writes the same numbers inline.)
 */
export const BUDGET_TUNING = Object.freeze({ window: 20, hysteresis: 0.15, step: 0.85 });

/**
 * Adapts the visual-token keep ratio so that the p95 of the recent end-to-end latencies stays
 * under a budget: shrink by `step` when over it, grow when comfortably under it (hysteresis), at
 * most one change per full window so each decision sees latencies measured at the current ratio.
 */
export class BudgetController {
  readonly #o: BudgetControllerOptions;
  readonly #samples: Float64Array;
  readonly #sorted: Float64Array;
  #count = 0;
  #ratio: number;

  constructor(options: BudgetControllerOptions) {
    this.#o = options;
    this.#samples = new Float64Array(options.window);
    this.#sorted = new Float64Array(options.window);
    this.#ratio = options.maxRatio;
  }

  /** The keep ratio to use now. */
  get ratio(): number {
    return this.#ratio;
  }

  /** Record one end-to-end latency; returns the (possibly new) keep ratio. */
  observe(latencyMs: number): number {
    this.#samples[this.#count % this.#o.window] = latencyMs;
    this.#count++;
    if (this.#count < this.#o.window) return this.#ratio;
    this.#sorted.set(this.#samples);
    this.#sorted.sort();
    const p95 = this.#sorted[
      Math.min(this.#o.window - 1, Math.ceil(0.95 * this.#o.window) - 1)
    ] as number;
    let next = this.#ratio;
    if (p95 > this.#o.budgetMs) next = this.#ratio * this.#o.step;
    else if (p95 < (1 - this.#o.hysteresis) * this.#o.budgetMs) next = this.#ratio / this.#o.step;
    next = Math.min(this.#o.maxRatio, Math.max(this.#o.minRatio, next));
    if (next !== this.#ratio) {
      this.#ratio = next;
      this.#count = 0; // judge the new ratio on fresh measurements
    }
    return this.#ratio;
  }
}

/**
 * The latest frame of one camera, and nothing older: a new frame replaces the waiting one (which
 * is counted as dropped), and a frame older than `maxAgeMs` at take time is rejected and counted.
 * Inference is therefore never queued behind stale frames.
 */
export class LatestFrameSlot<T> {
  readonly #maxAgeMs: number;
  #frame: { value: T; stampMs: number } | undefined;
  #dropped = 0;
  #stale = 0;

  constructor(maxAgeMs: number) {
    this.#maxAgeMs = maxAgeMs;
  }

  put(value: T, stampMs: number): void {
    if (this.#frame !== undefined) this.#dropped++;
    this.#frame = { value, stampMs };
  }

  /** The waiting frame if it is fresh at `nowMs` (then the slot is empty), else undefined. */
  take(nowMs: number): { value: T; stampMs: number } | undefined {
    const frame = this.#frame;
    this.#frame = undefined;
    if (frame === undefined) return undefined;
    if (this.#maxAgeMs > 0 && nowMs - frame.stampMs > this.#maxAgeMs) {
      this.#stale++;
      return undefined;
    }
    return frame;
  }

  /** Frames replaced by a newer one before they were used. */
  get dropped(): number {
    return this.#dropped;
  }
  /** Frames rejected for being older than the maximum age. */
  get stale(): number {
    return this.#stale;
  }
}
