/**
 * An autoregressive policy behind visual-token pruning, the pruned set fed to the prefill, with the
 * token budget fixed or adapted by the latency-budget controller (src/runtime/budget.ts) as the
 * encoder + policy pipeline adapts it: the p95 of the recent chunks' end-to-end latencies is kept
 * under `runtime.latency_budget_ms` by shrinking the keep ratio towards `pruning.min_keep_ratio`,
 * and grown back towards `pruning.keep_ratio` when comfortably under it. A chunk is always whole
 * whatever the budget (constrained decoding does not depend on how many tokens the prefill saw).
 */
import { performance } from 'node:perf_hooks';
import { createPruner } from '../../pruning/strategies.js';
import { tokenBudget, type Pruner, type PruningStrategy } from '../../pruning/pruner.js';
import { BUDGET_TUNING, BudgetController } from '../../runtime/budget.js';
import { mapFulfilled, only } from '../../util/together-or-alone.js';
import type { ArAction, ArActOptions, ArObservation, ArPolicy, ArStart } from './policy.js';

/** The pruning section of the configuration and the latency budget, as the pipeline takes them. */
export interface ArPruningOptions {
  readonly strategy: PruningStrategy;
  /** Fraction of visual tokens kept (the controller's upper bound). */
  readonly keepRatio: number;
  /** Tokens kept; 0: use the ratio. A fixed count turns the controller off. */
  readonly keepCount: number;
  /** The controller's lower bound of the keep ratio. */
  readonly minKeepRatio: number;
  readonly seed: number;
  /** p95 end-to-end latency per chunk to stay under, in ms; 0: a fixed token budget. */
  readonly latencyBudgetMs: number;
}

/** A chunk with its end-to-end latency and the token budget it ran with. */
export interface PrunedArAction extends ArAction {
  readonly latencyMs: number;
  readonly tokenBudget: number;
}

/** The options of {@link PrunedArPolicy.begin}: the decoding's, and this inference's own budget. */
export type ArBeginOptions = Omit<ArActOptions, 'pruner' | 'budget'> & {
  readonly budget?: number;
};

/** {@link ArStart} with the token budget it was pruned to. */
export interface ArBegun extends ArStart {
  readonly tokenBudget: number;
}

/** {@link ArPolicy} with pruning before the prefill and, optionally, the latency-budget controller. */
export class PrunedArPolicy {
  readonly #policy: ArPolicy;
  readonly #pruner: Pruner | undefined;
  readonly #controller: BudgetController | undefined;
  readonly #total: number;
  #budget: number;

  constructor(policy: ArPolicy, options: ArPruningOptions) {
    this.#policy = policy;
    this.#total = policy.pkg.grid.width * policy.pkg.grid.height;
    this.#budget = tokenBudget(this.#total, options.keepRatio, options.keepCount);
    this.#pruner =
      options.strategy === 'none' ? undefined : createPruner(options.strategy, options);
    this.#controller =
      this.#pruner !== undefined && options.latencyBudgetMs > 0 && options.keepCount === 0
        ? new BudgetController({
            budgetMs: options.latencyBudgetMs,
            minRatio: Math.min(options.minKeepRatio, options.keepRatio),
            maxRatio: options.keepRatio,
            ...BUDGET_TUNING,
          })
        : undefined;
  }

  /** The policy it runs. */
  get policy(): ArPolicy {
    return this.#policy;
  }

  /** Visual tokens the prefill sees now. */
  get tokenBudget(): number {
    return this.#pruner === undefined ? this.#total : this.#budget;
  }

  /** The keep ratio now (the controller's when it is on). */
  get keepRatio(): number {
    return this.tokenBudget / this.#total;
  }

  /** Visual tokens per frame before pruning. */
  get totalTokens(): number {
    return this.#total;
  }

  /** Forget the pruner's per-stream state (every stream's when none is named). */
  reset(stream?: string): void {
    this.#pruner?.reset(stream);
  }

  /**
   * Encodes, prunes to the current budget (or `budget`, this inference's own, which the controller
   * then does not learn from), decodes; then lets the controller see the latency.
   */
  async act(
    obs: ArObservation,
    options: Omit<ArActOptions, 'pruner' | 'budget'> & { readonly budget?: number },
  ): Promise<PrunedArAction> {
    const { budget: own, ...rest } = options;
    const budget = own ?? this.tokenBudget;
    const start = performance.now();
    const action = await this.#policy.act(obs, { ...rest, ...this.#pruning(budget) });
    const latencyMs = performance.now() - start;
    if (this.#controller !== undefined && own === undefined)
      this.#budget = tokenBudget(this.#total, this.#controller.observe(latencyMs), 0);
    return { ...action, latencyMs, tokenBudget: budget };
  }

  /**
   * {@link act} up to its first decoder call ({@link ArPolicy.begin}), pruned to the current budget
   * or `budget`; call {@link learn} with the chunk's latency once it is decoded.
   */
  async begin(obs: ArObservation, options: ArBeginOptions): Promise<ArBegun> {
    return only(await this.beginMany([{ obs, options }]));
  }

  /**
   * {@link begin} for several observations at once ({@link ArPolicy.beginMany}: one encoder call
   * and one prefill where the graphs allow), each pruned to the current budget or its own; a
   * failed prefill fails only its own observation.
   *
   * @throws as {@link ArPolicy.beginMany}: a bad observation or a failed encoder fails them all.
   */
  async beginMany(
    batch: readonly { readonly obs: ArObservation; readonly options: ArBeginOptions }[],
  ): Promise<PromiseSettledResult<ArBegun>[]> {
    const current = this.tokenBudget;
    const budgets = batch.map(({ options }) => options.budget ?? current);
    const begun = await this.#policy.beginMany(
      batch.map(({ obs, options }, i) => {
        const { budget: _own, ...rest } = options;
        return { obs, ...rest, ...this.#pruning(budgets[i] as number) };
      }),
    );
    return mapFulfilled(begun, (b, i) => ({ ...b, tokenBudget: budgets[i] as number }));
  }

  /** The policy's pruning options at `budget` tokens (none without a pruner). */
  #pruning(budget: number): Pick<ArActOptions, 'pruner' | 'budget'> {
    return this.#pruner === undefined ? {} : { pruner: this.#pruner, budget };
  }

  /**
   * Let the latency-budget controller see a chunk's end-to-end latency (one begun with
   * {@link begin} under the current budget; a chunk with its own budget teaches it nothing).
   */
  learn(latencyMs: number): void {
    if (this.#controller !== undefined)
      this.#budget = tokenBudget(this.#total, this.#controller.observe(latencyMs), 0);
  }

  /**
   * Several observations decoded greedily together ({@link ArPolicy.actGreedyMany}), each pruned
   * to the current budget or its own; the controller sees the batch's latency once.
   */
  async actGreedyMany(
    batch: readonly { readonly obs: ArObservation; readonly budget?: number }[],
  ): Promise<PrunedArAction[]> {
    const current = this.tokenBudget;
    const start = performance.now();
    const actions = await this.#policy.actGreedyMany(
      batch.map((b) => ({ obs: b.obs, ...this.#pruning(b.budget ?? current) })),
    );
    const latencyMs = performance.now() - start;
    if (this.#controller !== undefined && batch.some((b) => b.budget === undefined))
      this.#budget = tokenBudget(this.#total, this.#controller.observe(latencyMs), 0);
    return actions.map((a, i) => ({
      ...a,
      latencyMs,
      tokenBudget: batch[i]?.budget ?? current,
    }));
  }
}
