/*
 * What `tsc` sees as 'rclnodejs' when the optional dependency is not installed (tsconfig
 * `paths` falls back here). npm 10 runs rclnodejs's install script, which fails where ROS 2 is
 * absent, and then drops the package; the build must still succeed there, because vla-node runs
 * without ROS 2 (the simulator, the bridge, replay). Every name the project uses is `any`:
 * nothing loads rclnodejs at run time without ROS 2 (src/transports/ros/load.ts says how to
 * build it), and where rclnodejs is installed `tsc` checks against its real declarations.
 */
/* eslint-disable */
type Unknown = any;

export type Context = Unknown;
export type FloatingPointRange = Unknown;
export type IntegerRange = Unknown;
export type Logging = Unknown;
export type Node = Unknown;
export type NodeOptions = Unknown;
export type Options<T = Unknown> = Unknown;
export type Parameter = Unknown;
export type ParameterDescriptor = Unknown;
export type ParameterType = Unknown;
export type QoS = Unknown;
export type QoSPolicyKind = Unknown;
export type Range = Unknown;
export type SetParametersCallback = Unknown;
export type Subscription = Unknown;
export type Timer = Unknown;
export type TimerRequestCallback = Unknown;

export declare namespace QoS {
  type HistoryPolicy = Unknown;
  type ReliabilityPolicy = Unknown;
  type DurabilityPolicy = Unknown;
  type LivelinessPolicy = Unknown;
}
export declare namespace lifecycle {
  type LifecycleNode = Unknown;
  type TransitionCallback = Unknown;
  type CallbackReturnCode = Unknown;
  type State = Unknown;
  type SerializedState = Unknown;
  const LifecycleNode: Unknown;
}

export declare const init: Unknown;
export declare const shutdown: Unknown;
export declare const isShutdown: Unknown;
export declare const removeSignalHandlers: Unknown;
export declare const QoS: Unknown;
export declare const QoSOverridingOptions: Unknown;
export declare const QoSPolicyKind: Unknown;
export declare const Parameter: Unknown;
export declare const ParameterDescriptor: Unknown;
export declare const FloatingPointRange: Unknown;
export declare const IntegerRange: Unknown;
