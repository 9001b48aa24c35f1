import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/runtime/latency.js';
import { enforceLimits, UnsafeActionError } from '../../src/runtime/safety.js';

describe('enforceLimits', () => {
  const limits = { min: [0, -1], max: [1, 1], maxDeltaPerStep: 0 };

  it('leaves a chunk inside the limits untouched', () => {
    const chunk = Float32Array.of(0.1, 0.2, 0.3, -0.4);
    expect(enforceLimits(chunk, 2, limits)).toBe(0);
    expect(Array.from(chunk)).toEqual(Array.from(Float32Array.of(0.1, 0.2, 0.3, -0.4)));
  });

  it('clamps each dimension to its own range and counts the changes', () => {
    const chunk = Float32Array.of(-0.5, 2, 1.5, -3);
    expect(enforceLimits(chunk, 2, limits)).toBe(4);
    expect(Array.from(chunk)).toEqual([0, 1, 1, -1]);
  });

  it('limits the change between consecutive steps', () => {
    const chunk = Float32Array.of(0, 0, 1, 0, 1, 0);
    enforceLimits(chunk, 2, { ...limits, maxDeltaPerStep: 0.25 });
    expect(Array.from(chunk)).toEqual([0, 0, 0.25, 0, 0.5, 0]);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    'rejects %s with a typed error',
    (bad) => {
      const chunk = Float32Array.of(0.5, 0.5, 0.5, bad);
      expect(() => enforceLimits(chunk, 2, limits)).toThrow(UnsafeActionError);
      try {
        enforceLimits(chunk, 2, limits);
      } catch (error) {
        expect((error as UnsafeActionError).code).toBe('UNSAFE_ACTION');
        expect((error as UnsafeActionError).field).toBe('actions[3]');
        expect((error as Error).message).toMatch(/step 1 dimension 1/);
      }
    },
  );
});

describe('LatencyHistogram', () => {
  it('reports percentiles in milliseconds', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) h.record(i);
    const s = h.summary();
    expect(s.count).toBe(100);
    expect(s.p50).toBeCloseTo(50, 0);
    expect(s.p95).toBeCloseTo(95, 0);
    expect(s.p99).toBeCloseTo(99, 0);
    expect(s.max).toBeCloseTo(100, 0);
    expect(s.mean).toBeCloseTo(50.5, 3);
    h.reset();
    expect(h.summary().count).toBe(0);
  });
});

describe('enforceLimits with limits that float32 cannot represent', () => {
  it('never leaves a stored value outside the limits', () => {
    const chunk = Float32Array.of(0.9, 0.1, -0.9, -0.1);
    enforceLimits(chunk, 2, { min: [-0.3, -0.3], max: [0.6, 0.6], maxDeltaPerStep: 0 });
    expect(Math.max(...chunk)).toBeLessThanOrEqual(0.6);
    expect(Math.min(...chunk)).toBeGreaterThanOrEqual(-0.3);
    expect(chunk[0]).toBeCloseTo(0.6, 6);
    expect(chunk[2]).toBeCloseTo(-0.3, 6);
  });
});
