/**
 * The node's configuration. `config/vla_node.param.yaml` (a ROS 2 parameter file) is the single
 * source of defaults and `schema/vla_node.schema.json` the single description of every key: type,
 * default, meaning and range. Nothing here repeats a default; `loadConfig` reads the file, applies
 * dotted overrides and validates the result against the schema, so a missing, unknown or
 * out-of-range key fails at start-up with a message that names it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigError, describe } from '../errors.js';
import { crossKeyProblems } from './rules.js';

// Both src/config/ and dist/config/ are two levels below the package root.
/** Root folder of the vla-node package. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The shipped parameter file: the defaults of every key. */
export const DEFAULT_PARAM_FILE = fileURLToPath(
  new URL('../../config/vla_node.param.yaml', import.meta.url),
);
/** The JSON Schema of the parameter file. */
export const SCHEMA_FILE = fileURLToPath(
  new URL('../../schema/vla_node.schema.json', import.meta.url),
);
/** The ROS 2 node name whose section of a parameter file is read (besides the `/**` wildcard). */
export const NODE_NAME = 'vla_node';

// The enumerations below mirror the schema's `enum`s (a test checks that they agree). To add a
// value, add it here and to the schema.

/** Variants of a model package. */
export const MODEL_PRECISIONS = ['fp32', 'fp16', 'int8', 'auto'] as const;
export type ModelPrecision = (typeof MODEL_PRECISIONS)[number];

/** ONNX Runtime execution providers the node knows how to configure. */
export const EXECUTION_PROVIDERS = ['tensorrt', 'cuda', 'cpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** ONNX Runtime graph optimization levels. */
export const GRAPH_OPTIMIZATION_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type GraphOptimizationLevel = (typeof GRAPH_OPTIMIZATION_LEVELS)[number];

/** Visual-token pruning strategies. */
export const PRUNING_STRATEGIES = [
  'none',
  'random',
  'pool',
  'saliency',
  'diversity',
  'temporal',
] as const;
export type PruningStrategy = (typeof PRUNING_STRATEGIES)[number];

/** What the robot is sent when no chunk covers a control step (`safety.safe_action`). */
export const SAFE_ACTIONS = ['hold', 'zero', 'safe_pose'] as const;
export type SafeActionChoice = (typeof SAFE_ACTIONS)[number];

/** `model.*`: the model package to run. */
export interface ModelConfig {
  readonly path: string;
  readonly precision: ModelPrecision;
}

/** `backend.*`: ONNX Runtime session options. */
export interface BackendConfig {
  readonly execution_providers: readonly ExecutionProvider[];
  readonly intra_op_threads: number;
  readonly inter_op_threads: number;
  readonly graph_optimization: GraphOptimizationLevel;
  readonly warmup_runs: number;
  readonly tensorrt_cache_path: string;
  readonly telemetry: boolean;
}

/** `ingest.*`: limits on every frame and observation before decoding. */
export interface IngestConfig {
  readonly max_pixels: number;
  readonly max_encoded_bytes: number;
  readonly max_state_deviation: number;
}

/** `pruning.*`: visual-token pruning. */
export interface PruningConfig {
  readonly strategy: PruningStrategy;
  readonly keep_ratio: number;
  readonly keep_count: number;
  readonly seed: number;
  readonly min_keep_ratio: number;
}

/** `runtime.*`: control loop timing. */
export interface RuntimeConfig {
  readonly control_rate_hz: number;
  readonly execute_steps: number;
  readonly max_frame_age_ms: number;
  readonly merge_mode: 'sync' | 'replace' | 'ensemble' | 'rtc';
  readonly ensemble_decay: number;
  readonly rtc_decay_steps: number;
  readonly margin_steps: number;
  readonly latency_budget_ms: number;
}

/** `safety.*`: limits applied to every published action. */
export interface SafetyConfig {
  readonly action_min: readonly number[];
  readonly action_max: readonly number[];
  /** 0 = derived from the manifest (see the schema). */
  readonly max_delta_per_step: number;
  readonly safe_action: SafeActionChoice;
  readonly safe_pose: readonly number[];
  readonly allow_limits_beyond_model: boolean;
}

/** `sim.*`: the built-in tabletop simulator. */
export interface SimConfig {
  readonly episodes: number;
  readonly seed: number;
  readonly camera_width: number;
  readonly camera_height: number;
  readonly max_steps: number;
  readonly inject_delay_ms: number;
  readonly inject_jitter_ms: number;
  readonly camera_stall_probability: number;
  readonly camera_stall_steps: number;
}

/** `ros.*`: the ROS 2 node's topics, QoS, lifecycle and diagnostics. */
export interface RosConfig {
  readonly cameras: readonly string[];
  readonly model_camera: string;
  readonly image_transport: 'raw' | 'compressed';
  readonly joint_names: readonly string[];
  readonly auto_activate: boolean;
  readonly publish_pruned_image: boolean;
  readonly qos: { readonly image: 'sensor_data' | 'reliable'; readonly action_depth: number };
  readonly diagnostics: {
    readonly period_ms: number;
    readonly processing_time_warn_ms: number;
    readonly error_consecutive_misses: number;
    readonly hardware_id: string;
  };
}

/** `serve.*`: the ZeroMQ bridge's batching and CURVE client allow-list. */
export interface ServeConfig {
  readonly max_batch: number;
  readonly max_wait_ms: number;
  readonly decode_concurrency: number;
  readonly curve_client_keys_file: string;
}

/** `foxglove.*`: the Foxglove live view (docs/foxglove.md). */
export interface FoxgloveConfig {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
  readonly max_client_buffer_bytes: number;
  readonly pace_sim: boolean;
}

/** The validated `ros__parameters` of vla_node; mirrors `schema/vla_node.schema.json`. */
export interface VlaConfig {
  readonly model: ModelConfig;
  readonly backend: BackendConfig;
  readonly ingest: IngestConfig;
  readonly pruning: PruningConfig;
  readonly runtime: RuntimeConfig;
  readonly safety: SafetyConfig;
  readonly sim: SimConfig;
  readonly ros: RosConfig;
  readonly serve: ServeConfig;
  readonly foxglove: FoxgloveConfig;
}

export interface LoadConfigOptions {
  /** Parameter file to read; `DEFAULT_PARAM_FILE` when absent. */
  readonly file?: string;
  /** Values that replace the file's, by dotted key: `{ 'pruning.keep_ratio': 0.5 }`. */
  readonly overrides?: Readonly<Record<string, unknown>>;
  /** Node name whose section is read besides `/**`; `NODE_NAME` when absent. */
  readonly node?: string;
}

/** The JSON type of a parameter. */
export type ParameterType = 'string' | 'number' | 'integer' | 'boolean' | 'array';
/** A parameter value as it appears in the parameter file. */
export type ParameterValue = string | number | boolean | readonly string[] | readonly number[];

/** A parameter as the schema describes it (used to declare ROS 2 parameters). */
export interface ParameterDescription {
  readonly type: ParameterType;
  readonly description: string;
  readonly default: ParameterValue;
  /** Inclusive bounds of a number or integer. */
  readonly minimum?: number;
  readonly maximum?: number;
  /** Exclusive bounds of a number (e.g. `pruning.keep_ratio` > 0). */
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  /** Allowed values of a string. */
  readonly enum?: readonly string[];
  /** Element type of an array, with the allowed values where they are restricted. */
  readonly items?: {
    readonly type: Exclude<ParameterType, 'array'>;
    readonly enum?: readonly string[];
  };
  readonly minItems?: number;
  readonly uniqueItems?: boolean;
  /** Fixed when the node starts: a ROS 2 read-only parameter (`readOnly` in the schema). */
  readonly readOnly?: boolean;
}

/** The subset of JSON Schema the parameter schema uses. */
interface SchemaNode {
  readonly type?: string;
  readonly description?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean;
  readonly items?: SchemaNode;
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly uniqueItems?: boolean;
  readonly readOnly?: boolean;
}

interface LoadedSchema {
  readonly root: object;
  /** `definitions.vla_node`: the schema of `ros__parameters`. */
  readonly node: SchemaNode;
  /** Dotted leaf keys in schema order, with their schema. */
  readonly leaves: ReadonlyMap<string, SchemaNode>;
  /** Every dotted path (sections and leaves) in schema order, for sorting problems. */
  readonly order: readonly string[];
}

const SCHEMA_ID = 'vla_node.schema.json';
const PARAMETER_TYPES: readonly string[] = ['string', 'number', 'integer', 'boolean', 'array'];

let loadedSchema: LoadedSchema | undefined;
let compiledValidator: ValidateFunction | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function schemaError(what: string, received: string, cause?: unknown): ConfigError {
  return new ConfigError(`Expected ${what} for schema but received ${received} (${SCHEMA_FILE})`, {
    field: 'schema',
    cause,
  });
}

function getSchema(): LoadedSchema {
  if (loadedSchema !== undefined) return loadedSchema;
  let root: unknown;
  try {
    root = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
  } catch (error) {
    throw schemaError('a readable JSON Schema file', String(error), error);
  }
  const definitions = isRecord(root) ? root['definitions'] : undefined;
  const node = isRecord(definitions) ? definitions['vla_node'] : undefined;
  if (!isRecord(root) || !isRecord(node) || !isRecord(node['properties'])) {
    throw schemaError('definitions.vla_node with properties', describe(node));
  }
  const leaves = new Map<string, SchemaNode>();
  const order: string[] = [];
  const walk = (schema: SchemaNode, prefix: string): void => {
    for (const [key, child] of Object.entries(schema.properties ?? {})) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      order.push(path);
      if (child.type === 'object') walk(child, path);
      else leaves.set(path, child);
    }
  };
  const nodeSchema = node as SchemaNode;
  walk(nodeSchema, '');
  loadedSchema = { root, node: nodeSchema, leaves, order };
  return loadedSchema;
}

function getValidator(): ValidateFunction {
  if (compiledValidator !== undefined) return compiledValidator;
  const { root } = getSchema();
  try {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    ajv.addSchema(root, SCHEMA_ID);
    compiledValidator = ajv.getSchema(`${SCHEMA_ID}#/definitions/vla_node`);
  } catch (error) {
    throw schemaError('a valid JSON Schema', String(error), error);
  }
  if (compiledValidator === undefined) {
    throw schemaError('a compilable definitions.vla_node', 'nothing');
  }
  return compiledValidator;
}

/** The dotted leaf keys of the schema, in schema order (`model.path`, `model.precision`, ...). */
export function configKeys(): string[] {
  return [...getSchema().leaves.keys()];
}

function unknownKeyError(key: string, what: string): ConfigError {
  const keys = configKeys();
  const section = key.split('.')[0] ?? '';
  const inSection = keys.filter((k) => k.startsWith(`${section}.`));
  const sections = [...new Set(keys.map((k) => k.split('.')[0] ?? ''))];
  const expected =
    inSection.length > 0
      ? `one of ${inSection.join(', ')}`
      : `a key in one of the sections ${sections.join(', ')}`;
  return new ConfigError(`Expected ${expected} for ${what} but received ${describe(key)}`, {
    field: key,
  });
}

function asStrings(values: readonly unknown[] | undefined): readonly string[] | undefined {
  return values?.map((v) => String(v));
}

/**
 * The schema's description of the parameter with dotted key `key`: type, description, default
 * and range or allowed values. Throws ConfigError for a key the schema does not have.
 */
export function describeParameter(key: string): ParameterDescription {
  const node = getSchema().leaves.get(key);
  if (node === undefined) throw unknownKeyError(key, 'parameter');
  const { type, description } = node;
  if (type === undefined || !PARAMETER_TYPES.includes(type) || description === undefined) {
    throw schemaError(`a type and a description of ${key}`, describe(type));
  }
  const enumValues = asStrings(node.enum);
  const itemType = node.items?.type;
  const itemEnum = asStrings(node.items?.enum);
  return deepFreeze({
    type: type as ParameterType,
    description,
    default: structuredClone(node.default) as ParameterValue,
    ...(node.minimum === undefined ? {} : { minimum: node.minimum }),
    ...(node.maximum === undefined ? {} : { maximum: node.maximum }),
    ...(node.exclusiveMinimum === undefined ? {} : { exclusiveMinimum: node.exclusiveMinimum }),
    ...(node.exclusiveMaximum === undefined ? {} : { exclusiveMaximum: node.exclusiveMaximum }),
    ...(enumValues === undefined ? {} : { enum: enumValues }),
    ...(itemType === undefined
      ? {}
      : {
          items: {
            type: itemType as Exclude<ParameterType, 'array'>,
            ...(itemEnum === undefined ? {} : { enum: itemEnum }),
          },
        }),
    ...(node.minItems === undefined ? {} : { minItems: node.minItems }),
    ...(node.uniqueItems === undefined ? {} : { uniqueItems: node.uniqueItems }),
    ...(node.readOnly === true ? { readOnly: true } : {}),
  });
}

/**
 * Parse a command-line override `key=value` (or ROS style `key:=value`) into `[key, value]`. The
 * value is read as a YAML scalar or flow collection: `a.b=0.5` gives 0.5, `x=[cuda, cpu]` an array,
 * `y=true` a boolean, `z=text` a string and `z=` the empty string.
 */
export function parseOverride(text: string): [string, unknown] {
  const eq = text.indexOf('=');
  if (eq < 0) {
    throw new ConfigError(`Expected key=value for override but received ${describe(text)}`, {
      field: 'override',
    });
  }
  let key = text.slice(0, eq).trim();
  if (key.endsWith(':')) key = key.slice(0, -1).trimEnd();
  if (key === '') {
    throw new ConfigError(`Expected a key before "=" for override but received ${describe(text)}`, {
      field: 'override',
    });
  }
  const valueText = text.slice(eq + 1).trim();
  if (valueText === '') return [key, ''];
  try {
    return [key, parseYaml(valueText) as unknown];
  } catch (error) {
    throw new ConfigError(
      `Expected a YAML value for ${key} but received ${describe(valueText)} (${firstLine(error)})`,
      { field: key, cause: error },
    );
  }
}

/**
 * A copy of `params` (a `ros__parameters` object) with `overrides` applied by dotted key. Only the
 * schema's leaf keys can be overridden; any other key is a ConfigError that names it. The result
 * is not validated: pass it to `validateConfig`.
 */
export function applyOverrides(
  params: unknown,
  overrides: Readonly<Record<string, unknown>>,
): unknown {
  const leaves = getSchema().leaves;
  const result: unknown = structuredClone(params);
  for (const [key, value] of Object.entries(overrides)) {
    if (!leaves.has(key)) throw unknownKeyError(key, 'override');
    if (!isRecord(result)) continue; // validation reports the malformed parameters
    const segments = key.split('.');
    const last = segments.pop() ?? key;
    let target: Record<string, unknown> | undefined = result;
    for (const segment of segments) {
      if (target[segment] === undefined) target[segment] = {};
      const next: unknown = target[segment];
      target = isRecord(next) ? next : undefined;
      if (target === undefined) break; // a section of the wrong type: validation reports it
    }
    if (target !== undefined) target[last] = structuredClone(value);
  }
  return result;
}

/**
 * Validate a `ros__parameters` object against the schema, then the rules between keys (limits
 * and ratios ordered; see `crossKeyProblems`), and return it deep-frozen. `source` names where
 * the parameters came from in the error message. The rules that need the model are
 * `checkConfigForModel`'s.
 */
export function validateConfig(params: unknown, source = 'parameters'): Readonly<VlaConfig> {
  const validate = getValidator();
  const problems = validate(params)
    ? crossKeyProblems(params as VlaConfig)
    : collectProblems(validate.errors ?? [], params);
  if (problems.length === 0) return deepFreeze(params as VlaConfig);
  const first = problems[0];
  const list =
    problems.length === 1
      ? (first?.message ?? '')
      : `${problems.length} problems:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`;
  throw new ConfigError(`Invalid configuration in ${source}: ${list}`, {
    ...(first === undefined ? {} : { field: first.field }),
  });
}

/**
 * Read a ROS 2 parameter file (the shipped defaults unless `file` is given), take the
 * `ros__parameters` of `/**` and of the node (`vla_node`, `/vla_node`, `/ns/vla_node`; the node's
 * values win), apply `overrides` and validate. Throws ConfigError naming the first bad key.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<Readonly<VlaConfig>> {
  const file = options.file ?? DEFAULT_PARAM_FILE;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `Expected a readable parameter file for file but received ${describe(file)} (${firstLine(error)})`,
      { field: 'file', cause: error },
    );
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      `Expected valid YAML for file but received ${describe(file)} (${firstLine(error)})`,
      { field: 'file', cause: error },
    );
  }
  let params = extractParameters(document, file, options.node ?? NODE_NAME);
  if (options.overrides !== undefined) params = applyOverrides(params, options.overrides);
  const overridden =
    options.overrides !== undefined && Object.keys(options.overrides).length > 0
      ? ' with overrides'
      : '';
  return validateConfig(params, `${file}${overridden}`);
}

/**
 * Where a package-relative path such as `model.path` points: an absolute path as is; a relative
 * one against `cwd` when it exists there, else against the package root when it exists there,
 * else against `cwd` (so that errors name the path the user meant).
 */
export function resolvePackagePath(path: string, cwd: string = process.cwd()): string {
  if (isAbsolute(path)) return path;
  const fromCwd = resolve(cwd, path);
  if (existsSync(fromCwd)) return fromCwd;
  const fromPackage = resolve(PACKAGE_ROOT, path);
  return existsSync(fromPackage) ? fromPackage : fromCwd;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function extractParameters(document: unknown, file: string, node: string): unknown {
  const expected = `a ROS 2 parameter file with "/**" or "${node}" ros__parameters for file`;
  if (!isRecord(document)) {
    throw new ConfigError(
      `Expected ${expected} but received ${describe(document)} in ${describe(file)}`,
      { field: 'file' },
    );
  }
  const keys = Object.keys(document);
  const matching = [
    ...keys.filter((k) => k === '/**'),
    ...keys.filter((k) => k === node || k.endsWith(`/${node}`)),
  ];
  if (matching.length === 0) {
    const found = keys.length === 0 ? 'no keys' : `the keys ${keys.join(', ')}`;
    throw new ConfigError(`Expected ${expected} but received ${found} in ${describe(file)}`, {
      field: 'file',
    });
  }
  let merged: unknown = undefined;
  for (const key of matching) {
    const section = document[key];
    const params = isRecord(section) ? section['ros__parameters'] : undefined;
    if (!isRecord(params)) {
      throw new ConfigError(
        `Expected a ros__parameters mapping under ${key} for file but received ${describe(params)} in ${describe(file)}`,
        { field: 'file' },
      );
    }
    merged = merged === undefined ? params : deepMerge(merged, params);
  }
  return merged;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isRecord(base) || !isRecord(over)) return over;
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    result[key] = key in result ? deepMerge(result[key], value) : value;
  }
  return result;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

interface Problem {
  readonly field: string;
  readonly message: string;
  readonly rank: number;
}

/** Dotted path of a JSON pointer into `root`: array elements as `[i]`, object keys as `.key`. */
function dottedPath(pointer: string, root: unknown): string {
  if (pointer === '') return '';
  let path = '';
  let value = root;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(value)) {
      path += `[${segment}]`;
      value = value[Number(segment)] as unknown;
    } else {
      path += path === '' ? segment : `.${segment}`;
      value = isRecord(value) ? value[segment] : undefined;
    }
  }
  return path;
}

function join(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

function formatValues(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

function formatRange(node: SchemaNode): string {
  const low =
    node.exclusiveMinimum !== undefined
      ? { bound: node.exclusiveMinimum, open: true }
      : node.minimum !== undefined
        ? { bound: node.minimum, open: false }
        : undefined;
  const high =
    node.exclusiveMaximum !== undefined
      ? { bound: node.exclusiveMaximum, open: true }
      : node.maximum !== undefined
        ? { bound: node.maximum, open: false }
        : undefined;
  if (low !== undefined && high !== undefined) {
    return ` in ${low.open ? '(' : '['}${low.bound}, ${high.bound}${high.open ? ')' : ']'}`;
  }
  if (low !== undefined) return ` ${low.open ? '>' : '>='} ${low.bound}`;
  if (high !== undefined) return ` ${high.open ? '<' : '<='} ${high.bound}`;
  return '';
}

/** What a schema node accepts, in words: `integer in [0, 256]`, `one of "fp32", "fp16"`. */
function expectation(node: SchemaNode | undefined): string {
  if (node === undefined) return 'a value';
  if (node.enum !== undefined) return `one of ${formatValues(node.enum)}`;
  const type = node.type ?? 'value';
  if (type === 'array') {
    const count = (n: number): string => `${n} item${n === 1 ? '' : 's'}`;
    const constraints = [
      ...(node.minItems === undefined ? [] : [`at least ${count(node.minItems)}`]),
      ...(node.maxItems === undefined ? [] : [`at most ${count(node.maxItems)}`]),
      ...(node.uniqueItems === true ? ['no duplicates'] : []),
    ];
    const itemEnum = node.items?.enum;
    const itemType = node.items?.type;
    const items =
      itemEnum !== undefined
        ? ` of values from ${formatValues(itemEnum)}`
        : itemType !== undefined
          ? ` of ${itemType}s${formatRange(node.items ?? {})}`
          : '';
    return `array${items}${constraints.length > 0 ? ` (${constraints.join(', ')})` : ''}`;
  }
  if (type === 'object') {
    return `object with the keys ${Object.keys(node.properties ?? {}).join(', ')}`;
  }
  return `${type}${formatRange(node)}`;
}

function problemOf(error: ErrorObject, root: unknown): { field: string; message: string } {
  const path = dottedPath(error.instancePath, root);
  const parent = error.parentSchema as SchemaNode | undefined;
  const data: unknown = error.data;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const missing = String(params['missingProperty']);
      const field = join(path, missing);
      const message = `Expected ${expectation(parent?.properties?.[missing])} for ${field} but received nothing (the key is missing)`;
      return { field, message };
    }
    case 'additionalProperties': {
      const extra = String(params['additionalProperty']);
      const field = join(path, extra);
      const known = Object.keys(parent?.properties ?? {}).join(', ');
      const value = isRecord(data) ? data[extra] : undefined;
      const where = path === '' ? 'the top level' : path;
      const message = `Expected one of the keys ${known} in ${where} but received the unknown key ${field} = ${describe(value)}`;
      return { field, message };
    }
    case 'uniqueItems': {
      const i = Number(params['i']);
      const duplicate: unknown = Array.isArray(data) ? data[i] : undefined;
      const message = `Expected ${expectation(parent)} for ${path} but received ${describe(data)} with ${JSON.stringify(duplicate)} more than once`;
      return { field: path, message };
    }
    case 'type':
    case 'enum':
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'minItems':
    case 'maxItems':
      return {
        field: path,
        message: `Expected ${expectation(parent)} for ${path} but received ${describe(data)}`,
      };
    default:
      return {
        field: path,
        message: `Expected a value that ${error.message ?? `satisfies ${error.keyword}`} for ${path} but received ${describe(data)}`,
      };
  }
}

/** One problem per distinct message, sorted by the position of its key in the schema. */
function collectProblems(errors: readonly ErrorObject[], root: unknown): Problem[] {
  const { order } = getSchema();
  const rank = (field: string): number => {
    const bare = field.replace(/\[\d+\]/g, '');
    for (let key = bare; key !== ''; key = key.slice(0, Math.max(0, key.lastIndexOf('.')))) {
      const index = order.indexOf(key);
      if (index >= 0) return key === bare ? index : index + 0.5;
    }
    return -1;
  };
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of errors) {
    const { field, message } = problemOf(error, root);
    if (seen.has(message)) continue;
    seen.add(message);
    problems.push({ field, message, rank: rank(field) });
  }
  return problems.sort((a, b) => a.rank - b.rank);
}
