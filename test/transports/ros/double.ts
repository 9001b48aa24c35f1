/**
 * An in-memory double of the part of rclnodejs the node uses, typed as {@link RosApi} so that it
 * cannot drift from the real API: same method names and signatures, QoS and timers recorded,
 * lifecycle transitions with rclnodejs's state ids and labels, parameters validated against their
 * descriptors, and messages delivered as the plain objects rclnodejs delivers.
 *
 * It follows rclnodejs 2.2's JavaScript (node_modules/rclnodejs/lib/*.js), not its declarations,
 * where they differ: a lifecycle State has only `id` and `label` (lib/lifecycle.js); a callback
 * that throws makes the transition go through error processing to unconfigured; QoS profiles are
 * names resolved to rmw's values (sensor data: best effort, depth 5) and QoS policies are
 * getters; `createPublisher`/`createSubscription` fill in and mutate the options object, and QoS
 * overriding declares read-only `qos_overrides.*` parameters and writes their values into the
 * QoS object it was given (lib/node.js, lib/qos_overriding_options.js); a parameter override
 * replaces the declared parameter with the type rcl parsed, and is then checked against the
 * descriptor; `setParameter` refuses undeclared and read-only names (lib/node.js,
 * lib/parameter.js). test/transports/ros/double.test.ts pins each of these.
 */
/* eslint-disable @typescript-eslint/no-unsafe-enum-assignment --
   a double stands in for rclnodejs's const enums, so its values never come from them */
import type * as rcl from 'rclnodejs';
import type {
  MessageClass,
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

/**
 * A double's object where rclnodejs's class is expected. Once rclnodejs has generated its message
 * declarations, its Parameter and ParameterDescriptor are typed precisely enough that the
 * double's (structurally equal at run time) are not assignable.
 */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names T
function asRcl<T>(value: unknown): T {
  return value as T;
}

const STATES = {
  unconfigured: { id: 1, label: 'unconfigured' },
  inactive: { id: 2, label: 'inactive' },
  active: { id: 3, label: 'active' },
  finalized: { id: 4, label: 'finalized' },
} as const;
type StateName = keyof typeof STATES;

/** rclnodejs's lifecycle State: `id` and `label` fields, nothing else (no `asMessage()`). */
class DoubleState implements RosState {
  readonly id: number;
  readonly label: string;
  constructor(name: StateName) {
    this.id = STATES[name].id;
    this.label = STATES[name].label;
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

/** rclnodejs's QoS: history, depth, reliability, durability, liveliness, as get/set properties. */
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
  constructor(
    public history: number = 0,
    public depth: number = 0,
    public reliability: number = 0,
    public durability: number = 0,
    public liveliness: number = 0,
    public avoidRosNameSpaceConventions = false,
  ) {}
}

/** lib/qos_overriding_options.js `_resolveQoS`: a profile name as rmw's profile values. */
function resolveQoS(qos: unknown): DoubleQoS {
  if (qos instanceof DoubleQoS) return qos;
  const keepLast = 1;
  const reliable = 1;
  const bestEffort = 2;
  const volatile = 2;
  switch (qos) {
    case DoubleQoS.profileSensorData:
      return new DoubleQoS(keepLast, 5, bestEffort, volatile);
    case DoubleQoS.profileSystemDefault:
      return new DoubleQoS(0, 0, 0, 0, 0);
    case DoubleQoS.profileParameters:
    case DoubleQoS.profileParameterEvents:
      return new DoubleQoS(keepLast, 1000, reliable, volatile);
    default:
      return new DoubleQoS(keepLast, 10, reliable, volatile);
  }
}

const POLICY_NAMES: Record<
  number,
  { prop: 'history' | 'depth' | 'reliability'; names?: string[] }
> = {
  1: { prop: 'history', names: ['system_default', 'keep_last', 'keep_all'] },
  2: { prop: 'depth' },
  3: { prop: 'reliability', names: ['system_default', 'reliable', 'best_effort'] },
};

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

const ELEMENT_CHECK: Record<number, (v: unknown) => boolean> = {
  6: (v) => typeof v === 'boolean',
  7: (v) => typeof v === 'bigint',
  8: (v) => typeof v === 'number',
  9: (v) => typeof v === 'string',
};

/** rclnodejs's Parameter: an integer value becomes a BigInt; `validate` checks value against type. */
class DoubleParameter {
  static fromParameterMessage(message: { name: string; value: unknown }): DoubleParameter {
    return new DoubleParameter(message.name, PARAMETER_TYPE.string, message.value);
  }
  #value: unknown;
  constructor(
    readonly name: string,
    readonly type: rcl.ParameterType,
    value?: unknown,
  ) {
    this.#value = (type as number) === 2 ? BigInt(value as number | bigint) : value;
    this.validate();
  }
  get value(): unknown {
    return this.#value;
  }
  set value(v: unknown) {
    this.#value = Array.isArray(v) && v.length === 0 ? null : v;
    this.validate();
  }
  validate(): void {
    const t = this.type as number;
    const v = this.#value;
    const element = ELEMENT_CHECK[t];
    const ok =
      (t === 1 && typeof v === 'boolean') ||
      (t === 2 && typeof v === 'bigint') ||
      (t === 3 && typeof v === 'number') ||
      (t === 4 && typeof v === 'string') ||
      (element !== undefined && Array.isArray(v) && v.every(element));
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
  inRange(value: unknown): boolean {
    if (Array.isArray(value)) return value.every((v) => this.inRange(v));
    const n = Number(value);
    return n >= this.fromValue && n <= this.toValue;
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
    this.validate();
  }
  hasRange(): boolean {
    return (this.rangeConstraint as rcl.Range | undefined) !== undefined;
  }
  validate(): void {
    if (this.hasRange() && !this.rangeConstraint.isValidType(this.type))
      throw new Error(`Incompatible Range for parameter type of ${this.name}`);
  }
  validateParameter(parameter: rcl.Parameter): void {
    parameter.validate();
    if (parameter.name !== this.name) throw new Error(`Name mismatch: ${this.name}`);
    if (parameter.type !== this.type)
      throw new TypeError(
        `Parameter ${parameter.name}: type ${parameter.type} is not ${this.type}`,
      );
    if (this.hasRange() && !this.rangeConstraint.inRange(parameter.value as number))
      throw new RangeError(
        `Parameter ${parameter.name}: ${String(parameter.value)} is out of range`,
      );
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
  /** The name the node was created with (before rcl's `__node` remap). */
  readonly requestedName: string;
  readonly #remappedName: string | undefined;
  readonly publishers: PublisherRecord[] = [];
  readonly subscriptions: SubscriptionRecord[] = [];
  readonly timers: TimerRecord[] = [];
  readonly logs: LogLine[] = [];
  readonly parameters = new Map<string, rcl.Parameter>();
  readonly descriptors = new Map<string, rcl.ParameterDescriptor>();
  /** Exceptions thrown by transition callbacks (rclnodejs logs them with console.log). */
  readonly errors: unknown[] = [];
  spinning = false;
  destroyed = false;
  #state: StateName = 'unconfigured';
  readonly #callbacks = new Map<Transition, rcl.lifecycle.TransitionCallback>();
  readonly #onSet: rcl.SetParametersCallback[] = [];
  readonly #overrides: ReadonlyMap<string, rcl.Parameter>;
  readonly #namespace: string;

  constructor(
    name: string,
    overrides: ReadonlyMap<string, rcl.Parameter>,
    remappedName?: string,
    remappedNamespace?: string,
  ) {
    this.requestedName = name;
    this.#remappedName = remappedName;
    this.#namespace = remappedNamespace ?? '/';
    this.#overrides = overrides;
    // lib/time_source.js: every node declares use_sim_time (a bool; `-p use_sim_time:=true`).
    this.declareParameter(asRcl(new DoubleParameter('use_sim_time', PARAMETER_TYPE.bool, false)));
  }

  /** lib/node.js `name()`: rcl_node_get_name, the name after a `--ros-args -r __node:=...` remap. */
  name(): string {
    return this.#remappedName ?? this.requestedName;
  }

  /** lib/node.js `namespace()`: rcl_node_get_namespace, `/` unless `-r __ns:=...` remaps it. */
  namespace(): string {
    return this.#namespace;
  }

  /** The ROS clock follows /clock (use_sim_time is true): timers then run on simulated time. */
  get usesSimTime(): boolean {
    return this.parameters.get('use_sim_time')?.value === true;
  }
  /** The last /clock time received (test helper: what a /clock publisher set), ns. */
  simTimeNs = 0n;
  /** lib/node.js `now()`: the node's ROS clock, /clock's time when use_sim_time is true. */
  now(): { readonly nanoseconds: bigint } {
    return { nanoseconds: this.usesSimTime ? this.simTimeNs : BigInt(Date.now()) * 1_000_000n };
  }

  createPublisher(typeClass: MessageClass, topic: string, options?: rcl.Options): RosPublisher {
    const resolved = this.#validateOptions(options, topic, 'publisher');
    const record: PublisherRecord = {
      type: typeClass as string,
      topic,
      options: resolved,
      messages: [],
      destroyed: false,
      publish(message: object): void {
        if (record.destroyed) throw new Error(`publisher ${topic} was destroyed`);
        record.messages.push(structuredClone(message));
      },
    };
    this.publishers.push(record);
    return record;
  }
  createSubscription(
    typeClass: MessageClass,
    topic: string,
    options: rcl.Options,
    callback: MessageCallback,
  ): RosSubscription {
    const record: SubscriptionRecord = {
      type: typeClass as string,
      topic,
      options: this.#validateOptions(options, topic, 'subscription'),
      callback,
      destroyed: false,
    };
    this.subscriptions.push(record);
    return record;
  }
  /**
   * lib/node.js `_validateOptions` and the QoS overriding of `_createPublisher` /
   * `createSubscription`: fills in the caller's options object, resolves a profile name to a QoS
   * object, declares the read-only `qos_overrides.<topic>.<entity>.<policy>` parameters and writes
   * their (possibly overridden) values into that QoS object, all in place.
   */
  #validateOptions(
    options: rcl.Options | undefined,
    topic: string,
    entity: 'publisher' | 'subscription',
  ): rcl.Options {
    if (options === undefined) return { enableTypedArray: true, qos: DoubleQoS.profileDefault };
    const o = options as Record<string, unknown>;
    o.enableTypedArray ??= true;
    o.qos ??= DoubleQoS.profileDefault;
    o.isRaw ??= false;
    const overriding = o.qosOverridingOptions as DoubleQoSOverridingOptions | undefined;
    if (overriding !== undefined) {
      const qos = resolveQoS(o.qos);
      o.qos = qos;
      const ns = this.namespace() === '/' ? '' : this.namespace();
      const resolved = topic.startsWith('~/') ? `${ns}/${this.name()}/${topic.slice(2)}` : topic;
      for (const kind of overriding.policyKinds as unknown as number[]) {
        const policy = POLICY_NAMES[kind];
        if (policy === undefined) continue;
        const name = `qos_overrides.${resolved}.${entity}.${policy.prop}`;
        const current = qos[policy.prop];
        const value =
          policy.names === undefined ? BigInt(current) : (policy.names[current] ?? String(current));
        const type = (policy.names === undefined ? 2 : 4) as unknown as rcl.ParameterType;
        let declared: rcl.Parameter;
        try {
          declared = this.declareParameter(
            asRcl(new DoubleParameter(name, type, value)),
            asRcl(
              new DoubleParameterDescriptor(name, type, `QoS override for ${policy.prop}`, true),
            ),
          );
        } catch (error) {
          if (!this.hasParameter(name)) throw error;
          declared = this.getParameter(name);
        }
        if (declared.value !== value) {
          qos[policy.prop] =
            policy.names === undefined
              ? Number(declared.value)
              : policy.names.indexOf(String(declared.value));
        }
      }
    }
    return options;
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
  /**
   * lib/node.js `declareParameters`: an override (unless ignored) replaces the parameter, typed as
   * rcl parsed it; the result is checked against the descriptor (and the on-set callbacks), and a
   * failure throws with rclnodejs's reason.
   */
  declareParameter(
    parameter: rcl.Parameter,
    descriptor?: rcl.ParameterDescriptor,
    ignoreOverride = false,
  ): rcl.Parameter {
    const override = this.#overrides.get(parameter.name);
    const declared = !ignoreOverride && override !== undefined ? override : parameter;
    if (this.parameters.has(declared.name))
      throw new Error(`Parameter(${declared.name}) already declared.`);
    const d =
      descriptor ??
      asRcl<rcl.ParameterDescriptor>(new DoubleParameterDescriptor(declared.name, declared.type));
    d.validate();
    this.descriptors.set(declared.name, d);
    const result = this.#setAtomically([declared], true);
    if (!result.successful) {
      this.descriptors.delete(declared.name);
      throw new Error(result.reason);
    }
    return declared;
  }
  getParameter(name: string): rcl.Parameter {
    const p = this.parameters.get(name);
    if (p === undefined) throw new Error(`Parameter ${name} not declared`);
    return p;
  }
  getParameterOverrides(): rcl.Parameter[] {
    return [...this.#overrides.values()];
  }
  hasParameter(name: string): boolean {
    return this.parameters.has(name);
  }
  addOnSetParametersCallback(callback: rcl.SetParametersCallback): void {
    this.#onSet.unshift(callback);
  }
  /** rclnodejs's `setParameter` (what `ros2 param set` reaches): refusals as rclnodejs words them. */
  setParameter(parameter: rcl.Parameter): { successful: boolean; reason: string } {
    return this.#setAtomically([parameter], false);
  }
  /** lib/node.js `_setParametersAtomically` with `_validateParameters`. */
  #setAtomically(
    parameters: rcl.Parameter[],
    declaring: boolean,
  ): { successful: boolean; reason: string } {
    for (const parameter of parameters) {
      try {
        parameter.validate();
      } catch {
        return { successful: false, reason: `Invalid ${parameter.name}` };
      }
      const descriptor = this.descriptors.get(parameter.name);
      if (descriptor === undefined)
        return { successful: false, reason: `Parameter ${parameter.name} has not been declared` };
      if (!declaring && descriptor.readOnly)
        return { successful: false, reason: `Parameter ${parameter.name} is readonly` };
      try {
        descriptor.validateParameter(parameter);
      } catch {
        return { successful: false, reason: `Parameter ${parameter.name} does not  readonly` };
      }
    }
    for (const cb of this.#onSet) {
      // typed by rclnodejs's generated rcl_interfaces declarations, when they exist
      const result = asRcl<{ successful: boolean; reason?: string | null }>(cb(parameters));
      if (!result.successful) return { successful: false, reason: result.reason ?? '' };
    }
    for (const parameter of parameters) this.parameters.set(parameter.name, parameter);
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
    if (this.destroyed) throw new Error('the node was destroyed (its state machine is gone)');
    if (!t.from.includes(this.#state))
      throw new Error(`No transition available from state ${name}`);
    const previous = this.#state;
    const cb = this.#callbacks.get(name);
    let code: number = 97;
    try {
      // rclnodejs passes its own State (id and label); the double's is the same.
      code = cb === undefined ? 97 : cb(new DoubleState(previous) as never);
    } catch (error) {
      // lib/lifecycle.js: logged, then ERROR; error processing (no onError callback) succeeds,
      // which ends in unconfigured.
      this.errors.push(error);
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
    // The real getter reads the native state machine: a crash once the node is destroyed.
    if (this.destroyed) throw new Error('getCurrentLifecycleState on a destroyed node');
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

/**
 * The rcl parameter a `-p name:=text` gives (rcl's YAML rules): `true`/`false` a bool, `1` an
 * integer, `1.0` a double, `[1, 2]` an integer array, `[1.0, 2]` is refused by rcl (mixed), so a
 * double array needs every item written as a double; anything else a string.
 */
export function rclOverride(name: string, text: string): rcl.Parameter {
  const scalar = (t: string): { type: number; value: unknown } => {
    const v = t.trim();
    if (v === 'true' || v === 'false') return { type: 1, value: v === 'true' };
    if (/^[-+]?\d+$/.test(v)) return { type: 2, value: BigInt(v) };
    if (/^[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)$/.test(v))
      return { type: 3, value: Number(v) };
    return { type: 4, value: v.replace(/^['"]|['"]$/g, '') };
  };
  const t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) {
    const items = t.slice(1, -1).trim() === '' ? [] : t.slice(1, -1).split(',').map(scalar);
    const type = items[0]?.type ?? 4;
    if (items.some((i) => i.type !== type))
      throw new Error(`rcl: Sequence should be of same type (${name}:=${text})`);
    return asRcl(
      new DoubleParameter(
        name,
        type + 5,
        items.map((i) => i.value),
      ),
    );
  }
  const { type, value } = scalar(t);
  return asRcl(new DoubleParameter(name, type, value));
}

/**
 * A RosApi double; `overrides` play the part of `--ros-args -p name:=text` (see
 * {@link rclOverride}). Like rclnodejs's index.js, it installs a SIGINT handler on `signals` that
 * shuts every context down (destroying the nodes) until `removeSignalHandlers` is called.
 */
export function createRosDouble(
  overrides: Readonly<Record<string, string>> = {},
  signals?: Pick<NodeJS.EventEmitter, 'on' | 'off'>,
): {
  readonly api: RosApi;
  readonly nodes: DoubleLifecycleNode[];
  /** Whether `removeSignalHandlers` was called (rclnodejs's own SIGINT handler is gone). */
  readonly signalHandlersRemoved: () => boolean;
} {
  const nodes: DoubleLifecycleNode[] = [];
  let shut = false;
  let removed = false;
  const parameterOverrides = new Map(
    Object.entries(overrides).map(([name, text]) => [name, rclOverride(name, text)]),
  );
  const shutdownAll = (): void => {
    for (const node of nodes) node.destroy();
    shut = true;
  };
  signals?.on('SIGINT', shutdownAll);
  // rcl applies a `-r __node:=name` or `-r __ns:=/ns` of the init arguments to every node of the
  // context.
  let nodeRemap: string | undefined;
  let namespaceRemap: string | undefined;
  class BoundNode extends DoubleLifecycleNode {
    constructor(nodeName: string) {
      super(nodeName, parameterOverrides, nodeRemap, namespaceRemap);
      nodes.push(this);
    }
  }
  const api: RosApi = {
    init: (_context?: unknown, argv?: string[]) => {
      const args = argv ?? [];
      for (let i = args.indexOf('--ros-args') + 1; i > 0 && i < args.length - 1; i++) {
        const remap = args[i] === '-r' || args[i] === '--remap';
        const m = /^__(node|ns):=(.+)$/.exec(args[i + 1] ?? '');
        if (remap && m?.[1] === 'node') nodeRemap = m[2];
        if (remap && m?.[1] === 'ns') namespaceRemap = m[2];
      }
      return Promise.resolve();
    },
    shutdown: () => {
      shut = true;
    },
    isShutdown: () => shut,
    removeSignalHandlers: () => {
      removed = true;
      signals?.off('SIGINT', shutdownAll);
    },
    lifecycle: { LifecycleNode: BoundNode },
    QoS: DoubleQoS as unknown as RosApi['QoS'],
    QoSOverridingOptions: DoubleQoSOverridingOptions,
    Parameter: asRcl<RosApi['Parameter']>(DoubleParameter),
    ParameterDescriptor: asRcl<RosApi['ParameterDescriptor']>(DoubleParameterDescriptor),
    FloatingPointRange: DoubleFloatingPointRange,
    IntegerRange: DoubleIntegerRange,
  };
  return { api, nodes, signalHandlersRemoved: () => removed };
}
