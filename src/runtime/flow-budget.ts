import { BUDGET_TUNING, BudgetController } from './budget.js';

/** Options of {@link FlowBudgetController}. */
export interface FlowBudgetOptions {
  /** p95 end-to-end latency to stay under, in ms. */
  readonly budgetMs: number;
  /** The keep ratio the controller starts from and never exceeds. */
  readonly keepRatio: number;
  /** The lowest keep ratio it may choose. */
  readonly minKeepRatio: number;
  /** The denoising steps it starts from and never exceeds. */
  readonly steps: number;
  /** The fewest steps it may choose (= steps: the step count never changes). */
  readonly minSteps: number;
  /** Latencies per decision (default: BUDGET_TUNING's, as every other controller). */
  readonly window?: number;
}

/** What a flow-matching inference should run with now. */
export interface FlowEffort {
  readonly keepRatio: number;
  readonly steps: number;
}

/**
 * The latency-budget controller of the flow-matching family: one effort level in
 * [min tokens × min steps, 1], adapted as the encoder + policy pipeline adapts its keep ratio
 * (p95 of a window against the budget, with hysteresis, one change per window), and spent on
 * tokens first: the keep ratio falls to its minimum before any denoising step is dropped, and the
 * steps come back before the tokens do. Fewer tokens cost little success on this family; fewer
 * steps cost much more (see docs/flow-models.md), so steps are the last resort.
 */
export class FlowBudgetController {
  readonly #o: FlowBudgetOptions;
  readonly #effort: BudgetController;
  /** The token fraction (of keepRatio) at its minimum. */
  readonly #minTokens: number;

  constructor(options: FlowBudgetOptions) {
    this.#o = options;
    this.#minTokens = Math.min(1, options.minKeepRatio / options.keepRatio);
    const minSteps = Math.min(options.steps, Math.max(1, options.minSteps));
    this.#effort = new BudgetController({
      budgetMs: options.budgetMs,
      minRatio: this.#minTokens * (minSteps / options.steps),
      maxRatio: 1,
      ...BUDGET_TUNING,
      window: options.window ?? BUDGET_TUNING.window,
    });
  }

  /** The keep ratio and steps to use now. */
  get effort(): FlowEffort {
    return this.#at(this.#effort.ratio);
  }

  /** Record one end-to-end latency; returns the (possibly new) effort. */
  observe(latencyMs: number): FlowEffort {
    return this.#at(this.#effort.observe(latencyMs));
  }

  #at(e: number): FlowEffort {
    const o = this.#o;
    if (e >= this.#minTokens) return { keepRatio: o.keepRatio * e, steps: o.steps };
    const steps = Math.round((o.steps * e) / this.#minTokens);
    return {
      keepRatio: o.keepRatio * this.#minTokens,
      steps: Math.min(o.steps, Math.max(o.minSteps, 1, steps)),
    };
  }
}
