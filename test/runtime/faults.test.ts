import { describe, expect, it } from 'vitest';
import { expertChunk } from '../../src/sim/expert.js';
import { runEpisodes, type Agent, type TimingOptions } from '../../src/sim/runner.js';

/**
 * A scripted expert that misbehaves: every 5th inference throws, every 7th returns a NaN, every
 * 11th returns actions far outside the table.
 */
function faultyExpert(): Agent & { calls: number } {
  const agent = {
    name: 'faulty',
    calls: 0,
    act: (_obs: unknown, sim: Parameters<Agent['act']>[1]) => {
      agent.calls++;
      if (agent.calls % 5 === 0) return Promise.reject(new Error('inference failed'));
      const chunk = new Float32Array(16);
      expertChunk(sim.effector, sim.scene.task.goal, 8, chunk);
      if (agent.calls % 7 === 0) chunk[Math.floor(agent.calls / 7) % 16] = Number.NaN;
      if (agent.calls % 11 === 0) chunk.fill(5);
      return Promise.resolve(chunk);
    },
  };
  return agent;
}

const timing = (mode: TimingOptions['mode']): TimingOptions => ({
  mode,
  controlRateHz: 10,
  horizon: 8,
  injectDelayMs: 150,
  injectJitterMs: 140, // delay spikes up to 290 ms
  stallProbability: 0.05,
  stallSteps: 6,
  maxFrameAgeMs: 300,
  executor: {
    ensembleDecay: 0.5,
    rtcDecaySteps: 2,
    marginSteps: 1,
    safeAction: 'hold',
    limits: { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0.08 },
  },
});

describe.each(['sync', 'replace', 'ensemble', 'rtc'] as const)(
  '%s execution under faults',
  (mode) => {
    it('never sends a NaN or an out-of-limit action, holds safely, and recovers', async () => {
      const actions: number[][] = [];
      const boundaries = new Set<number>();
      let safe = 0;
      const agent = faultyExpert();
      const summary = await runEpisodes(agent, {
        episodes: 12,
        seed: 5,
        executeSteps: 4,
        maxSteps: 120,
        cameraWidth: 64,
        cameraHeight: 64,
        timing: timing(mode),
        onAction: (action, source) => {
          actions.push(Array.from(action));
          if (source === 'safe') safe++;
        },
        onEpisode: () => {
          boundaries.add(actions.length);
        },
      });
      expect(agent.calls).toBeGreaterThan(30); // the faults really happened
      expect(summary.totals.inferenceErrors).toBeGreaterThan(0);
      expect(summary.totals.staleFrames).toBeGreaterThan(0);
      expect(actions.length).toBeGreaterThan(100);
      for (const a of actions) {
        for (const v of a) {
          expect(Number.isFinite(v)).toBe(true);
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThanOrEqual(1);
        }
      }
      for (let i = 1; i < actions.length; i++) {
        if (boundaries.has(i)) continue; // a new episode starts elsewhere
        const change = Math.max(
          ...(actions[i] ?? []).map((v, d) => Math.abs(v - (actions[i - 1]?.[d] ?? v))),
        );
        expect(change).toBeLessThanOrEqual(0.08 + 1e-6);
      }
      expect(safe).toBeGreaterThan(0);
      // Recovery: despite the faults the robot still reaches most goals.
      expect(summary.success_rate).toBeGreaterThanOrEqual(0.75);
    });
  },
);

describe.each(['sync', 'replace', 'ensemble', 'rtc'] as const)(
  '%s execution when no chunk ever arrives',
  (mode) => {
    it('counts the periods without a chunk as deadline misses', async () => {
      const calls = { n: 0 };
      const expert: Agent = {
        name: 'slow',
        act: (_obs, sim) => {
          calls.n++;
          const chunk = new Float32Array(16);
          expertChunk(sim.effector, sim.scene.task.goal, 8, chunk);
          return Promise.resolve(chunk);
        },
      };
      const summary = await runEpisodes(expert, {
        episodes: 3,
        seed: 2,
        executeSteps: 4,
        maxSteps: 40,
        cameraWidth: 64,
        cameraHeight: 64,
        timing: { ...timing(mode), injectDelayMs: 60_000, injectJitterMs: 0, stallProbability: 0 },
      });
      expect(calls.n).toBeGreaterThan(0);
      expect(summary.successes).toBe(0); // the robot never moves
      // Asynchronous: the first period is the one planned for the first inference. Synchronous:
      // the robot waits out the episode for a chunk that never comes, every period a miss.
      const perEpisode = mode === 'sync' ? 40 : 39;
      expect(summary.totals.deadlineMisses).toBe(3 * perEpisode);
    });
  },
);
