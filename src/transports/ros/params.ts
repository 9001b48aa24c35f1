/**
 * ROS 2 parameters declared from the schema: every key of the sections the node reads
 * (`definitions.executable_node` of `schema/vla_node.schema.json`: not `sim.*` nor `serve.*`)
 * becomes a parameter (dotted name, description, range), its default taken from the parameter
 * file, which stays the single source of defaults. A change at run time is validated against the schema and
 * rejected with the reason when invalid.
 */
import type * as rcl from 'rclnodejs';
import {
  applyOverrides,
  configKeys,
  describeParameter,
  validateConfig,
  type ParameterDescription,
  type VlaConfig,
} from '../../config/index.js';
import { ConfigError } from '../../errors.js';
import { PARAMETER_TYPE, type RosApi, type RosLifecycleNode } from './api.js';

/** The keys the node declares, in schema order. */
const NODE_KEYS = (): string[] => configKeys('node');

function parameterType(d: ParameterDescription): rcl.ParameterType {
  switch (d.type) {
    case 'boolean':
      return PARAMETER_TYPE.bool;
    case 'integer':
      return PARAMETER_TYPE.integer;
    case 'number':
      return PARAMETER_TYPE.double;
    case 'string':
      return PARAMETER_TYPE.string;
    case 'array':
      switch (d.items?.type) {
        case 'boolean':
          return PARAMETER_TYPE.boolArray;
        case 'integer':
          return PARAMETER_TYPE.integerArray;
        case 'string':
          return PARAMETER_TYPE.stringArray;
        default:
          return PARAMETER_TYPE.doubleArray;
      }
  }
}

/** A configuration value as rclnodejs wants it (integers as bigint). */
export function toRosValue(d: ParameterDescription, value: unknown): unknown {
  if (d.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (d.type === 'array' && d.items?.type === 'integer' && Array.isArray(value)) {
    return value.map((v: unknown) => (typeof v === 'number' ? BigInt(v) : v));
  }
  return value;
}

/** A parameter value from rclnodejs as the configuration holds it (bigint to number, arrays copied). */
export function fromRosValue(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return Array.from(value as ArrayLike<unknown>, (v) => (typeof v === 'bigint' ? Number(v) : v));
  }
  return value;
}

function constraints(d: ParameterDescription): string {
  const parts: string[] = [];
  if (d.enum !== undefined) parts.push(`one of ${d.enum.join(', ')}`);
  if (d.items?.enum !== undefined) parts.push(`items from ${d.items.enum.join(', ')}`);
  if (d.exclusiveMinimum !== undefined) parts.push(`> ${d.exclusiveMinimum}`);
  if (d.exclusiveMaximum !== undefined) parts.push(`< ${d.exclusiveMaximum}`);
  if (d.minimum !== undefined && d.maximum === undefined) parts.push(`>= ${d.minimum}`);
  if (d.maximum !== undefined && d.minimum === undefined) parts.push(`<= ${d.maximum}`);
  if (d.minItems !== undefined) parts.push(`at least ${d.minItems} items`);
  return parts.join('; ');
}

function descriptor(ros: RosApi, key: string, d: ParameterDescription): rcl.ParameterDescriptor {
  const type = parameterType(d);
  let range: rcl.FloatingPointRange | rcl.IntegerRange | undefined;
  if (d.minimum !== undefined && d.maximum !== undefined) {
    range =
      d.type === 'integer'
        ? new ros.IntegerRange(BigInt(d.minimum), BigInt(d.maximum), 1n)
        : d.type === 'number'
          ? new ros.FloatingPointRange(d.minimum, d.maximum, 0)
          : undefined;
  }
  const result = new ros.ParameterDescriptor(key, type, d.description, d.readOnly === true, range);
  const extra = constraints(d);
  if (extra !== '') result.additionalConstraints = extra;
  return result;
}

/** Get a nested value by dotted key. */
function valueAt(config: unknown, key: string): unknown {
  let value = config;
  for (const part of key.split('.')) {
    value =
      typeof value === 'object' && value !== null
        ? (value as Record<string, unknown>)[part]
        : undefined;
  }
  return value;
}

const RCL_TYPE_NAMES: Record<number, string> = {
  1: 'bool',
  2: 'integer',
  3: 'double',
  4: 'string',
  5: 'byte array',
  6: 'bool array',
  7: 'integer array',
  8: 'double array',
  9: 'string array',
};

/**
 * A parameter override as rcl parsed it (`-p key:=value`, `--params-file`) converted to the
 * schema's type of `key`: `-p runtime.control_rate_hz:=20` is an rcl integer for a double key,
 * `-p safety.action_min:=[-1,1]` an integer array for a double array. Integers become doubles
 * and whole doubles integers; any other mismatch is a ConfigError naming the key.
 */
export function overrideValue(
  d: ParameterDescription,
  key: string,
  override: rcl.Parameter,
): unknown {
  const type = override.type as number;
  const value = override.value as unknown;
  const isNumber = (v: unknown): v is number | bigint =>
    typeof v === 'number' || typeof v === 'bigint';
  const toInteger = (v: unknown): number | undefined =>
    isNumber(v) && Number.isInteger(Number(v)) ? Number(v) : undefined;
  const expected =
    d.type === 'array'
      ? `an array of ${d.items?.type ?? 'number'}`
      : `${d.type === 'integer' ? 'an' : 'a'} ${d.type}`;
  const mismatch = (): ConfigError =>
    new ConfigError(
      `Expected ${expected} for ${key} but received the ${RCL_TYPE_NAMES[type] ?? `type ${type}`} ${describeValue(value)}`,
      { field: key },
    );
  switch (d.type) {
    case 'boolean':
      if (typeof value !== 'boolean') throw mismatch();
      return value;
    case 'string':
      if (typeof value !== 'string') throw mismatch();
      return value;
    case 'number':
      if (!isNumber(value)) throw mismatch();
      return Number(value);
    case 'integer': {
      const n = toInteger(value);
      if (n === undefined) throw mismatch();
      return n;
    }
    case 'array': {
      if (!Array.isArray(value) && !ArrayBuffer.isView(value)) throw mismatch();
      const items = Array.from(value as ArrayLike<unknown>);
      const itemType = d.items?.type ?? 'number';
      return items.map((v) => {
        if (itemType === 'number' && isNumber(v)) return Number(v);
        if (itemType === 'integer' && toInteger(v) !== undefined) return toInteger(v);
        if (itemType === 'string' && typeof v === 'string') return v;
        if (itemType === 'boolean' && typeof v === 'boolean') return v;
        throw mismatch();
      });
    }
  }
}

function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value) || ArrayBuffer.isView(value))
    return `[${Array.from(value as ArrayLike<unknown>, describeValue).join(', ')}]`;
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/**
 * Declare the node's schema keys on `node`. Values: the validated parameter file (`defaults`), with
 * the overrides given to ROS (`--ros-args -p key:=value`, a `--params-file`) converted to the
 * schema's types and validated first. rclnodejs would otherwise replace the declared parameter
 * by the override with the type rcl parsed (`:=1` is an integer) and refuse it against the
 * descriptor, so the parameters are declared with `ignoreOverride`. A bad override throws a
 * ConfigError naming the key. Returns the configuration the node starts with, validated.
 */
export function declareParameters(
  ros: RosApi,
  node: RosLifecycleNode,
  defaults: VlaConfig,
): Readonly<VlaConfig> {
  const given = new Map(node.getParameterOverrides().map((p) => [p.name, p]));
  const overrides: Record<string, unknown> = {};
  for (const key of NODE_KEYS()) {
    const override = given.get(key);
    if (override !== undefined)
      overrides[key] = overrideValue(describeParameter(key), key, override);
  }
  const config = validateConfig(applyOverrides(defaults, overrides), 'ROS 2 parameters');
  for (const key of NODE_KEYS()) {
    const d = describeParameter(key);
    node.declareParameter(
      new ros.Parameter(key, parameterType(d), toRosValue(d, valueAt(config, key))),
      descriptor(ros, key, d),
      true,
    );
  }
  return config;
}

/** The outcome of a parameter change request. */
export interface ParameterChange {
  readonly successful: boolean;
  readonly reason: string;
  /** The configuration with the change applied, when it was accepted. */
  readonly config?: Readonly<VlaConfig>;
}

/**
 * Validate a change of `parameters` against the schema, starting from `current`; a value the
 * schema does not allow is rejected with the reason. Parameters that are not schema keys (ROS 2's
 * own, such as `use_sim_time` or `qos_overrides.*`) are left to ROS 2.
 */
export function validateChange(
  current: VlaConfig,
  parameters: readonly Pick<rcl.Parameter, 'name' | 'value'>[],
): ParameterChange {
  const keys = new Set(NODE_KEYS());
  const overrides: Record<string, unknown> = {};
  for (const p of parameters) {
    if (keys.has(p.name)) overrides[p.name] = fromRosValue(p.value);
  }
  if (Object.keys(overrides).length === 0) return { successful: true, reason: '' };
  try {
    const config = validateConfig(applyOverrides(current, overrides), 'parameter change');
    return { successful: true, reason: '', config };
  } catch (error) {
    if (error instanceof ConfigError) return { successful: false, reason: error.message };
    throw error;
  }
}
