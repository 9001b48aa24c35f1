import { describe, expect, it } from 'vitest';
import { ControlLoop, syncExecuteSteps, type ControlMode } from '../../src/runtime/control-loop.js';

const LIMITS = { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0 };

function loop(mode: ControlMode, maxDeltaPerStep = 0, executeSteps = 2): ControlLoop {
  return new ControlLoop({
    mode,
    horizon: 4,
    actionDim: 2,
    executeSteps,
    executor: {
      ensembleDecay: 0.5,
      rtcDecaySteps: 2,
      marginSteps: 0,
      safeAction: 'hold',
      limits: { ...LIMITS, maxDeltaPerStep },
    },
  });
}

/** 4 actions: x = base + 0.1 i, y = 0.5. */
function chunk(base: number): Float32Array {
  return Float32Array.from({ length: 8 }, (_, j) => (j % 2 === 0 ? base + (j / 2) * 0.1 : 0.5));
}

describe('ControlLoop', () => {
  it('sync: holds still at the measured position while waiting, runs executeSteps, asks again', () => {
    const l = loop('sync');
    expect(l.wantsChunk(0, 0)).toBe(true);
    const wait = l.tick(0, [0.25, 0.75], true);
    expect(wait.source).toBe('wait');
    expect(Array.from(wait.action)).toEqual([0.25, 0.75]);
    expect(l.accept(chunk(0.1), 0, 1)).toBe(true);
    expect(l.tick(1, [0.25, 0.75]).source).toBe('plan');
    expect(l.wantsChunk(2, 0)).toBe(false);
    expect(Array.from(l.tick(2, [0, 0]).action)).toEqual([Math.fround(0.2), 0.5]);
    expect(l.wantsChunk(3, 0)).toBe(true);
    expect(l.deadlineMisses).toBe(0);
    expect(l.safeHoldSteps).toBe(0);
  });

  it('sync: half the chunk when execute_steps is 0', () => {
    expect(syncExecuteSteps(0, 8)).toBe(4);
    expect(syncExecuteSteps(0, 1)).toBe(1);
    expect(syncExecuteSteps(20, 8)).toBe(8);
  });

  it('async: a step no plan covers after the first chunk is a deadline miss and a safe hold', () => {
    const l = loop('replace');
    expect(l.tick(0, [0.3, 0.3]).miss).toBe(false); // nothing yet: not a miss
    l.accept(chunk(0.1), 0, 1);
    for (let t = 1; t < 4; t++) expect(l.tick(t, [0, 0]).source).toBe('plan');
    const held = l.tick(4, [0, 0]);
    expect(held).toMatchObject({ source: 'safe', miss: true });
    expect(Array.from(held.action)).toEqual([Math.fround(0.4), 0.5]);
    expect(l.consecutiveMisses).toBe(1);
    expect(l.inSafeHold).toBe(true);
    l.accept(chunk(0.2), 4, 5);
    expect(l.tick(5, [0, 0]).source).toBe('plan');
    expect(l.consecutiveMisses).toBe(0);
    expect(l.deadlineMisses).toBe(1);
  });

  it('a chunk entirely in the past does not change the plan', () => {
    const l = loop('replace');
    expect(l.accept(chunk(0.1), 0, 4)).toBe(false);
    expect(l.planVersion).toBe(0);
    expect(l.started).toBe(false);
  });

  it('ensemble: the plan and the actions sent are the merge, not the newest chunk', () => {
    const l = loop('ensemble');
    l.accept(chunk(0.1), 0, 1);
    l.tick(1, [0, 0]);
    l.accept(chunk(0.6), 1, 2);
    const plan = l.planFrom(2);
    // step 2: chunk A has 0.3 (its i = 2), chunk B 0.7 (i = 1): weights 1 and e^-0.5
    const w = Math.exp(-0.5);
    expect(plan[0]).toBeCloseTo((0.3 + w * 0.7) / (1 + w), 6);
    expect(l.tick(2, [0, 0]).action[0]).toBeCloseTo((0.3 + w * 0.7) / (1 + w), 6);
    expect(plan).toHaveLength(3 * 2); // B covers steps 1..4, from step 2 on: 3 steps
  });

  it('every action sent stays within max_delta_per_step of the previous one, waits included', () => {
    const l = loop('sync', 0.05);
    l.tick(0, [0.2, 0.5], true);
    l.accept(chunk(0.6), 0, 1);
    const first = l.tick(1, [0.2, 0.5]);
    expect(first.action[0]).toBeCloseTo(0.25, 6);
  });
});
