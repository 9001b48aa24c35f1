/**
 * The ROS 2 messages vla-node reads and writes, the ROS node and MCAP bags alike: shaped as
 * rclnodejs delivers and accepts them (primitive arrays as TypedArrays), and the builders of the
 * published ones. Transport-neutral: it imports no transport. Field names follow the .msg
 * definitions; the tests round-trip every published message through CDR.
 */
import type { EncodedFrame, RawFrame } from '../../ingest/index.js';

/** builtin_interfaces/msg/Time and Duration. */
export interface RosTime {
  sec: number;
  nanosec: number;
}
/** std_msgs/msg/Header. */
export interface RosHeader {
  stamp: RosTime;
  frame_id: string;
}
/** sensor_msgs/msg/Image. */
export interface RosImage {
  header: RosHeader;
  height: number;
  width: number;
  encoding: string;
  is_bigendian: number;
  step: number;
  data: Uint8Array;
}
/** sensor_msgs/msg/CompressedImage. */
export interface RosCompressedImage {
  header: RosHeader;
  format: string;
  data: Uint8Array;
}
/** sensor_msgs/msg/JointState. */
export interface RosJointState {
  header: RosHeader;
  name: string[];
  position: Float64Array | number[];
  velocity: Float64Array | number[];
  effort: Float64Array | number[];
}
/** std_msgs/msg/String. */
export interface RosString {
  data: string;
}
/** std_msgs/msg/Float64. */
export interface RosFloat64 {
  data: number;
}
/** trajectory_msgs/msg/JointTrajectoryPoint. */
export interface RosJointTrajectoryPoint {
  positions: Float64Array;
  velocities: Float64Array;
  accelerations: Float64Array;
  effort: Float64Array;
  time_from_start: RosTime;
}
/** trajectory_msgs/msg/JointTrajectory. */
export interface RosJointTrajectory {
  header: RosHeader;
  joint_names: string[];
  points: RosJointTrajectoryPoint[];
}
/** std_msgs/msg/MultiArrayDimension. */
export interface RosMultiArrayDimension {
  label: string;
  size: number;
  stride: number;
}
/** std_msgs/msg/Float32MultiArray. */
export interface RosFloat32MultiArray {
  layout: { dim: RosMultiArrayDimension[]; data_offset: number };
  data: Float32Array;
}
/** diagnostic_msgs/msg/KeyValue. */
export interface RosKeyValue {
  key: string;
  value: string;
}
/** diagnostic_msgs/msg/DiagnosticStatus. */
export interface RosDiagnosticStatus {
  level: number;
  name: string;
  message: string;
  hardware_id: string;
  values: RosKeyValue[];
}
/** diagnostic_msgs/msg/DiagnosticArray. */
export interface RosDiagnosticArray {
  header: RosHeader;
  status: RosDiagnosticStatus[];
}

/** The type names the node uses, as rclnodejs spells them. */
export const MESSAGE_TYPES = {
  image: 'sensor_msgs/msg/Image',
  compressedImage: 'sensor_msgs/msg/CompressedImage',
  jointState: 'sensor_msgs/msg/JointState',
  string: 'std_msgs/msg/String',
  float64: 'std_msgs/msg/Float64',
  float32MultiArray: 'std_msgs/msg/Float32MultiArray',
  float64MultiArray: 'std_msgs/msg/Float64MultiArray',
  jointTrajectory: 'trajectory_msgs/msg/JointTrajectory',
  diagnosticArray: 'diagnostic_msgs/msg/DiagnosticArray',
} as const;

/** diagnostic_msgs/DiagnosticStatus levels. */
export const DIAGNOSTIC_LEVEL = { ok: 0, warn: 1, error: 2, stale: 3 } as const;
export type DiagnosticLevel = (typeof DIAGNOSTIC_LEVEL)[keyof typeof DIAGNOSTIC_LEVEL];

/** Milliseconds since the epoch as a builtin_interfaces/Time. */
export function timeFromMs(ms: number): RosTime {
  const sec = Math.floor(ms / 1000);
  return { sec, nanosec: Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6)) };
}

/** A builtin_interfaces/Time in milliseconds. */
export function msFromTime(time: RosTime): number {
  return time.sec * 1000 + time.nanosec / 1e6;
}

/** A duration of `seconds` as builtin_interfaces/Duration (exact to the nanosecond). */
export function durationFromSeconds(seconds: number): RosTime {
  const ns = Math.round(seconds * 1e9);
  return { sec: Math.floor(ns / 1e9), nanosec: ns % 1e9 };
}

/** A sensor_msgs/Image as a frame for the pipeline (no copy of the pixels). */
export function frameFromImage(message: RosImage): RawFrame {
  return {
    kind: 'raw',
    width: message.width,
    height: message.height,
    encoding: message.encoding,
    step: message.step,
    isBigEndian: message.is_bigendian !== 0,
    data: message.data,
  };
}

/** A sensor_msgs/CompressedImage as a frame for the pipeline (no copy of the bytes). */
export function frameFromCompressed(message: RosCompressedImage): EncodedFrame {
  return { kind: 'encoded', format: message.format, data: message.data };
}

/**
 * One point per action of the chunk, stamped with the source frame's stamp. Action i is the
 * position target commanded at stamp + i × dt, to be reached one control period later, so point i
 * has `time_from_start` = (i + 1) × dt (as the simulator applies actions, and so that a trajectory
 * controller never receives a first point already due at the frame's capture time). `actions` is
 * horizon × dim, row-major.
 */
export function jointTrajectory(
  header: RosHeader,
  jointNames: readonly string[],
  actions: Float32Array,
  dim: number,
  dt: number,
): RosJointTrajectory {
  const horizon = Math.floor(actions.length / dim);
  const points: RosJointTrajectoryPoint[] = [];
  for (let i = 0; i < horizon; i++) {
    points.push({
      positions: Float64Array.from(actions.subarray(i * dim, (i + 1) * dim)),
      velocities: new Float64Array(0),
      accelerations: new Float64Array(0),
      effort: new Float64Array(0),
      time_from_start: durationFromSeconds((i + 1) * dt),
    });
  }
  return { header, joint_names: [...jointNames], points };
}

/** The chunk as a horizon × action_dim Float32MultiArray. */
export function chunkMultiArray(
  actions: Float32Array,
  horizon: number,
  dim: number,
): RosFloat32MultiArray {
  return {
    layout: {
      dim: [
        { label: 'horizon', size: horizon, stride: horizon * dim },
        { label: 'action_dim', size: dim, stride: dim },
      ],
      data_offset: 0,
    },
    data: actions.slice(0, horizon * dim),
  };
}

/** A std_msgs/Float64MultiArray: one value per dimension (the per-period command). */
export interface RosFloat64MultiArray {
  readonly layout: RosFloat32MultiArray['layout'];
  readonly data: Float64Array;
}

/**
 * One control period's command as forward_command_controller takes it: the action, one value
 * per joint (in `ros.joint_names` order), in a 1-D layout labelled `joints`.
 */
export function commandMultiArray(action: Float32Array): RosFloat64MultiArray {
  return {
    layout: {
      dim: [{ label: 'joints', size: action.length, stride: action.length }],
      data_offset: 0,
    },
    data: Float64Array.from(action),
  };
}

/** A packed rgb8 sensor_msgs/Image. */
export function rgbImage(
  header: RosHeader,
  width: number,
  height: number,
  rgb: Uint8Array,
): RosImage {
  return {
    header,
    height,
    width,
    encoding: 'rgb8',
    is_bigendian: 0,
    step: width * 3,
    data: rgb,
  };
}
