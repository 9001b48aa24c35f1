import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/runtime/latency.js';
import { ConfigError } from '../../src/errors.js';
import {
  enforceLimits,
  maxDeltaOf,
  resolveLimits,
  UnsafeActionError,
  type LimitsRequest,
} from '../../src/runtime/safety.js';

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

describe('resolveLimits', () => {
  const model = {
    name: 'arm',
    control_rate_hz: 10,
    chunk: { action_dim: 2 },
    action: { names: ['joint', 'gripper'], min: [-3, 0], max: [3, 0.08] },
  };

  it('derives the per-step change limit from each dimension range and the control rate', () => {
    const limits = resolveLimits(model, { min: [], max: [], maxDeltaPerStep: 0 });
    expect(limits.min).toEqual([-3, 0]);
    expect(limits.max).toEqual([3, 0.08]);
    const delta = limits.maxDeltaPerStep as number[];
    expect(delta[0]).toBeCloseTo(0.6, 12); // 6 / 10 Hz: the full range in one second
    expect(delta[1]).toBeCloseTo(0.008, 12);
    expect(maxDeltaOf(limits, 1)).toBeCloseTo(0.008, 12);
  });

  it('keeps a configured per-step limit', () => {
    expect(resolveLimits(model, { min: [], max: [], maxDeltaPerStep: 0.2 }).maxDeltaPerStep).toBe(
      0.2,
    );
  });

  it('stops the 0.741 jump that the old default (0 = unlimited) let through', () => {
    const limits = resolveLimits(
      { ...model, action: { names: ['x', 'y'], min: [0, 0], max: [1, 1] } },
      { min: [], max: [], maxDeltaPerStep: 0 },
    );
    const chunk = Float32Array.of(0.1, 0.5, 0.841, 0.5);
    enforceLimits(chunk, 2, limits);
    expect(chunk[2]).toBeCloseTo(0.2, 6);
  });

  it.each<{ request: LimitsRequest; field: string; text: string }>([
    {
      request: { min: [1, 0], max: [-1, 0.08], maxDeltaPerStep: 0 },
      field: 'safety.action_min[0]',
      text: 'below safety.action_max[0] (-1) but received 1',
    },
    {
      request: { min: [0, 0], max: [0, 0.08], maxDeltaPerStep: 0 },
      field: 'safety.action_min[0]',
      text: 'below safety.action_max[0] (0) but received 0',
    },
    {
      request: { min: [-1000, 0], max: [1000, 0.08], maxDeltaPerStep: 0 },
      field: 'safety.action_min[0]',
      text: 'inside the action limits of arm [-3, 3]',
    },
    {
      request: { min: [-1, 0], max: [1, 0.1], maxDeltaPerStep: 0 },
      field: 'safety.action_max[1]',
      text: 'inside the action limits of arm [0, 0.08]',
    },
    {
      request: { min: [0], max: [1], maxDeltaPerStep: 0 },
      field: 'safety.action_min',
      text: 'Expected 2 values (one per action dimension: joint, gripper)',
    },
    {
      request: { min: [], max: [], maxDeltaPerStep: -1 },
      field: 'safety.max_delta_per_step',
      text: 'Expected a finite number >= 0',
    },
  ])('refuses $request with a ConfigError naming $field', ({ request, field, text }) => {
    try {
      resolveLimits(model, request);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe(field);
      expect((error as ConfigError).message).toContain(text);
    }
  });

  it('accepts limits beyond the model when explicitly allowed', () => {
    const request = { min: [-1000, 0], max: [1000, 0.08], maxDeltaPerStep: 0 };
    expect(resolveLimits(model, { ...request, allowBeyondModel: true }).min).toEqual([-1000, 0]);
  });
});
