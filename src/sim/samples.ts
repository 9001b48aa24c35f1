import type { Frame } from '../ingest/index.js';
import { episodeSeed } from '../util/rng.js';
import { TabletopSim } from './tabletop.js';

/** One observation of the simulator: a camera frame, the instruction and the robot state. */
export interface SimSample {
  readonly frame: Frame;
  readonly instruction: string;
  readonly state: readonly number[];
}

/**
 * Observations from the built-in simulator: episodes seeded like `sim` (episodeSeed(seed, i)),
 * driven straight to the goal, one frame every `every` steps until `count` frames.
 */
export function simulatorSamples(count: number, seed: number, every = 2): SimSample[] {
  const out: SimSample[] = [];
  for (let episode = 0; out.length < count; episode++) {
    const sim = new TabletopSim({ seed: episodeSeed(seed, episode) });
    const goal = sim.scene.task.goal;
    for (let step = 0; out.length < count; step++) {
      const obs = sim.observe();
      if (step % every === 0) {
        out.push({
          frame: { ...obs.image, data: obs.image.data.slice() },
          instruction: obs.instruction,
          state: [...obs.state],
        });
      }
      if (sim.done || sim.step([goal.x, goal.y])) break;
    }
  }
  return out;
}
