/**
 * The part of rclnodejs the ROS 2 node uses, expressed with rclnodejs's own declarations so that
 * `tsc` fails when our usage diverges from the real API. The node is written against `RosApi`,
 * which the real module satisfies (checked below) and which the tests' in-memory double
 * implements; nothing else in vla-node touches rclnodejs.
 *
 * Two things are written to hold before and after rclnodejs's install step generates
 * `types/interfaces.d.ts` (which turns its message type names from `any` into a union of
 * literal strings): message types are passed as {@link MessageClass}, taken from rclnodejs's own
 * `createPublisher` signature, and no rclnodejs generic is instantiated with `string`
 * (test/transports/ros/types.test.ts compiles this folder against a generated declaration).
 * Where rclnodejs 2.2's declarations and its JavaScript disagree, the JavaScript wins: a
 * lifecycle `State` has `id` and `label` fields and no `asMessage()`.
 */
import type * as rcl from 'rclnodejs';

/** The rclnodejs module as its declarations describe it. */
export type Rclnodejs = typeof import('rclnodejs');

/** A message type as rclnodejs's `createPublisher` takes it (a name such as `std_msgs/msg/String`). */
export type MessageClass = Parameters<rcl.Node['createPublisher']>[0];

/** A message type name as {@link MessageClass}: valid with and without generated interfaces. */
export function messageClass(name: string): MessageClass {
  return name as MessageClass;
}

/** A publisher: publish a message object (rclnodejs also accepts a serialized Buffer). */
export interface RosPublisher {
  readonly topic: string;
  publish(message: object): void;
}
/** A subscription handle. */
export type RosSubscription = Pick<rcl.Subscription, 'topic'>;
/** A wall timer handle. */
export type RosTimer = Pick<rcl.Timer, 'cancel' | 'isCanceled'>;
/**
 * A lifecycle state as rclnodejs 2.2's JavaScript returns it (lib/lifecycle.js: `id` and
 * `label`). Its declarations promise `asMessage()` instead, which does not exist at run time.
 */
export interface RosState {
  readonly id: number;
  readonly label: string;
}
/** The logger of a node. */
export type RosLogger = Pick<rcl.Logging, 'debug' | 'info' | 'warn' | 'error'>;

/** Parameters of a subscription callback: the message, as rclnodejs delivers it. */
export type MessageCallback = (message: never) => void;

/**
 * The lifecycle node surface the ROS 2 node uses: a subset of `rclnodejs.lifecycle.LifecycleNode`
 * (the assignment check at the end of this file keeps it one).
 */
export interface RosLifecycleNode extends RosLifecycleNodeDeclared {
  configure(): RosState;
  activate(): RosState;
  deactivate(): RosState;
  cleanup(): RosState;
  shutdown(): RosState;
  readonly currentState: RosState;
}

/** The calls of {@link RosLifecycleNode} whose declarations match rclnodejs's JavaScript. */
export interface RosLifecycleNodeDeclared {
  createPublisher(typeClass: MessageClass, topic: string, options?: rcl.Options): RosPublisher;
  createSubscription(
    typeClass: MessageClass,
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
  /** The `-p` / `--params-file` values for this node, typed as rcl parsed them. */
  getParameterOverrides(): rcl.Parameter[];
  hasParameter(name: string): boolean;
  addOnSetParametersCallback(callback: rcl.SetParametersCallback): void;
  getLogger(): RosLogger;
  /** The node's name as rcl has it: after a `-r __node:=...` remap (launch's node_name). */
  name(): string;
  /** The node's namespace as rcl has it: `/` or after a `-r __ns:=...` remap (launch's namespace). */
  namespace(): string;
  /** The node's ROS time (simulated time from /clock when use_sim_time is true). */
  now(): { readonly nanoseconds: bigint };
  spin(timeout?: number): void;
  destroy(): void;
  registerOnConfigure(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnActivate(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnDeactivate(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnCleanup(cb: rcl.lifecycle.TransitionCallback): void;
  registerOnShutdown(cb: rcl.lifecycle.TransitionCallback): void;
}

/** The rclnodejs module surface the node uses. */
export interface RosApi {
  init: Rclnodejs['init'];
  shutdown: Rclnodejs['shutdown'];
  isShutdown: Rclnodejs['isShutdown'];
  /** Remove rclnodejs's own SIGINT handler (which shuts every context down, destroying the node). */
  removeSignalHandlers: Rclnodejs['removeSignalHandlers'];
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

/**
 * The real module used as a RosApi. Everything but the lifecycle state's shape is checked against
 * rclnodejs's declarations here; the state follows its JavaScript (see {@link RosState}).
 */
export function asRosApi(module: Rclnodejs): RosApi {
  const checked: Omit<RosApi, 'lifecycle'> = module;
  return checked as RosApi;
}

// Keep RosLifecycleNode a subset of rclnodejs's LifecycleNode (apart from the state's shape).
export type LifecycleNodeConforms = rcl.lifecycle.LifecycleNode extends RosLifecycleNodeDeclared
  ? true
  : never;
export const lifecycleNodeConforms: LifecycleNodeConforms = true;
