import { describe, expect, it } from 'vitest';
import {
  ChunkExecutor,
  MERGE_MODES,
  type ExecutorOptions,
  type MergeMode,
} from '../../src/runtime/executor.js';

const LIMITS = { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0 };

function executor(mergeMode: MergeMode, overrides: Partial<ExecutorOptions> = {}): ChunkExecutor {
  return new ChunkExecutor({
    horizon: 4,
    actionDim: 2,
    mergeMode,
    ensembleDecay: 0.5,
    rtcDecaySteps: 2,
    marginSteps: 1,
    safeAction: 'hold',
    limits: LIMITS,
    ...overrides,
  });
}

/** A chunk of 4 actions whose x is `base + i * step` and y is constant. */
function chunk(base: number, step = 0.01, y = 0.5): Float32Array {
  return Float32Array.from({ length: 8 }, (_, j) => (j % 2 === 0 ? base + (j / 2) * step : y));
}

const near = (a: number, b: number) => Math.abs(a - b) < 1e-6;

describe('ChunkExecutor', () => {
  it('holds the current position until the first chunk arrives, then follows it', () => {
    const ex = executor('replace');
    const first = ex.step(0, [0.3, 0.4]);
    expect(first.source).toBe('safe');
    expect(Array.from(first.action)).toEqual([Math.fround(0.3), Math.fround(0.4)]);
    expect(ex.inSafeHold).toBe(true);
    ex.accept(chunk(0.1), 0, 1); // computed from step 0, arrived at step 1: action 0 is past
    const out = ex.step(1, [0.3, 0.4]);
    expect(out.source).toBe('plan');
    expect(near(out.action[0] ?? 0, 0.11)).toBe(true);
    expect(ex.inSafeHold).toBe(false);
    expect(ex.remaining(2)).toBe(2);
  });

  it('asks for the next chunk when the actions left fall to the expected delay plus the margin', () => {
    const ex = executor('replace');
    ex.accept(chunk(0.1), 0, 0);
    expect(ex.shouldQuery(0, 1)).toBe(false); // 4 left > 1 + 1
    expect(ex.shouldQuery(2, 1)).toBe(true); // 2 left <= 2
    expect(ex.shouldQuery(1, 2)).toBe(true); // 3 left <= 3
  });

  it('replace: the new chunk takes over from the arrival step', () => {
    const ex = executor('replace');
    ex.accept(chunk(0.1), 0, 0);
    ex.accept(chunk(0.5), 1, 2);
    expect(near(ex.step(2, [0, 0]).action[0] ?? 0, 0.51)).toBe(true);
  });

  it('ensemble: overlapping predictions are averaged with exp(-m·i), oldest first', () => {
    const ex = executor('ensemble');
    ex.accept(chunk(0.1, 0), 0, 0); // predicts 0.1 for steps 0..3
    ex.accept(chunk(0.5, 0), 2, 2); // predicts 0.5 for steps 2..5
    const w0 = 1;
    const w1 = Math.exp(-0.5);
    const expected = (w0 * 0.1 + w1 * 0.5) / (w0 + w1);
    expect(near(ex.step(2, [0, 0]).action[0] ?? 0, expected)).toBe(true);
    expect(near(ex.step(3, [0, 0]).action[0] ?? 0, expected)).toBe(true);
    expect(near(ex.step(4, [0, 0]).action[0] ?? 0, 0.5)).toBe(true);
  });

  it('rtc: actions committed during the delay stay frozen, the rest blends towards the new chunk', () => {
    const ex = executor('rtc', { horizon: 4 });
    ex.accept(chunk(0.1, 0), 0, 0); // old plan: 0.1 for steps 0..3
    ex.accept(chunk(0.5, 0), 1, 2); // new: computed at 1, arrives at 2 (delay 1 step)
    // One frozen step (the delay), then weights exp(-1/2), exp(-2/2)... on the old plan.
    expect(near(ex.step(2, [0, 0]).action[0] ?? 0, 0.1)).toBe(true);
    const w = Math.exp(-1 / 2);
    expect(near(ex.step(3, [0, 0]).action[0] ?? 0, w * 0.1 + (1 - w) * 0.5)).toBe(true);
    expect(near(ex.step(4, [0, 0]).action[0] ?? 0, 0.5)).toBe(true);
  });

  it.each(MERGE_MODES)('%s: a chunk entirely in the past is ignored', (mode) => {
    const ex = executor(mode);
    ex.accept(chunk(0.1), 0, 10);
    expect(ex.step(10, [0.2, 0.2]).source).toBe('safe');
  });

  it('emits the safe action when the plan runs out (a late or failed inference) and recovers', () => {
    const ex = executor('replace');
    ex.accept(chunk(0.1), 0, 0);
    for (let t = 0; t < 4; t++) expect(ex.step(t, [0, 0]).source).toBe('plan');
    const held = ex.step(4, [0.9, 0.9]);
    expect(held.source).toBe('safe');
    expect(near(held.action[0] ?? 0, 0.13)).toBe(true); // holds the last commanded position
    expect(ex.safeHoldSteps).toBe(1);
    ex.accept(chunk(0.2), 5, 5);
    expect(ex.step(5, [0, 0]).source).toBe('plan');
    expect(ex.inSafeHold).toBe(false);
  });

  it('zero safe action sends zeros', () => {
    const ex = executor('replace', { safeAction: 'zero' });
    expect(Array.from(ex.step(0, [0.4, 0.4]).action)).toEqual([0, 0]);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY])(
    'never emits %s: a non-finite plan becomes a safe hold',
    (bad) => {
      const ex = executor('replace');
      ex.accept(chunk(0.1), 0, 0);
      ex.step(0, [0, 0]);
      const poisoned = chunk(0.2);
      poisoned[2] = bad; // the action for step 2
      ex.accept(poisoned, 1, 1);
      expect(ex.step(1, [0, 0]).source).toBe('plan');
      const out = ex.step(2, [0, 0]);
      expect(out.source).toBe('safe');
      expect(Array.from(out.action).every(Number.isFinite)).toBe(true);
      expect(near(out.action[0] ?? 0, 0.2)).toBe(true); // held at the step-1 action
      expect(ex.step(3, [0, 0]).source).toBe('plan');
    },
  );

  it('keeps every action inside the limits, including the per-step change', () => {
    const ex = executor('replace', {
      limits: { min: [0, 0], max: [0.6, 0.6], maxDeltaPerStep: 0.05 },
    });
    ex.accept(Float32Array.of(0.1, 0.1, 0.9, 0.9, -3, 5, 0.2, 0.2), 0, 0);
    let prev: number[] | undefined;
    for (let t = 0; t < 4; t++) {
      const a = Array.from(ex.step(t, [0, 0]).action);
      for (const v of a) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(0.6);
      }
      const before = prev;
      if (before) {
        a.forEach((v, d) => {
          expect(Math.abs(v - (before[d] ?? 0))).toBeLessThanOrEqual(0.05 + 1e-6);
        });
      }
      prev = a;
    }
  });

  describe('safe actions for position and velocity robots', () => {
    it('hold repeats the last action sent (position robots)', () => {
      const ex = executor('replace');
      ex.accept(chunk(0.3, 0), 0, 0);
      ex.step(0, [0, 0]);
      const out = ex.step(4, [0.9, 0.9]);
      expect(out.source).toBe('safe');
      expect(near(out.action[0] ?? 0, 0.3)).toBe(true);
      expect(near(out.action[1] ?? 0, 0.5)).toBe(true);
    });

    it('zero ramps a velocity robot down to a stop at the per-step change limit', () => {
      const ex = executor('replace', {
        safeAction: 'zero',
        limits: { min: [-1, -1], max: [1, 1], maxDeltaPerStep: 0.25 },
      });
      ex.accept(Float32Array.of(0.8, -0.6, 0.8, -0.6, 0.8, -0.6, 0.8, -0.6), 0, 0);
      for (let t = 0; t < 4; t++) ex.step(t, [0, 0]);
      const seen = [4, 5, 6, 7].map((t) => Array.from(ex.step(t, [0, 0]).action));
      expect(seen[0]?.[0]).toBeCloseTo(0.55, 6);
      expect(seen[0]?.[1]).toBeCloseTo(-0.35, 6);
      expect(seen[3]).toEqual([0, 0]);
    });

    it('safe_pose moves a position robot to the configured pose, rate-limited', () => {
      const ex = executor('replace', {
        safeAction: 'safe_pose',
        safePose: [0.5, 0.9],
        limits: { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0.1 },
      });
      ex.accept(chunk(0.2, 0, 0.5), 0, 0);
      for (let t = 0; t < 4; t++) ex.step(t, [0, 0]);
      const first = ex.step(4, [0, 0]);
      expect(first.source).toBe('safe');
      expect(first.action[0]).toBeCloseTo(0.3, 6);
      expect(first.action[1]).toBeCloseTo(0.6, 6);
      for (let t = 5; t < 12; t++) ex.step(t, [0, 0]);
      const settled = Array.from(ex.step(12, [0, 0]).action);
      expect(settled[0]).toBeCloseTo(0.5, 6);
      expect(settled[1]).toBeCloseTo(0.9, 6);
    });
  });

  describe('deadline misses', () => {
    it('counts every period after the first when no chunk ever arrives', () => {
      const ex = executor('replace');
      for (let t = 0; t < 50; t++) ex.step(t, [0.5, 0.5]);
      expect(ex.deadlineMisses).toBe(49);
      expect(ex.safeHoldSteps).toBe(50);
    });

    it('counts nothing when each chunk arrives in time, and the periods a late chunk leaves bare', () => {
      const ex = executor('replace');
      ex.step(0, [0, 0]); // the first inference's period
      ex.accept(chunk(0.1), 0, 1);
      for (let t = 1; t < 4; t++) ex.step(t, [0, 0]);
      expect(ex.deadlineMisses).toBe(0);
      for (let t = 4; t < 7; t++) ex.step(t, [0, 0]); // the next chunk is late
      expect(ex.deadlineMisses).toBe(3);
      ex.reset();
      ex.step(10, [0, 0]); // a new start: its first period is planned again
      expect(ex.deadlineMisses).toBe(3);
    });

    it('books synchronous waits: all but the planned period, or all when no chunk came', () => {
      const ex = executor('replace');
      ex.waited(1, true);
      expect(ex.deadlineMisses).toBe(0);
      ex.waited(3, true);
      expect(ex.deadlineMisses).toBe(2);
      ex.waited(2, false);
      expect(ex.deadlineMisses).toBe(4);
    });
  });

  it('reports smoothness as the mean absolute change between steps', () => {
    const ex = executor('replace');
    ex.accept(chunk(0.1, 0.02), 0, 0);
    for (let t = 0; t < 4; t++) ex.step(t, [0, 0]);
    expect(ex.smoothness).toBeCloseTo(0.01, 6); // x moves 0.02, y 0: mean over 2 dims
  });
});
