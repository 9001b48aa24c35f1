/**
 * Validation problems in words: Ajv's errors turned into "Expected ... for <key> but received ..."
 * messages that name the dotted key, one per distinct message, in schema order.
 */
import type { ErrorObject } from 'ajv';
import { describe } from '../errors.js';
import { getSchema, resolveNode, type SchemaNode } from './schema.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One thing wrong with a parameter object, ranked by its key's position in the schema. */
export interface Problem {
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
function expectation(unresolved: SchemaNode | undefined): string {
  const node = resolveNode(unresolved);
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
export function collectProblems(errors: readonly ErrorObject[], root: unknown): Problem[] {
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
