/**
 * An in-memory double of the part of rclnodejs the node uses, typed as {@link RosApi} so that it
 * cannot drift from the real API: same method names and signatures, QoS and timers recorded,
 * lifecycle transitions with rclnodejs's state ids and labels, parameters validated against their
 * descriptors, and messages delivered as the plain objects rclnodejs delivers.
 */
import type * as rcl from 'rclnodejs';
import type {
  MessageCallback,
  RosApi,
  RosLifecycleNode,
  RosLogger,
  RosPublisher,
  RosState,
  RosSubscription,
  RosTimer,
} from '../../../src/transports/ros/api.js';
import { PARAMETER_TYPE } from '../../../src/transports/ros/api.js';

const STATES = {
  unconfigured: { id: 1, label: 'unconfigured' },
  inactive: { id: 2, label: 'inactive' },
  active: { id: 3, label: 'active' },
  finalized: { id: 4, label: 'finalized' },
} as const;
type StateName = keyof typeof STATES;

class DoubleState implements RosState {
  constructor(readonly name: StateName) {}
  asMessage(): rcl.lifecycle.SerializedState {
    return { ...STATES[this.name] };
  }
}

const HistoryPolicy = {
  RMW_QOS_POLICY_HISTORY_SYSTEM_DEFAULT: 0,
  RMW_QOS_POLICY_HISTORY_KEEP_LAST: 1,
  RMW_QOS_POLICY_HISTORY_KEEP_ALL: 2,
} as unknown as typeof rcl.QoS.HistoryPolicy;
const ReliabilityPolicy = {
  RMW_QOS_POLICY_RELIABILITY_SYSTEM_DEFAULT: 0,
  RMW_QOS_POLICY_RELIABILITY_RELIABLE: 1,
  RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT: 2,
} as unknown as typeof rcl.QoS.ReliabilityPolicy;
const DurabilityPolicy = {
  RMW_QOS_POLICY_DURABILITY_SYSTEM_DEFAULT: 0,
  RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL: 1,
  RMW_QOS_POLICY_DURABILITY_VOLATILE: 2,
} as unknown as typeof rcl.QoS.DurabilityPolicy;
const LivelinessPolicy = {
  RMW_QOS_POLICY_LIVELINESS_SYSTEM_DEFAULT: 0,
  RMW_QOS_POLICY_LIVELINESS_AUTOMATIC: 1,
  RMW_QOS_POLICY_LIVELINESS_MANUAL_BY_TOPIC: 3,
  RMW_QOS_POLICY_LIVELINESS_UNKNOWN: 4,
  RMW_QOS_POLICY_LIVELINESS_BEST_AVAILABLE: 5,
} as unknown as typeof rcl.QoS.LivelinessPolicy;

/** rclnodejs's QoS: history, depth, reliability, durability, liveliness. */
class DoubleQoS {
  static readonly profileDefault = 'qos_profile_default';
  static readonly profileSystemDefault = 'qos_profile_system_default';
  static readonly profileSensorData = 'qos_profile_sensor_data';
  static readonly profileServicesDefault = 'qos_profile_services_default';
  static readonly profileParameters = 'qos_profile_parameters';
  static readonly profileParameterEvents = 'qos_profile_parameter_events';
  static readonly profileActionStatusDefault = 'qos_profile_action_status_default';
  static readonly HistoryPolicy = HistoryPolicy;
  static readonly ReliabilityPolicy = ReliabilityPolicy;
  static readonly DurabilityPolicy = DurabilityPolicy;
  static readonly LivelinessPolicy = LivelinessPolicy;
  readonly #reliability: rcl.QoS.ReliabilityPolicy;
  constructor(
    public history: number = 0,
    public depth: number = 0,
    reliability: rcl.QoS.ReliabilityPolicy = ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_SYSTEM_DEFAULT,
    public durability: rcl.QoS.DurabilityPolicy = DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_SYSTEM_DEFAULT,
    public liveliness: rcl.QoS.LivelinessPolicy = LivelinessPolicy.RMW_QOS_POLICY_LIVELINESS_SYSTEM_DEFAULT,
    public avoidRosNameSpaceConventions = false,
  ) {
    this.#reliability = reliability;
  }
  reliability(): rcl.QoS.ReliabilityPolicy {
    return this.#reliability;
  }
}

const QoSPolicyKind = {
  HISTORY: 1,
  DEPTH: 2,
  RELIABILITY: 3,
  DURABILITY: 4,
  LIVELINESS: 5,
  AVOID_ROS_NAMESPACE_CONVENTIONS: 6,
} as unknown as typeof rcl.QoSPolicyKind;

/** rclnodejs's QoSOverridingOptions: which QoS policies may be overridden by parameters. */
class DoubleQoSOverridingOptions {
  static withDefaultPolicies(opts?: {
    callback?: (qos: rcl.QoS) => { successful: boolean; reason?: string };
    entityId?: string;
  }): DoubleQoSOverridingOptions {
    // history, depth, reliability: rclnodejs's (and rclcpp's) default policies
    return new DoubleQoSOverridingOptions(
      [QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY],
      opts,
    );
  }
  readonly callback: ((qos: rcl.QoS) => { successful: boolean; reason?: string }) | null;
  readonly entityId: string | null;
  constructor(
    readonly policyKinds: rcl.QoSPolicyKind[],
    opts?: {
      callback?: (qos: rcl.QoS) => { successful: boolean; reason?: string };
      entityId?: string;
    },
  ) {
    this.callback = opts?.callback ?? null;
    this.entityId = opts?.entityId ?? null;
  }
}

class DoubleParameter {
  static fromParameterMessage(message: { name: string; value: unknown }): DoubleParameter {
    return new DoubleParameter(message.name, PARAMETER_TYPE.string, message.value);
  }
  value: unknown;
  constructor(
    readonly name: string,
    readonly type: rcl.ParameterType,
    value?: unknown,
  ) {
    this.value = value;
  }
  validate(): void {
    const t = this.type as number;
    const v = this.value;
    const ok =
      (t === 1 && typeof v === 'boolean') ||
      (t === 2 && typeof v === 'bigint') ||
      (t === 3 && typeof v === 'number') ||
      (t === 4 && typeof v === 'string') ||
      (t >= 6 && Array.isArray(v));
    if (!ok)
      throw new TypeError(`Parameter ${this.name}: value ${String(v)} does not match type ${t}`);
  }
  toParameterMessage(): { name: string; value: unknown } {
    return { name: this.name, value: this.value };
  }
  toParameterValueMessage(): unknown {
    return this.value;
  }
}

abstract class DoubleRange {
  constructor(
    readonly fromValue: number,
    readonly toValue: number,
    readonly step: number = 0,
  ) {}
  inRange(value: number): boolean {
    return value >= this.fromValue && value <= this.toValue;
  }
  abstract isValidType(parameterType: rcl.ParameterType): boolean;
}
class DoubleFloatingPointRange extends DoubleRange {
  constructor(
    from: number,
    to: number,
    step?: number,
    readonly tolerance = 1e-6,
  ) {
    super(from, to, step);
  }
  isValidType(parameterType: rcl.ParameterType): boolean {
    return (parameterType as number) === 3 || (parameterType as number) === 8;
  }
}
class DoubleIntegerRange extends DoubleRange {
  constructor(from: bigint, to: bigint, step: bigint = 1n) {
    super(Number(from), Number(to), Number(step));
  }
  isValidType(parameterType: rcl.ParameterType): boolean {
    return (parameterType as number) === 2 || (parameterType as number) === 7;
  }
}

class DoubleParameterDescriptor {
  static fromParameter(parameter: rcl.Parameter): DoubleParameterDescriptor {
    return new DoubleParameterDescriptor(parameter.name, parameter.type);
  }
  additionalConstraints = '';
  rangeConstraint: rcl.Range;
  constructor(
    readonly name: string,
    readonly type: rcl.ParameterType,
    readonly description = '',
    readonly readOnly = false,
    range?: rcl.Range,
  ) {
    this.rangeConstraint = range as rcl.Range;
  }
  hasRange(): boolean {
    return (this.rangeConstraint as rcl.Range | undefined) !== undefined;
  }
  validate(): void {}
  validateParameter(parameter: rcl.Parameter): void {
    if (parameter.type !== this.type)
      throw new TypeError(
        `Parameter ${parameter.name}: type ${parameter.type} is not ${this.type}`,
      );
    if (this.hasRange()) {
      const values: unknown[] = Array.isArray(parameter.value)
        ? parameter.value
        : [parameter.value];
      for (const v of values) {
        if (!this.rangeConstraint.inRange(Number(v)))
          throw new RangeError(`Parameter ${parameter.name}: ${String(v)} is out of range`);
      }
    }
  }
  toMessage(): object {
    return { name: this.name, type: this.type, description: this.description };
  }
}

/** What a publisher published, with its QoS. */
export interface PublisherRecord extends RosPublisher {
  readonly type: string;
  readonly options: rcl.Options | undefined;
  readonly messages: unknown[];
  destroyed: boolean;
}
export interface SubscriptionRecord extends RosSubscription {
  readonly type: string;
  readonly options: rcl.Options;
  readonly callback: MessageCallback;
  destroyed: boolean;
}
export interface TimerRecord extends RosTimer {
  readonly period: bigint;
  readonly callback: rcl.TimerRequestCallback;
}
export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly text: string;
}

type Transition = 'configure' | 'activate' | 'deactivate' | 'cleanup' | 'shutdown';
const TRANSITIONS: Record<
  Transition,
  { from: readonly StateName[]; to: StateName; primary: StateName }
> = {
  configure: { from: ['unconfigured'], to: 'inactive', primary: 'inactive' },
  activate: { from: ['inactive'], to: 'active', primary: 'active' },
  deactivate: { from: ['active'], to: 'inactive', primary: 'inactive' },
  cleanup: { from: ['inactive'], to: 'unconfigured', primary: 'unconfigured' },
  shutdown: {
    from: ['unconfigured', 'inactive', 'active'],
    to: 'finalized',
    primary: 'finalized',
  },
};

/** A lifecycle node double. */
export class DoubleLifecycleNode implements RosLifecycleNode {
  readonly name: string;
  readonly publishers: PublisherRecord[] = [];
  readonly subscriptions: SubscriptionRecord[] = [];
  readonly timers: TimerRecord[] = [];
  readonly logs: LogLine[] = [];
  readonly parameters = new Map<string, rcl.Parameter>();
  readonly descriptors = new Map<string, rcl.ParameterDescriptor>();
  spinning = false;
  destroyed = false;
  #state: StateName = 'unconfigured';
  readonly #callbacks = new Map<Transition, rcl.lifecycle.TransitionCallback>();
  readonly #onSet: rcl.SetParametersCallback[] = [];
  readonly #overrides: ReadonlyMap<string, unknown>;

  constructor(name: string, overrides: ReadonlyMap<string, unknown>) {
    this.name = name;
    this.#overrides = overrides;
  }

  createPublisher(typeClass: string, topic: string, options?: rcl.Options): RosPublisher {
    const record: PublisherRecord = {
      type: typeClass,
      topic,
      options,
      messages: [],
      destroyed: false,
      publish(message: unknown): void {
        if (record.destroyed) throw new Error(`publisher ${topic} was destroyed`);
        record.messages.push(structuredClone(message));
      },
    };
    this.publishers.push(record);
    return record;
  }
  createSubscription(
    typeClass: string,
    topic: string,
    options: rcl.Options,
    callback: MessageCallback,
  ): RosSubscription {
    const record: SubscriptionRecord = {
      type: typeClass,
      topic,
      options,
      callback,
      destroyed: false,
    };
    this.subscriptions.push(record);
    return record;
  }
  createTimer(period: bigint, callback: rcl.TimerRequestCallback): RosTimer {
    let canceled = false;
    const record: TimerRecord = {
      period,
      callback,
      cancel: () => {
        canceled = true;
      },
      isCanceled: () => canceled,
    };
    this.timers.push(record);
    return record;
  }
  destroyPublisher(publisher: RosPublisher): void {
    (publisher as PublisherRecord).destroyed = true;
  }
  destroySubscription(subscription: RosSubscription): void {
    (subscription as SubscriptionRecord).destroyed = true;
  }
  destroyTimer(timer: RosTimer): void {
    timer.cancel();
  }
  declareParameter(
    parameter: rcl.Parameter,
    descriptor?: rcl.ParameterDescriptor,
    ignoreOverride = false,
  ): rcl.Parameter {
    if (this.parameters.has(parameter.name))
      throw new Error(`Parameter ${parameter.name} already declared`);
    if (!ignoreOverride && this.#overrides.has(parameter.name))
      parameter.value = this.#overrides.get(parameter.name);
    parameter.validate();
    descriptor?.validateParameter(parameter);
    this.parameters.set(parameter.name, parameter);
    if (descriptor !== undefined) this.descriptors.set(parameter.name, descriptor);
    return parameter;
  }
  getParameter(name: string): rcl.Parameter {
    const p = this.parameters.get(name);
    if (p === undefined) throw new Error(`Parameter ${name} not declared`);
    return p;
  }
  hasParameter(name: string): boolean {
    return this.parameters.has(name);
  }
  addOnSetParametersCallback(callback: rcl.SetParametersCallback): void {
    this.#onSet.unshift(callback);
  }
  /** rclnodejs's `setParameter`: descriptor checks, then the on-set callbacks may veto. */
  setParameter(parameter: rcl.Parameter): { successful: boolean; reason: string } {
    const descriptor = this.descriptors.get(parameter.name);
    try {
      parameter.validate();
      descriptor?.validateParameter(parameter);
    } catch (error) {
      return { successful: false, reason: error instanceof Error ? error.message : String(error) };
    }
    for (const cb of this.#onSet) {
      const result = cb([parameter]) as { successful: boolean; reason: string };
      if (!result.successful) return result;
    }
    this.parameters.set(parameter.name, parameter);
    return { successful: true, reason: '' };
  }
  getLogger(): RosLogger {
    const log =
      (level: LogLine['level']) =>
      (text: string): boolean => {
        this.logs.push({ level, text });
        return true;
      };
    return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  }
  spin(): void {
    this.spinning = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  registerOnConfigure(cb: rcl.lifecycle.TransitionCallback): void {
    this.#callbacks.set('configure', cb);
  }
  registerOnActivate(cb: rcl.lifecycle.TransitionCallback): void {
    this.#callbacks.set('activate', cb);
  }
  registerOnDeactivate(cb: rcl.lifecycle.TransitionCallback): void {
    this.#callbacks.set('deactivate', cb);
  }
  registerOnCleanup(cb: rcl.lifecycle.TransitionCallback): void {
    this.#callbacks.set('cleanup', cb);
  }
  registerOnShutdown(cb: rcl.lifecycle.TransitionCallback): void {
    this.#callbacks.set('shutdown', cb);
  }
  #transition(name: Transition): RosState {
    const t = TRANSITIONS[name];
    if (!t.from.includes(this.#state))
      throw new Error(`No transition available from state ${name}`);
    const previous = this.#state;
    const cb = this.#callbacks.get(name);
    let code: number = 97;
    try {
      // rclnodejs passes its own State; the double's has the same public surface (asMessage).
      // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
      code = cb === undefined ? 97 : cb(new DoubleState(previous));
    } catch {
      code = 99;
    }
    this.#state = code === 97 ? t.to : code === 98 ? previous : 'unconfigured';
    return new DoubleState(this.#state);
  }
  configure(): RosState {
    return this.#transition('configure');
  }
  activate(): RosState {
    return this.#transition('activate');
  }
  deactivate(): RosState {
    return this.#transition('deactivate');
  }
  cleanup(): RosState {
    return this.#transition('cleanup');
  }
  shutdown(): RosState {
    return this.#transition('shutdown');
  }
  get currentState(): RosState {
    return new DoubleState(this.#state);
  }

  // --- test helpers --------------------------------------------------------------------------

  /** The live publisher of `topic`. */
  publisher(topic: string): PublisherRecord {
    const p = [...this.publishers].reverse().find((r) => r.topic === topic && !r.destroyed);
    if (p === undefined) throw new Error(`no publisher on ${topic}`);
    return p;
  }
  /** Deliver `message` to the live subscriptions of `topic`, as the executor would. */
  deliver(topic: string, message: unknown): void {
    const subs = this.subscriptions.filter((s) => s.topic === topic && !s.destroyed);
    if (subs.length === 0) throw new Error(`no subscription on ${topic}`);
    for (const s of subs) (s.callback as (m: unknown) => void)(message);
  }
  /** Run the callbacks of the live timers whose period is `period` ns. */
  fire(period: bigint): void {
    for (const t of this.timers.filter((x) => x.period === period && !x.isCanceled())) t.callback();
  }
}

/** A RosApi double; `overrides` play the part of `--ros-args -p name:=value`. */
export function createRosDouble(overrides: Readonly<Record<string, unknown>> = {}): {
  readonly api: RosApi;
  readonly nodes: DoubleLifecycleNode[];
} {
  const nodes: DoubleLifecycleNode[] = [];
  let shut = false;
  const parameterOverrides = new Map(Object.entries(overrides));
  class BoundNode extends DoubleLifecycleNode {
    constructor(nodeName: string) {
      super(nodeName, parameterOverrides);
      nodes.push(this);
    }
  }
  const api: RosApi = {
    init: () => Promise.resolve(),
    shutdown: () => {
      shut = true;
    },
    isShutdown: () => shut,
    lifecycle: { LifecycleNode: BoundNode },
    QoS: DoubleQoS,
    QoSOverridingOptions: DoubleQoSOverridingOptions,
    Parameter: DoubleParameter,
    ParameterDescriptor: DoubleParameterDescriptor,
    FloatingPointRange: DoubleFloatingPointRange,
    IntegerRange: DoubleIntegerRange,
  };
  return { api, nodes };
}
