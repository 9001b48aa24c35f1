/**
 * ROS 2 parameters declared from the schema: every key of `schema/vla_node.schema.json` becomes a
 * parameter (dotted name, description, range), its default taken from the parameter file, which
 * stays the single source of defaults. A change at run time is validated against the schema and
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
  const result = new ros.ParameterDescriptor(key, type, d.description, false, range);
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

/**
 * Declare every schema key on `node`, with `defaults` (the validated parameter file) as the
 * values; values given to ROS (`--ros-args -p key:=value`, a `--params-file`) override them.
 * Returns the configuration the node starts with, validated.
 */
export function declareParameters(
  ros: RosApi,
  node: RosLifecycleNode,
  defaults: VlaConfig,
): Readonly<VlaConfig> {
  const overrides: Record<string, unknown> = {};
  for (const key of configKeys()) {
    const d = describeParameter(key);
    const value = toRosValue(d, valueAt(defaults, key));
    const declared = node.declareParameter(
      new ros.Parameter(key, parameterType(d), value),
      descriptor(ros, key, d),
    );
    overrides[key] = fromRosValue(declared.value);
  }
  return validateConfig(applyOverrides(defaults, overrides), 'ROS 2 parameters');
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
  const keys = new Set(configKeys());
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
