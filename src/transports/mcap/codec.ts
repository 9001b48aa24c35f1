/**
 * Conversions between decoded ROS 2 messages and the pipeline's inputs and outputs.
 */

import type { Frame } from '../../ingest/index.js';
import type { ActionChunk } from '../../pipeline/pipeline.js';
import { chunkMultiArray, frameFromImage, jointTrajectory } from '../messages/index.js';
import { rosTime } from './schemas.js';

interface Time {
  readonly sec: number;
  readonly nanosec: number;
}
interface Header {
  readonly stamp: Time;
  readonly frame_id: string;
}

/** sensor_msgs/msg/Image as MessageReader decodes it. */
export interface ImageMsg {
  readonly header: Header;
  readonly height: number;
  readonly width: number;
  readonly encoding: string;
  readonly is_bigendian: number;
  readonly step: number;
  readonly data: Uint8Array;
}

/** sensor_msgs/msg/CompressedImage. */
export interface CompressedImageMsg {
  readonly header: Header;
  readonly format: string;
  readonly data: Uint8Array;
}

/** sensor_msgs/msg/JointState. */
export interface JointStateMsg {
  readonly header: Header;
  readonly name: readonly string[];
  readonly position: ArrayLike<number>;
  readonly velocity: ArrayLike<number>;
  readonly effort: ArrayLike<number>;
}

/** std_msgs/msg/Float32MultiArray. */
export interface Float32MultiArrayMsg {
  readonly layout: {
    readonly dim: readonly { label: string; size: number; stride: number }[];
    readonly data_offset: number;
  };
  readonly data: ArrayLike<number>;
}

/** Milliseconds → builtin_interfaces/Time (rounded to the nanosecond). */
export function timeOfMs(ms: number): Time {
  return rosTime(BigInt(Math.round(ms * 1e6)));
}

/**
 * A raw frame from an Image, or a reason it cannot be one. The data must hold exactly
 * `step × height` bytes (what a well-formed message carries).
 */
export function frameOfImage(msg: ImageMsg): Frame | string {
  const needed = msg.step * msg.height;
  if (msg.data.length !== needed) {
    return `Expected ${needed} bytes of image data (step ${msg.step} x height ${msg.height}) but received ${msg.data.length}`;
  }
  return frameFromImage(msg);
}

/**
 * The state vector from a JointState: the positions of the joints named like the manifest's state
 * names when all are present, else the first `names.length` positions in order; a reason when
 * there are too few.
 */
export function stateOfJoints(msg: JointStateMsg, names: readonly string[]): Float64Array | string {
  const out = new Float64Array(names.length);
  const index = names.map((n) => msg.name.indexOf(n));
  if (index.every((i) => i >= 0 && i < msg.position.length)) {
    for (let k = 0; k < names.length; k++) out[k] = msg.position[index[k] as number] as number;
    return out;
  }
  if (msg.position.length < names.length) {
    return `Expected ${names.length} joint positions (${names.join(', ')}) but received ${msg.position.length}`;
  }
  for (let k = 0; k < names.length; k++) out[k] = msg.position[k] as number;
  return out;
}

/** An action chunk as trajectory_msgs/msg/JointTrajectory: the ROS node's message, exactly. */
export function jointTrajectoryOf(chunk: ActionChunk, jointNames: readonly string[], stamp: Time) {
  return jointTrajectory(
    { stamp, frame_id: '' },
    jointNames,
    chunk.actions,
    chunk.actionDim,
    chunk.dt,
  );
}

/** horizon × actionDim values as std_msgs/msg/Float32MultiArray (the ROS node's raw chunk). */
export function multiArrayOf(
  data: Float32Array,
  horizon: number,
  actionDim: number,
): Float32MultiArrayMsg {
  return chunkMultiArray(data, horizon, actionDim);
}
