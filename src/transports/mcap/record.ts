/**
 * Recording simulated runs as rosbag2 bags: the built-in tabletop with the scripted expert driving.
 */

import { InputError } from '../../errors.js';
import { expertChunk } from '../../sim/expert.js';
import { TabletopSim } from '../../sim/tabletop.js';
import { episodeSeed } from '../../util/rng.js';
import { multiArrayOf } from './codec.js';
import { defaultCameraTopic, DEFAULT_TOPICS } from './replay-topics.js';
import { rosTime } from './schemas.js';
import { BagWriter, OFFERED_QOS } from './writer.js';

export interface RecordSimOptions {
  /** Bag folder (or `.mcap` file) to create. */
  readonly out: string;
  readonly episodes: number;
  /** Episode i uses the scene seed episodeSeed(seed, i), as `vla-node sim` does. */
  readonly seed: number;
  /** Frames per second of the bag's clock (the manifest's control rate). */
  readonly controlRateHz: number;
  /** Actions per expert chunk on /expert/actions (the manifest's horizon). */
  readonly horizon: number;
  readonly cameraWidth?: number;
  readonly cameraHeight?: number;
  readonly maxSteps?: number;
  /** Stamp of the first frame, ns since the epoch (default 1.7e18: fixed, so bags are reproducible). */
  readonly startTimeNs?: bigint;
  /**
   * The cameras to record, in a model's camera order (default `['table']`): `table` (the tabletop
   * view) and `wrist` (rendered around the end effector), each on {@link defaultCameraTopic}.
   */
  readonly cameras?: readonly string[];
}

const DEFAULTS = {
  cameraWidth: 128,
  cameraHeight: 128,
  maxSteps: 60,
  startTimeNs: 1_700_000_000_000_000_000n,
} as const;

export interface RecordSimResult {
  readonly out: string;
  readonly episodes: number;
  readonly frames: number;
  readonly successes: number;
  /** Messages per topic. */
  readonly messages: Record<string, number>;
}

/**
 * Record `episodes` expert-driven episodes: per control step /joint_states (x, y), the expert's
 * chunk on /expert/actions and the camera frame on /camera/image_raw (rgb8), all stamped with the
 * step's time; /instruction once at the start of each episode. With several `cameras`, the others
 * (e.g. the wrist camera on /wrist_camera/image_raw) come just before the first camera's frame of
 * the same step, so a replay that infers on the first camera's frames has them all. Log times are
 * strictly increasing (instruction, state, reference, other cameras, image, a microsecond apart),
 * so any reader orders them the same.
 */
export async function recordSim(options: RecordSimOptions): Promise<RecordSimResult> {
  const cameras = options.cameras ?? ['table'];
  cameras.forEach((name, i) => {
    if (name !== 'table' && name !== 'wrist') {
      throw new InputError(
        `Expected the cameras to record to be table|wrist (what the simulator renders) but received ${JSON.stringify(name)}`,
        { field: `cameras[${i}]` },
      );
    }
  });
  const width = options.cameraWidth ?? DEFAULTS.cameraWidth;
  const height = options.cameraHeight ?? DEFAULTS.cameraHeight;
  const period = BigInt(Math.round(1e9 / options.controlRateHz));
  const bag = await BagWriter.create({ path: options.out });
  const chunk = new Float32Array(options.horizon * 2);
  let t = options.startTimeNs ?? DEFAULTS.startTimeNs;
  let frames = 0;
  let successes = 0;
  try {
    for (let e = 0; e < options.episodes; e++) {
      const sim = new TabletopSim({
        seed: episodeSeed(options.seed, e),
        cameraWidth: width,
        cameraHeight: height,
        maxSteps: options.maxSteps ?? DEFAULTS.maxSteps,
      });
      const goal = sim.scene.task.goal;
      let first = true;
      while (!sim.done) {
        const obs = sim.observe();
        const header = { stamp: rosTime(t), frame_id: 'camera' };
        if (first) {
          // Latched like the node's instruction subscription (reliable, transient local, depth
          // 1): `ros2 bag play` offers it so, and a node that starts later still receives it.
          await bag.write(
            DEFAULT_TOPICS.instruction,
            'std_msgs/msg/String',
            { data: obs.instruction },
            t,
            OFFERED_QOS.latched,
          );
          first = false;
        }
        await bag.write(
          DEFAULT_TOPICS.state,
          'sensor_msgs/msg/JointState',
          {
            header: { ...header, frame_id: '' },
            name: ['x', 'y'],
            position: Float64Array.from(obs.state),
            velocity: [],
            effort: [],
          },
          t + 1000n,
        );
        expertChunk(sim.effector, goal, options.horizon, chunk);
        await bag.write(
          DEFAULT_TOPICS.reference,
          'std_msgs/msg/Float32MultiArray',
          multiArrayOf(chunk, options.horizon, 2),
          t + 2000n,
        );
        // Every camera of the step, the first (the one a replay infers on) last.
        for (let k = cameras.length - 1; k >= 0; k--) {
          const name = cameras[k] as string;
          const image = name === 'wrist' ? sim.wristImage() : obs.image;
          await bag.write(
            defaultCameraTopic(name, k, DEFAULT_TOPICS.image),
            'sensor_msgs/msg/Image',
            {
              header: k === 0 ? header : { ...header, frame_id: `${name}_camera` },
              height: image.height,
              width: image.width,
              encoding: 'rgb8',
              is_bigendian: 0,
              step: image.width * 3,
              data: image.data,
            },
            t + 3000n - BigInt(k) * 100n,
          );
        }
        frames++;
        sim.step(chunk.subarray(0, 2));
        t += period;
      }
      if (sim.success) successes++;
    }
  } finally {
    await bag.close();
  }
  return {
    out: options.out,
    episodes: options.episodes,
    frames,
    successes,
    messages: Object.fromEntries(bag.counts),
  };
}
