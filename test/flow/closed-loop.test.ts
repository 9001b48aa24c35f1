import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowPolicy } from '../../src/flow/policy.js';
import { loadFlowPackage } from '../../src/model/flow-manifest.js';
import { flowAgent } from '../../src/sim/flow-agent.js';
import { runEpisodes } from '../../src/sim/runner.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { distance } from '../../src/sim/world.js';
import { FLOW_DIR, flowOptions } from './package.js';

let policy: FlowPolicy;
beforeAll(async () => {
  policy = await FlowPolicy.create(
    await loadFlowPackage(FLOW_DIR),
    flowOptions({ caches: { instruction: true, visualThreshold: null, visualCameras: [] } }),
  );
});
afterAll(async () => {
  await policy.release();
});

describe('tiny-vla-flow in closed loop', () => {
  it('drives the effector towards the instructed goal on both cameras', async () => {
    const summary = await runEpisodes(flowAgent(policy, { seed: 1 }), {
      episodes: 8,
      seed: 1,
      executeSteps: 8,
      maxSteps: 60,
      cameraWidth: 128,
      cameraHeight: 128,
      keepResults: true,
    });
    const start = summary.results.map((r) => {
      const scene = new TabletopSim({ seed: r.seed }).scene;
      return distance(scene.start, scene.task.goal);
    });
    const final = summary.results.map((r) => r.finalDistance);
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    // Behaviour, not a success rate: the episodes end much nearer their goals than they start
    // (the language picks the goal: a policy ignoring it would go anywhere).
    expect(mean(final)).toBeLessThan(0.6 * mean(start));
    expect(final.filter((d, i) => d < (start[i] as number)).length).toBeGreaterThanOrEqual(5);
    // The shipped model succeeds in 100 of 100 episodes (seed 1, models/tiny-vla-flow/README.md);
    // one miss in 8 is left for another CPU's float rounding.
    expect(summary.successes).toBeGreaterThanOrEqual(7);
  });
});
