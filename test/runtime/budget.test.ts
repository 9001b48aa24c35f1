import { describe, expect, it } from 'vitest';
import { BudgetController, LatestFrameSlot } from '../../src/runtime/budget.js';

const options = {
  budgetMs: 10,
  minRatio: 0.1,
  maxRatio: 1,
  window: 10,
  hysteresis: 0.2,
  step: 0.8,
};

describe('BudgetController', () => {
  it('starts at the maximum ratio and holds it while latency is within the budget', () => {
    const c = new BudgetController(options);
    for (let i = 0; i < 50; i++) expect(c.observe(9)).toBe(1);
  });

  it('shrinks the ratio while p95 is over the budget, at most once per window, down to the minimum', () => {
    const c = new BudgetController(options);
    const ratios: number[] = [];
    for (let i = 0; i < 200; i++) ratios.push(c.observe(20));
    expect(ratios.slice(0, 9).every((r) => r === 1)).toBe(true); // first window
    expect(ratios[9]).toBeCloseTo(0.8, 9);
    expect(ratios[18]).toBeCloseTo(0.8, 9); // a full new window before the next change
    expect(ratios[19]).toBeCloseTo(0.64, 9);
    expect(c.ratio).toBe(0.1);
  });

  it('grows back only when comfortably under the budget (hysteresis), not in between', () => {
    const c = new BudgetController(options);
    for (let i = 0; i < 30; i++) c.observe(20);
    const low = c.ratio;
    for (let i = 0; i < 30; i++) c.observe(9); // under budget but above 0.8 × budget: hold
    expect(c.ratio).toBe(low);
    for (let i = 0; i < 30; i++) c.observe(5);
    expect(c.ratio).toBeGreaterThan(low);
    for (let i = 0; i < 300; i++) c.observe(5);
    expect(c.ratio).toBe(1);
  });

  it('looks at p95, so a single spike per window does not shrink the ratio', () => {
    const c = new BudgetController({ ...options, window: 20 });
    for (let i = 0; i < 200; i++) c.observe(i % 20 === 0 ? 100 : 9);
    expect(c.ratio).toBe(1);
  });
});

describe('LatestFrameSlot', () => {
  it('keeps only the latest frame and counts the ones it replaced', () => {
    const slot = new LatestFrameSlot<string>(100);
    slot.put('a', 0);
    slot.put('b', 10);
    slot.put('c', 20);
    expect(slot.take(30)?.value).toBe('c');
    expect(slot.dropped).toBe(2);
    expect(slot.take(30)).toBeUndefined();
  });

  it('rejects and counts a frame older than the maximum age', () => {
    const slot = new LatestFrameSlot<string>(100);
    slot.put('old', 0);
    expect(slot.take(150)).toBeUndefined();
    expect(slot.stale).toBe(1);
    slot.put('new', 140);
    expect(slot.take(150)?.value).toBe('new');
  });
});
