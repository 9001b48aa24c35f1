import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArPolicy, type ArObservation } from '../../../src/policy/autoregressive/policy.js';
import {
  PrunedArPolicy,
  type ArPruningOptions,
} from '../../../src/policy/autoregressive/pruned.js';
import { tokenBudget } from '../../../src/pruning/pruner.js';
import { BUDGET_TUNING } from '../../../src/runtime/budget.js';
import { makeArPackage, removeArPackages } from './ar-package.js';

let policy: ArPolicy;
let obs: ArObservation;

beforeAll(async () => {
  policy = await ArPolicy.load(await makeArPackage(), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const { width, height } = policy.pkg.image;
  obs = {
    pixels: Float32Array.from({ length: 3 * width * height }, (_, i) => Math.cos(i / 7)),
    rgb: Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37) % 256),
    instruction: 'move to the blue block',
    state: Float32Array.from([0.3, 0.7]),
  };
});

afterAll(async () => {
  await policy.close();
  await removeArPackages();
});

function pruning(overrides: Partial<ArPruningOptions>): ArPruningOptions {
  return {
    strategy: 'saliency',
    keepRatio: 0.5,
    keepCount: 0,
    minKeepRatio: 0.4,
    seed: 0,
    latencyBudgetMs: 0,
    ...overrides,
  };
}

const TOTAL = 144;

describe('ArPolicy behind pruning and the latency-budget controller', () => {
  it('feeds the prefill the fixed token budget when no latency budget is set', async () => {
    const runner = new PrunedArPolicy(policy, pruning({}));
    for (let i = 0; i < BUDGET_TUNING.window + 2; i++) {
      const r = await runner.act(obs, { strategy: 'greedy' });
      expect(r.keptTokens).toBe(tokenBudget(TOTAL, 0.5, 0));
      expect(r.tokenBudget).toBe(r.keptTokens);
    }
    expect(runner.keepRatio).toBe(0.5);
  });

  it('shrinks the keep ratio after each full window over budget, down to min_keep_ratio', async () => {
    // No chunk decodes in a microsecond: every window is over budget.
    const runner = new PrunedArPolicy(policy, pruning({ latencyBudgetMs: 0.001 }));
    const budgets: number[] = [];
    for (let i = 0; i < 2 * BUDGET_TUNING.window + 1; i++) {
      const r = await runner.act(obs, { strategy: 'jacobi', window: 8 });
      // Whatever the budget, the chunk is whole and within the limits.
      expect(r.tokens).toHaveLength(16);
      r.actions.forEach((a) => {
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThanOrEqual(1);
      });
      expect(r.keptTokens).toBe(r.tokenBudget);
      budgets.push(r.tokenBudget);
    }
    const w = BUDGET_TUNING.window;
    expect(budgets[0]).toBe(tokenBudget(TOTAL, 0.5, 0));
    expect(budgets[w - 1]).toBe(tokenBudget(TOTAL, 0.5, 0));
    expect(budgets[w]).toBe(tokenBudget(TOTAL, 0.5 * BUDGET_TUNING.step, 0));
    // The next step (0.36) is below the floor: clamped to min_keep_ratio.
    expect(budgets[2 * w]).toBe(tokenBudget(TOTAL, 0.4, 0));
    expect(runner.keepRatio).toBeCloseTo(tokenBudget(TOTAL, 0.4, 0) / TOTAL, 10);
  });

  it('keeps keep_ratio while comfortably under the budget', async () => {
    const runner = new PrunedArPolicy(policy, pruning({ latencyBudgetMs: 1e6 }));
    for (let i = 0; i < BUDGET_TUNING.window + 2; i++)
      await runner.act(obs, { strategy: 'greedy' });
    expect(runner.tokenBudget).toBe(tokenBudget(TOTAL, 0.5, 0));
  });

  it('runs every token without pruning, the latency budget having nothing to adapt', async () => {
    const runner = new PrunedArPolicy(
      policy,
      pruning({ strategy: 'none', keepRatio: 1, latencyBudgetMs: 0.001 }),
    );
    for (let i = 0; i < BUDGET_TUNING.window + 1; i++) {
      const r = await runner.act(obs, { strategy: 'greedy' });
      expect(r.keptTokens).toBe(TOTAL);
    }
    expect(runner.keepRatio).toBe(1);
  });
});
