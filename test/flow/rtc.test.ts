import { describe, expect, it } from 'vitest';
import { guidanceWeight, guidedVelocity, prefixWeights } from '../../src/flow/rtc.js';
import { planGuidance } from '../../src/sim/flow-agent.js';

describe('real-time chunking guidance (Black et al. 2025)', () => {
  it('weights the overlap as the paper: frozen 1s, a ramp to `end`, zeros after', () => {
    // The reference implementation's example: start 2, end 6, total 10, linear schedule.
    expect(Array.from(prefixWeights(2, 6, 10, 'linear'))).toEqual(
      [1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0, 0, 0, 0].map((v) => Math.fround(v)),
    );
    // exp: w (e^w - 1) / (e - 1) of the same ramp; 1 stays 1, 0 stays 0.
    const exp = prefixWeights(2, 6, 10, 'exp');
    expect(exp[0]).toBe(1);
    expect(exp[2]).toBeCloseTo((0.8 * Math.expm1(0.8)) / (Math.E - 1), 6);
    expect(exp[6]).toBe(0);
    expect(Array.from(prefixWeights(3, 5, 6, 'zeros'))).toEqual([1, 1, 1, 0, 0, 0]);
  });

  it('clips the guidance weight at beta, infinite at t = 0 and vanishing at t = 1', () => {
    expect(guidanceWeight(0, 5)).toBe(5);
    // t = 0.5: (1 - t) / t = 1, (t^2 + (1 - t)^2) / (1 - t)^2 = 2.
    expect(guidanceWeight(0.5, 5)).toBeCloseTo(2, 12);
    expect(guidanceWeight(0.1, 5)).toBe(5);
    expect(guidanceWeight(1, 5)).toBe(0);
  });

  it('corrects the velocity by the vector-Jacobian product of the denoised estimate', async () => {
    // A linear velocity field v(x) = M x + b: the VJP is exact, e + (1 - t) M^T e.
    const n = 4;
    const M = [0.5, -0.2, 0, 0.1, 0.3, 0.4, -0.1, 0, 0, 0.2, -0.3, 0.5, 0.1, 0, 0.2, -0.4];
    const b = [0.1, -0.2, 0.3, 0];
    const field = (x: ArrayLike<number>, row: number): number => {
      let v = b[row] as number;
      for (let j = 0; j < n; j++) v += (M[row * n + j] as number) * (x[j] as number);
      return v;
    };
    const evaluate = (xs: Float32Array, count: number): Promise<Float32Array> => {
      const out = new Float32Array(count * n);
      for (let c = 0; c < count; c++) {
        const x = xs.subarray(c * n, (c + 1) * n);
        for (let i = 0; i < n; i++) out[c * n + i] = field(x, i);
      }
      return Promise.resolve(out);
    };
    const x = Float32Array.of(0.2, -0.5, 1, 0.3);
    const y = Float32Array.of(1, 1, -1, 0);
    const t = 0.4;
    const g = { target: y, delay: 1, end: 2, schedule: 'linear' as const, maxWeight: 5 };
    const got = await guidedVelocity(g, x, t, evaluate, y, 2);
    const v = Array.from({ length: n }, (_, i) => field(x, i));
    const w = [1, 1, 0.5, 0.5]; // two steps of two dims: step 0 frozen, step 1 on the ramp
    const e = v.map(
      (vi, i) => ((y[i] as number) - ((x[i] as number) + (1 - t) * vi)) * (w[i] as number),
    );
    const weight = guidanceWeight(t, 5);
    for (let j = 0; j < n; j++) {
      let mte = 0;
      for (let i = 0; i < n; i++) mte += (M[i * n + j] as number) * (e[i] as number);
      const want = (v[j] as number) + weight * ((e[j] as number) + (1 - t) * mte);
      expect(got[j]).toBeCloseTo(want, 2);
    }
  });

  it('builds the target from the executor plan: frozen for the delay, faded by horizon − s', () => {
    const plan = Float32Array.from({ length: 2 * 10 }, (_, i) => i);
    const g = planGuidance({ plan, delaySteps: 3, executeSteps: 8 }, 16, 2, {
      schedule: 'exp',
      maxWeight: 5,
    });
    expect(g.end).toBe(8);
    expect(g.delay).toBe(3);
    expect(Array.from(g.target.subarray(0, 20))).toEqual(Array.from(plan));
    expect(Array.from(g.target.subarray(20))).toEqual(new Array(12).fill(0));
    // A plan shorter than the overlap ends the mask where it ends.
    const short = planGuidance(
      { plan: plan.subarray(0, 8), delaySteps: 6, executeSteps: 8 },
      16,
      2,
      {
        schedule: 'exp',
        maxWeight: 5,
      },
    );
    expect(short.end).toBe(4);
    expect(short.delay).toBe(4);
  });
});
