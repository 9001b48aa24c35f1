import type { Frame } from '../ingest/index.js';
import { episodeSeed } from '../util/rng.js';
import { simCameraFrames } from './flow-agent.js';
import { TabletopSim } from './tabletop.js';

/** One observation of the simulator: a camera frame, the instruction and the robot state. */
export interface SimSample {
  /** The tabletop camera's frame, or the first camera's when cameras were asked for. */
  readonly frame: Frame;
  /** The further cameras asked for, by name (`wrist`). */
  readonly images?: Readonly<Record<string, Frame>>;
  readonly instruction: string;
  readonly state: readonly number[];
}

/**
 * Observations from the built-in simulator: episodes seeded like `sim` (episodeSeed(seed, i)),
 * driven straight to the goal, one frame every `every` steps until `count` frames. `cameras`
 * (a flow package's camera names) renders those cameras of the same step: the first into `frame`,
 * the others into `images`.
 */
export function simulatorSamples(
  count: number,
  seed: number,
  every = 2,
  cameras: readonly string[] = [],
): SimSample[] {
  const out: SimSample[] = [];
  for (let episode = 0; out.length < count; episode++) {
    const sim = new TabletopSim({ seed: episodeSeed(seed, episode) });
    const goal = sim.scene.task.goal;
    for (let step = 0; out.length < count; step++) {
      const obs = sim.observe();
      if (step % every === 0) {
        // The simulator reuses its render buffers: every frame kept is a copy.
        const frames = simCameraFrames(cameras, obs, sim).map((f) =>
          f.kind === 'raw' ? { ...f, data: f.data.slice() } : f,
        );
        out.push({
          frame: frames[0] ?? { ...obs.image, data: obs.image.data.slice() },
          ...(cameras.length < 2
            ? {}
            : {
                images: Object.fromEntries(
                  cameras.slice(1).map((c, i) => [c, frames[i + 1] as Frame]),
                ),
              }),
          instruction: obs.instruction,
          state: [...obs.state],
        });
      }
      if (sim.done || sim.step([goal.x, goal.y])) break;
    }
  }
  return out;
}
