/**
 * The node's configuration. `config/vla_node.param.yaml` (a ROS 2 parameter file) is the single
 * source of defaults and `schema/vla_node.schema.json` the single description of every key: type,
 * meaning, range and allowed values; the TypeScript types are generated from the schema
 * (`./generated.ts`). Nothing here repeats a default or an enumeration; `loadConfig` reads the file, applies
 * dotted overrides and validates the result against the schema, so a missing, unknown or
 * out-of-range key fails at start-up with a message that names it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigError, describe } from '../errors.js';
import type { Executable, VlaConfig } from './generated.js';
import { collectProblems } from './problems.js';
import { crossKeyProblems } from './rules.js';
import { getSchema, getValidator, schemaError } from './schema.js';

// Both src/config/ and dist/config/ are two levels below the package root.
/** Root folder of the vla-node package. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The shipped parameter file: the defaults of every key. */
export const DEFAULT_PARAM_FILE = fileURLToPath(
  new URL('../../config/vla_node.param.yaml', import.meta.url),
);
/** The ROS 2 node name whose section of a parameter file is read (besides the `/**` wildcard). */
export const NODE_NAME = 'vla_node';

export * from './generated.js';
export { SCHEMA_FILE } from './schema.js';

const PARAMETER_TYPES: readonly string[] = ['string', 'number', 'integer', 'boolean', 'array'];

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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The dotted leaf keys of the schema, in schema order (`model.path`, `model.precision`, ...): of
 * every section, or of the sections `executable` reads (`definitions.executable_<name>`; the
 * ROS 2 node declares the keys of `node` only).
 */
export function configKeys(executable?: Executable): string[] {
  const { leaves, sections } = getSchema();
  const keys = [...leaves.keys()];
  if (executable === undefined) return keys;
  const own = sections.get(executable) ?? [];
  return keys.filter((key) => own.includes(key.split('.')[0] ?? ''));
}

/** The sections of the parameter file that `executable` reads, in schema order. */
export function configSections(executable: Executable): readonly string[] {
  return getSchema().sections.get(executable) ?? [];
}

let shippedDefaults: Readonly<VlaConfig> | undefined;

/**
 * The shipped parameter file (`DEFAULT_PARAM_FILE`), validated: every default, read from the one
 * place defaults are written. Read synchronously once, for code that needs a default without a
 * loaded configuration (library options left out by the caller).
 */
export function defaultConfig(): Readonly<VlaConfig> {
  if (shippedDefaults !== undefined) return shippedDefaults;
  let document: unknown;
  try {
    document = parseYaml(readFileSync(DEFAULT_PARAM_FILE, 'utf8'));
  } catch (error) {
    throw new ConfigError(
      `Expected a readable YAML parameter file for file but received ${describe(DEFAULT_PARAM_FILE)} (${firstLine(error)})`,
      { field: 'file', cause: error },
    );
  }
  shippedDefaults = validateConfig(
    extractParameters(document, DEFAULT_PARAM_FILE, NODE_NAME),
    DEFAULT_PARAM_FILE,
  );
  return shippedDefaults;
}

function valueAt(config: unknown, key: string): unknown {
  let value = config;
  for (const part of key.split('.')) value = isRecord(value) ? value[part] : undefined;
  return value;
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
 * The description of the parameter with dotted key `key`: type, description, range or allowed
 * values from the schema, and the default from the shipped parameter file. Throws ConfigError for a key the schema does not have.
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
    default: structuredClone(valueAt(defaultConfig(), key)) as ParameterValue,
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
