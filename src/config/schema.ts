/**
 * The parameter schema (`schema/vla_node.schema.json`) as the rest of config reads it: loaded
 * once, its `$ref`s to the shared section and enumeration definitions resolved, its leaves listed
 * by dotted key, and compiled by Ajv for validation.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { ConfigError, describe } from '../errors.js';
import type { Executable } from './generated.js';

/** The JSON Schema of the parameter file. */
export const SCHEMA_FILE = fileURLToPath(
  new URL('../../schema/vla_node.schema.json', import.meta.url),
);

/** The subset of JSON Schema the parameter schema uses. */
export interface SchemaNode {
  readonly $ref?: string;
  readonly type?: string;
  readonly description?: string;
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

/** The schema with its references resolved. */
export interface LoadedSchema {
  readonly root: object;
  /** Dotted leaf keys of `definitions.vla_node` in schema order, with their resolved schema. */
  readonly leaves: ReadonlyMap<string, SchemaNode>;
  /** Every dotted path (sections and leaves) in schema order, for sorting problems. */
  readonly order: readonly string[];
  /** The sections each executable reads (`definitions.executable_<name>`). */
  readonly sections: ReadonlyMap<Executable, readonly string[]>;
}

const SCHEMA_ID = 'vla_node.schema.json';
const DEFINITIONS = '#/definitions/';

let loadedSchema: LoadedSchema | undefined;
let compiledValidator: ValidateFunction | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A ConfigError about the schema file itself (a broken installation, not a user's mistake). */
export function schemaError(what: string, received: string, cause?: unknown): ConfigError {
  return new ConfigError(`Expected ${what} for schema but received ${received} (${SCHEMA_FILE})`, {
    field: 'schema',
    cause,
  });
}

/**
 * `node` with a `$ref` to a definition replaced by the definition, the keywords written beside
 * the reference (a leaf's own description) winning; array items resolved the same way.
 */
export function resolveNode(
  node: SchemaNode | undefined,
  definitions: Readonly<Record<string, SchemaNode>> = definitionsOf(getSchema().root),
): SchemaNode | undefined {
  if (node === undefined) return undefined;
  let resolved = node;
  if (node.$ref !== undefined) {
    const target = node.$ref.startsWith(DEFINITIONS)
      ? definitions[node.$ref.slice(DEFINITIONS.length)]
      : undefined;
    if (target === undefined) throw schemaError(`a definition for ${node.$ref}`, 'nothing');
    const { $ref: _ref, ...beside } = node;
    resolved = { ...target, ...beside };
  }
  if (resolved.items?.$ref !== undefined) {
    resolved = { ...resolved, items: resolveNode(resolved.items, definitions) ?? {} };
  }
  return resolved;
}

function definitionsOf(root: object): Readonly<Record<string, SchemaNode>> {
  const definitions = (root as Record<string, unknown>)['definitions'];
  return isRecord(definitions) ? (definitions as Record<string, SchemaNode>) : {};
}

/** The schema, read and indexed on first use. */
export function getSchema(): LoadedSchema {
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
  const defs = definitionsOf(root);
  const leaves = new Map<string, SchemaNode>();
  const order: string[] = [];
  const walk = (schema: SchemaNode, prefix: string): void => {
    for (const [key, raw] of Object.entries(schema.properties ?? {})) {
      const child = resolveNode(raw, defs) ?? raw;
      const path = prefix === '' ? key : `${prefix}.${key}`;
      order.push(path);
      if (child.type === 'object') walk(child, path);
      else leaves.set(path, child);
    }
  };
  walk(node, '');
  const sections = new Map<Executable, readonly string[]>();
  for (const [name, definition] of Object.entries(defs)) {
    if (!name.startsWith('executable_')) continue;
    sections.set(
      name.slice('executable_'.length) as Executable,
      Object.keys(definition.properties ?? {}),
    );
  }
  loadedSchema = { root, leaves, order, sections };
  return loadedSchema;
}

/** The Ajv validator of `definitions.vla_node` (a whole `ros__parameters` object). */
export function getValidator(): ValidateFunction {
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
