import { describe, expect, it } from 'vitest';
import { FlowBudgetController } from '../../src/runtime/flow-budget.js';

const options = {
  budgetMs: 10,
  keepRatio: 0.8,
  minKeepRatio: 0.4,
  steps: 10,
  minSteps: 2,
  window: 5,
};

describe('FlowBudgetController', () => {
  it('holds the configured tokens and steps while the latency is within the budget', () => {
    const c = new FlowBudgetController(options);
    for (let i = 0; i < 40; i++) expect(c.observe(9)).toEqual({ keepRatio: 0.8, steps: 10 });
  });

  it('lowers the tokens to their minimum before it drops any step, then the steps to theirs', () => {
    const c = new FlowBudgetController(options);
    const seen: { keepRatio: number; steps: number }[] = [];
    for (let i = 0; i < 400; i++) seen.push(c.observe(50));
    const firstFewerSteps = seen.findIndex((e) => e.steps < 10);
    expect(firstFewerSteps).toBeGreaterThan(0);
    // Every effort before the first dropped step keeps all steps; from then on the tokens stay at
    // their minimum.
    expect(seen.slice(0, firstFewerSteps).every((e) => e.steps === 10)).toBe(true);
    expect(seen[firstFewerSteps]?.keepRatio).toBeCloseTo(0.4, 9);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]?.keepRatio).toBeLessThanOrEqual((seen[i - 1]?.keepRatio ?? 0) + 1e-12);
      expect(seen[i]?.steps).toBeLessThanOrEqual(seen[i - 1]?.steps ?? 0);
    }
    expect(c.effort.keepRatio).toBeCloseTo(0.4, 9);
    expect(c.effort.steps).toBe(2);
  });

  it('gives the steps back before the tokens when comfortably under the budget', () => {
    const c = new FlowBudgetController(options);
    for (let i = 0; i < 400; i++) c.observe(50);
    const seen: { keepRatio: number; steps: number }[] = [];
    for (let i = 0; i < 400; i++) seen.push(c.observe(1));
    // Never more than the fewest tokens with fewer than all the steps.
    for (const e of seen) expect(e.steps === 10 || Math.abs(e.keepRatio - 0.4) < 1e-9).toBe(true);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]?.keepRatio).toBeGreaterThanOrEqual((seen[i - 1]?.keepRatio ?? 0) - 1e-12);
      expect(seen[i]?.steps).toBeGreaterThanOrEqual(seen[i - 1]?.steps ?? 0);
    }
    expect(c.effort).toEqual({ keepRatio: 0.8, steps: 10 });
  });

  it('never changes the steps when their minimum is the configured count', () => {
    const c = new FlowBudgetController({ ...options, minSteps: 10 });
    for (let i = 0; i < 400; i++) expect(c.observe(50).steps).toBe(10);
    expect(c.effort.keepRatio).toBeCloseTo(0.4, 9);
  });
});
