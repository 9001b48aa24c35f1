/**
 * The part of rclnodejs the ROS 2 node uses, expressed with rclnodejs's own declarations so that
 * `tsc` fails when our usage diverges from the real API. The node is written against `RosApi`,
 * which the real module satisfies (checked below) and which the tests' in-memory double
 * implements; nothing else in vla-node touches rclnodejs.
 */
import type * as rcl from 'rclnodejs';

/** The rclnodejs module as its declarations describe it. */
export type Rclnodejs = typeof import('rclnodejs');

/** A publisher: publish a message object (rclnodejs also accepts a serialized Buffer). */
export type RosPublisher = Pick<rcl.Publisher<string>, 'topic' | 'publish'>;
/** A subscription handle. */
export type RosSubscription = Pick<rcl.Subscription, 'topic'>;
/** A wall timer handle. */
export type RosTimer = Pick<rcl.Timer, 'cancel' | 'isCanceled'>;
/** A lifecycle state as rclnodejs returns it (`asMessage()` gives id and label). */
export type RosState = Pick<rcl.lifecycle.State, 'asMessage'>;
/** The logger of a node. */
export type RosLogger = Pick<rcl.Logging, 'debug' | 'info' | 'warn' | 'error'>;

/** Parameters of a subscription callback: the message, as rclnodejs delivers it. */
export type MessageCallback = (message: never) => void;

/**
 * The lifecycle node surface the ROS 2 node uses: a subset of `rclnodejs.lifecycle.LifecycleNode`
 * (the assignment check at the end of this file keeps it one).
 */
export interface RosLifecycleNode {
  createPublisher(typeClass: string, topic: string, options?: rcl.Options): RosPublisher;
  createSubscription(
    typeClass: string,
    topic: string,
    options: rcl.Options,
    callback: MessageCallback,
  ): RosSubscription;
  createTimer(period: bigint, callback: rcl.TimerRequestCallback): RosTimer;
  destroyPublisher(publisher: RosPublisher): void;
  destroySubscription(subscription: RosSubscription): void;
  destroyTimer(timer: RosTimer): void;
  declareParameter(
    parameter: rcl.Parameter,
    descriptor?: rcl.ParameterDescriptor,
    ignoreOveride?: boolean,
  ): rcl.Parameter;
  getParameter(name: string): rcl.Parameter;
  hasParameter(name: string): boolean;
  addOnSetParametersCallback(callback: rcl.SetParametersCallback): void;
  getLogger(): RosLogger;
  spin(timeout?: number): void;
  destroy(): void;
  registerOnConfigure(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnActivate(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnDeactivate(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnCleanup(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnShutdown(cb: rcl.lifecycle.TransitionCallback): void;
  configure(): RosState;
  activate(): RosState;
  deactivate(): RosState;
  cleanup(): RosState;
  shutdown(): RosState;
  readonly currentState: RosState;
}

/** The rclnodejs module surface the node uses. */
export interface RosApi {
  init: Rclnodejs['init'];
  shutdown: Rclnodejs['shutdown'];
  isShutdown: Rclnodejs['isShutdown'];
  readonly lifecycle: {
    readonly LifecycleNode: new (
      nodeName: string,
      namespace?: string,
      context?: rcl.Context,
      options?: rcl.NodeOptions,
      enableCommunicationInterface?: boolean,
    ) => RosLifecycleNode;
  };
  QoS: Rclnodejs['QoS'];
  QoSOverridingOptions: Rclnodejs['QoSOverridingOptions'];
  Parameter: Rclnodejs['Parameter'];
  ParameterDescriptor: Rclnodejs['ParameterDescriptor'];
  FloatingPointRange: Rclnodejs['FloatingPointRange'];
  IntegerRange: Rclnodejs['IntegerRange'];
}

/** rclnodejs's `ParameterType` values (a const enum in its declarations, so spelled out here). */
export const PARAMETER_TYPE = {
  bool: 1 as unknown as rcl.ParameterType,
  integer: 2 as unknown as rcl.ParameterType,
  double: 3 as unknown as rcl.ParameterType,
  string: 4 as unknown as rcl.ParameterType,
  boolArray: 6 as unknown as rcl.ParameterType,
  integerArray: 7 as unknown as rcl.ParameterType,
  doubleArray: 8 as unknown as rcl.ParameterType,
  stringArray: 9 as unknown as rcl.ParameterType,
} as const;

/** rclnodejs's lifecycle `CallbackReturnCode` values (a const enum in its declarations). */
export const CALLBACK_RETURN = {
  success: 97 as unknown as rcl.lifecycle.CallbackReturnCode,
  failure: 98 as unknown as rcl.lifecycle.CallbackReturnCode,
  error: 99 as unknown as rcl.lifecycle.CallbackReturnCode,
} as const;

/** The real module used as a RosApi: this line fails to compile if rclnodejs's API drifts. */
export function asRosApi(module: Rclnodejs): RosApi {
  return module;
}

// Keep RosLifecycleNode a subset of rclnodejs's LifecycleNode.
export type LifecycleNodeConforms = rcl.lifecycle.LifecycleNode extends RosLifecycleNode
  ? true
  : never;
export const lifecycleNodeConforms: LifecycleNodeConforms = true;
