/** A pipeline double and message makers for the ROS 2 node tests. */
import type { Observation, ActionChunk } from '../../../src/pipeline/pipeline.js';
import type { NodePipeline } from '../../../src/transports/ros/node.js';
import type {
  RosCompressedImage,
  RosDiagnosticArray,
  RosImage,
  RosJointState,
} from '../../../src/transports/ros/messages.js';

export type PipelineMode = 'ok' | 'nan' | 'out-of-limits' | 'fail';

/**
 * A pipeline that answers at once: action i of dimension d is state[d] + 0.01 × i (state in the
 * manifest's order), within the limits [-1, 1].
 */
export class FakePipeline implements NodePipeline {
  readonly model: NodePipeline['model'] = {
    manifest: {
      control_rate_hz: 10,
      image: {
        width: 4,
        height: 4,
        channels: 3,
        layout: 'NCHW',
        resize: 'stretch',
        mean: [0.5, 0.5, 0.5],
        std: [0.25, 0.25, 0.25],
      },
      patch_grid: { width: 2, height: 2, patch_size: 2 },
      chunk: { horizon: 4, action_dim: 2 },
      action: {
        names: ['shoulder', 'elbow'],
        min: [-1, -1],
        max: [1, 1],
      },
      state: { names: ['elbow', 'shoulder'], mean: [0, 0], std: [1, 1] },
    },
  };
  readonly provider = 'cpu';
  readonly actionLimits = { min: [-1, -1], max: [1, 1], maxDeltaPerStep: 0 };
  readonly observations: Observation[] = [];
  readonly latency = {
    total: { summary: () => ({ count: 1, mean: 5, p50: 5, p95: 5, p99: 5, max: 5 }) },
  };
  mode: PipelineMode = 'ok';
  released = false;
  #sequence = 0;

  get lastSelection(): NodePipeline['lastSelection'] {
    return { rgb: new Uint8Array(4 * 4 * 3).fill(100), positions: Int32Array.from([0, 3]) };
  }

  infer(observation: Observation): Promise<ActionChunk> {
    this.observations.push(observation);
    if (this.mode === 'fail') return Promise.reject(new Error('policy session failed'));
    const actions = new Float32Array(8);
    for (let i = 0; i < 4; i++) {
      for (let d = 0; d < 2; d++) actions[i * 2 + d] = (observation.state[d] ?? 0) + 0.01 * i;
    }
    if (this.mode === 'nan') actions[3] = Number.NaN;
    if (this.mode === 'out-of-limits') actions[5] = 7;
    return Promise.resolve({
      sequence: this.#sequence++,
      actions,
      horizon: 4,
      actionDim: 2,
      dt: 0.1,
      sourceStamp: observation.stamp,
      latencyMs: 5,
      stages: { preprocess: 1, encode: 1, prune: 1, policy: 1, postprocess: 1 },
      tokens: { total: 4, kept: 2 },
      clamped: 0,
    });
  }

  release(): Promise<void> {
    this.released = true;
    return Promise.resolve();
  }
}

/** A 4×4 rgb8 sensor_msgs/Image as rclnodejs delivers it. */
export function image(sec: number, nanosec = 0): RosImage {
  return {
    header: { stamp: { sec, nanosec }, frame_id: 'camera' },
    height: 4,
    width: 4,
    encoding: 'rgb8',
    is_bigendian: 0,
    step: 12,
    data: new Uint8Array(48).fill(90),
  };
}

/** A sensor_msgs/CompressedImage (the bytes are not decoded by the pipeline double). */
export function compressed(sec: number): RosCompressedImage {
  return {
    header: { stamp: { sec, nanosec: 0 }, frame_id: 'camera' },
    format: 'jpeg',
    data: Uint8Array.from([0xff, 0xd8, 0xff, 0xd9]),
  };
}

/** A sensor_msgs/JointState with positions as a Float64Array (as rclnodejs delivers it). */
export function jointState(names: string[], positions: number[]): RosJointState {
  return {
    header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' },
    name: names,
    position: Float64Array.from(positions),
    velocity: new Float64Array(0),
    effort: new Float64Array(0),
  };
}

/** The first status of the last /diagnostics message the node published: message and values. */
export function lastStatus(messages: readonly unknown[]): {
  readonly message: string;
  readonly values: Record<string, string>;
} {
  const status = (messages.at(-1) as RosDiagnosticArray | undefined)?.status[0];
  return {
    message: status?.message ?? '',
    values: Object.fromEntries((status?.values ?? []).map((v) => [v.key, v.value])),
  };
}
