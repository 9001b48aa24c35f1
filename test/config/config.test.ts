import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  DEFAULT_PARAM_FILE,
  EXECUTABLES,
  SCHEMA_FILE,
  configKeys,
  configSections,
  describeParameter,
  loadConfig,
  parseOverride,
  validateConfig,
} from '../../src/config/index.js';

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asRecord(value: unknown, what: string): Json {
  if (!isRecord(value)) throw new Error(`${what} is not an object`);
  return value;
}

const yamlDoc = asRecord(parse(readFileSync(DEFAULT_PARAM_FILE, 'utf8')), 'param file');
const yamlParams = asRecord(asRecord(yamlDoc['/**'], '/**')['ros__parameters'], 'ros__parameters');
const schema = asRecord(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')), 'schema');
const nodeSchema = asRecord(asRecord(schema['definitions'], 'definitions')['vla_node'], 'vla_node');

const definitions = asRecord(schema['definitions'], 'definitions');

/** A `$ref` to a definition replaced by it, the keywords beside the reference winning. */
function resolveRef(node: Json): Json {
  const ref = node['$ref'];
  if (typeof ref !== 'string') return node;
  const { $ref: _ref, ...beside } = node;
  return { ...asRecord(definitions[ref.replace('#/definitions/', '')], ref), ...beside };
}

function leafPaths(value: Json, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, child]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return isRecord(child) ? leafPaths(child, path) : [path];
  });
}

/** Leaf schemas by dotted path; checks every object level on the way. */
function schemaLeaves(node: Json, prefix = ''): Map<string, Json> {
  const leaves = new Map<string, Json>();
  const properties = asRecord(node['properties'], `${prefix} properties`);
  expect(node['additionalProperties'], `additionalProperties of ${prefix || 'root'}`).toBe(false);
  expect(node['required'], `required of ${prefix || 'root'}`).toEqual(Object.keys(properties));
  expect(typeof node['description'], `description of ${prefix || 'root'}`).toBe('string');
  for (const [key, child] of Object.entries(properties)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const childNode = resolveRef(asRecord(child, path));
    if (childNode['type'] === 'object') {
      for (const [k, v] of schemaLeaves(childNode, path)) leaves.set(k, v);
    } else {
      leaves.set(path, childNode);
    }
  }
  return leaves;
}

function get(value: unknown, path: string): unknown {
  let current = value;
  for (const segment of path.split('.')) current = isRecord(current) ? current[segment] : undefined;
  return current;
}

function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Object.isFrozen(value) && Object.values(value).every(isDeepFrozen);
}

const tempDir = mkdtempSync(join(tmpdir(), 'vla-config-'));
afterAll(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

function writeTemp(name: string, text: string): string {
  const file = join(tempDir, name);
  writeFileSync(file, text);
  return file;
}

/** The shipped parameters with `sim.seed` removed, written as a ROS 2 parameter file. */
function yamlWithout(section: string, key: string): string {
  const params = structuredClone(yamlParams);
  const sectionValues = asRecord(params[section], section);
  Reflect.deleteProperty(sectionValues, key);
  return JSON.stringify({ '/**': { ros__parameters: params } });
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('shipped parameter file and schema', () => {
  const leaves = schemaLeaves(nodeSchema);

  it('has the ROS 2 and Autoware shape', () => {
    expect(schema['$schema']).toBe('http://json-schema.org/draft-07/schema#');
    expect(typeof schema['title']).toBe('string');
    const wrapper = asRecord(asRecord(schema['properties'], 'properties')['/**'], '/**');
    expect(asRecord(wrapper['properties'], '/** properties')['ros__parameters']).toEqual({
      $ref: '#/definitions/vla_node',
    });
  });

  it('loads and validates with the YAML values, deep-frozen', async () => {
    const config = await loadConfig();
    expect(config).toEqual(yamlParams);
    expect(isDeepFrozen(config)).toBe(true);
    expect(config.model.path).toBe('models/tiny-vla');
    expect(config.backend.execution_providers).toEqual(['cpu']);
    expect(config.pruning.keep_ratio).toBe(1);
    expect(() => {
      (config.pruning as { keep_ratio: number }).keep_ratio = 0.5;
    }).toThrow(TypeError);
  });

  it('has the same keys in the YAML and the schema', () => {
    expect(leafPaths(yamlParams).sort()).toEqual([...leaves.keys()].sort());
    expect(new Set(configKeys())).toEqual(new Set(leafPaths(yamlParams)));
    expect(configKeys()).toHaveLength(leaves.size);
  });

  it.each([...schemaLeaves(nodeSchema).keys()])(
    'describes %s with a type, a description and the YAML default',
    (key) => {
      const node = leaves.get(key);
      expect(typeof node?.['type']).toBe('string');
      expect(String(node?.['description']).length).toBeGreaterThan(10);
      // The YAML is the one place a default is written.
      expect(node?.['default']).toBeUndefined();
      const described = describeParameter(key);
      expect(described.type).toBe(node?.['type']);
      expect(described.description).toBe(node?.['description']);
      expect(described.default).toEqual(get(yamlParams, key));
      if (node?.['type'] === 'integer' || node?.['type'] === 'number') {
        expect(
          described.minimum ?? described.exclusiveMinimum,
          `lower bound of ${key}`,
        ).toBeDefined();
        expect(described.maximum ?? described.exclusiveMaximum, `upper bound of ${key}`).toBe(
          node['maximum'],
        );
      }
    },
  );

  it('lists the sections each executable reads, the ROS 2 node without sim and serve', () => {
    const common = ['model', 'backend', 'ingest', 'pruning', 'runtime', 'safety'];
    expect(configSections('node')).toEqual([...common, 'ros', 'foxglove']);
    expect(configSections('serve')).toEqual([...common, 'serve', 'foxglove']);
    expect(configSections('sim')).toEqual([...common, 'sim', 'foxglove']);
    const nodeKeys = configKeys('node');
    expect(nodeKeys).toContain('ros.qos.image');
    expect(nodeKeys.some((k) => k.startsWith('sim.') || k.startsWith('serve.'))).toBe(false);
    expect(nodeKeys).toEqual(configKeys().filter((k) => nodeKeys.includes(k)));
    expect(new Set(EXECUTABLES.flatMap((e) => configKeys(e)))).toEqual(new Set(configKeys()));
  });

  it('keeps the generated TypeScript types current with the schema', () => {
    // The same check as `npm run typecheck`: regenerate in memory and compare.
    const result = spawnSync(process.execPath, ['scripts/gen-config-types.mjs', '--check'], {
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('describes ranges for the ROS 2 parameter declarations', () => {
    expect(describeParameter('pruning.keep_ratio')).toMatchObject({
      type: 'number',
      default: 1,
      exclusiveMinimum: 0,
      maximum: 1,
    });
    expect(describeParameter('backend.intra_op_threads')).toMatchObject({
      type: 'integer',
      minimum: 0,
      maximum: 256,
    });
    expect(describeParameter('backend.execution_providers')).toMatchObject({
      type: 'array',
      default: ['cpu'],
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string' },
    });
    expect(describeParameter('safety.action_min').items).toEqual({ type: 'number' });
    expect(() => describeParameter('model.nope')).toThrow(ConfigError);
  });
});

describe('overrides', () => {
  it('applies dotted overrides', async () => {
    const config = await loadConfig({
      overrides: { 'pruning.keep_ratio': 0.5, 'backend.execution_providers': ['cuda', 'cpu'] },
    });
    expect(config.pruning.keep_ratio).toBe(0.5);
    expect(config.backend.execution_providers).toEqual(['cuda', 'cpu']);
    expect(config.model.path).toBe('models/tiny-vla');
    expect(isDeepFrozen(config)).toBe(true);
  });

  it('does not freeze or share the caller values', async () => {
    const providers = ['cuda', 'cpu'];
    const config = await loadConfig({ overrides: { 'backend.execution_providers': providers } });
    expect(Object.isFrozen(providers)).toBe(false);
    expect(config.backend.execution_providers).not.toBe(providers);
  });

  it.each(['pruning.keep_ration', 'nope', 'pruning', 'model.path.extra'])(
    'rejects the unknown key %s, naming it',
    async (key) => {
      const error = await configError(loadConfig({ overrides: { [key]: 1 } }));
      expect(error.field).toBe(key);
      expect(error.message).toContain(`"${key}"`);
      expect(error.message).toMatch(/^Expected .* for override but received/);
    },
  );

  it('validates overridden values', async () => {
    const error = await configError(loadConfig({ overrides: { 'sim.episodes': 0 } }));
    expect(error.field).toBe('sim.episodes');
    expect(error.message).toContain('with overrides');
  });
});

describe('invalid parameters', () => {
  it.each<{
    name: string;
    overrides?: Record<string, unknown>;
    file?: () => string;
    field: string;
    expected: string[];
  }>([
    {
      name: 'keep_ratio 0',
      overrides: { 'pruning.keep_ratio': 0 },
      field: 'pruning.keep_ratio',
      expected: ['Expected number in (0, 1] for pruning.keep_ratio but received 0'],
    },
    {
      name: 'keep_ratio 1.5',
      overrides: { 'pruning.keep_ratio': 1.5 },
      field: 'pruning.keep_ratio',
      expected: ['Expected number in (0, 1] for pruning.keep_ratio but received 1.5'],
    },
    {
      name: 'an unknown execution provider',
      overrides: { 'backend.execution_providers': ['gpu'] },
      field: 'backend.execution_providers[0]',
      expected: ['"tensorrt", "cuda", "cpu"', 'received "gpu"'],
    },
    {
      name: 'no execution provider',
      overrides: { 'backend.execution_providers': [] },
      field: 'backend.execution_providers',
      expected: ['at least 1 item', 'received array of length 0'],
    },
    {
      name: 'a repeated execution provider',
      overrides: { 'backend.execution_providers': ['cpu', 'cpu'] },
      field: 'backend.execution_providers',
      expected: ['no duplicates', '"cpu" more than once'],
    },
    {
      name: 'a string for an integer',
      overrides: { 'backend.intra_op_threads': 'four' },
      field: 'backend.intra_op_threads',
      expected: ['Expected integer in [0, 256] for backend.intra_op_threads but received "four"'],
    },
    {
      name: 'a fraction for an integer',
      overrides: { 'sim.episodes': 2.5 },
      field: 'sim.episodes',
      expected: ['Expected integer in [1, 100000] for sim.episodes but received 2.5'],
    },
    {
      name: 'an unknown precision',
      overrides: { 'model.precision': 'fp64' },
      field: 'model.precision',
      expected: ['one of "fp32", "fp16", "int8", "auto"', 'received "fp64"'],
    },
    {
      name: 'a string in a number array',
      overrides: { 'safety.action_min': [-1, 'x'] },
      field: 'safety.action_min[1]',
      expected: ['Expected number for safety.action_min[1] but received "x"'],
    },
    {
      name: 'a missing key',
      file: () => writeTemp('missing.yaml', yamlWithout('sim', 'seed')),
      field: 'sim.seed',
      expected: [
        'Expected integer in [0, 4294967295] for sim.seed but received nothing (the key is missing)',
      ],
    },
    {
      name: 'an unknown key in the file',
      file: () =>
        writeTemp(
          'unknown.yaml',
          JSON.stringify({
            '/**': {
              ros__parameters: {
                ...yamlParams,
                sim: { ...asRecord(yamlParams['sim'], 'sim'), speed: 2 },
              },
            },
          }),
        ),
      field: 'sim.speed',
      expected: ['unknown key sim.speed = 2', 'episodes, seed'],
    },
    {
      name: 'a section that is not a mapping',
      file: () =>
        writeTemp(
          'section.yaml',
          JSON.stringify({ '/**': { ros__parameters: { ...yamlParams, runtime: 3 } } }),
        ),
      field: 'runtime',
      expected: ['Expected object with the keys control_rate_hz', 'received 3'],
    },
  ])('rejects $name', async ({ overrides, file, field, expected }) => {
    const error = await configError(
      loadConfig({
        ...(overrides === undefined ? {} : { overrides }),
        ...(file === undefined ? {} : { file: file() }),
      }),
    );
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.field).toBe(field);
    for (const text of expected) expect(error.message).toContain(text);
  });

  it('lists every problem, the first key in schema order first', async () => {
    const error = await configError(
      loadConfig({
        overrides: { 'sim.max_steps': 0, 'model.precision': 'fp64', 'pruning.keep_ratio': 2 },
      }),
    );
    expect(error.field).toBe('model.precision');
    expect(error.message).toContain('3 problems');
    for (const key of ['model.precision', 'pruning.keep_ratio', 'sim.max_steps']) {
      expect(error.message).toContain(`for ${key} but received`);
    }
  });

  it('validates in-memory parameters', () => {
    expect(validateConfig(structuredClone(yamlParams))).toEqual(yamlParams);
    expect(() => validateConfig(null)).toThrow(/Expected object with the keys model, backend/);
  });
});

describe('parameter files', () => {
  it.each([
    ['missing', () => join(tempDir, 'does-not-exist.yaml'), 'readable parameter file'],
    ['not YAML', () => writeTemp('bad.yaml', 'a: [1, 2\nb: }'), 'valid YAML'],
    ['without parameters', () => writeTemp('empty.yaml', ''), 'ROS 2 parameter file'],
    [
      'for another node',
      () => writeTemp('other.yaml', 'other_node:\n  ros__parameters:\n    a: 1\n'),
      'received the keys other_node',
    ],
    [
      'without ros__parameters',
      () => writeTemp('noparams.yaml', '/**:\n  parameters: {}\n'),
      'ros__parameters mapping under /**',
    ],
  ])('rejects a file %s with field "file"', async (_name, file, expected) => {
    const error = await configError(loadConfig({ file: file() }));
    expect(error.field).toBe('file');
    expect(error.message).toContain(expected);
  });

  it('accepts a node-name key instead of /**', async () => {
    const file = writeTemp(
      'node.yaml',
      JSON.stringify({ vla_node: { ros__parameters: yamlParams } }),
    );
    expect(await loadConfig({ file })).toEqual(yamlParams);
    const namespaced = writeTemp(
      'namespaced.yaml',
      JSON.stringify({ '/robot/vla_node': { ros__parameters: yamlParams } }),
    );
    expect(await loadConfig({ file: namespaced })).toEqual(yamlParams);
  });

  it('merges /** with the node section, the node winning', async () => {
    const file = writeTemp(
      'merged.yaml',
      [
        `'/**': ${JSON.stringify({ ros__parameters: yamlParams })}`,
        'vla_node:',
        '  ros__parameters:',
        '    pruning:',
        '      keep_ratio: 0.25',
        '',
      ].join('\n'),
    );
    const config = await loadConfig({ file });
    expect(config.pruning.keep_ratio).toBe(0.25);
    expect(config.pruning.strategy).toBe('none');
    expect(config.sim.seed).toBe(1);
  });
});

describe('parseOverride', () => {
  it.each<[string, string, unknown]>([
    ['pruning.keep_ratio=0.5', 'pruning.keep_ratio', 0.5],
    ['backend.execution_providers=[cuda, cpu]', 'backend.execution_providers', ['cuda', 'cpu']],
    ['x=true', 'x', true],
    ['sim.episodes=100', 'sim.episodes', 100],
    ['model.path=models/other', 'model.path', 'models/other'],
    ['model.path=/abs/a=b', 'model.path', '/abs/a=b'],
    ['backend.tensorrt_cache_path=', 'backend.tensorrt_cache_path', ''],
    ["model.path='0.5'", 'model.path', '0.5'],
    ['safety.action_min=[-1, -0.5]', 'safety.action_min', [-1, -0.5]],
    ['safety.action_min=[]', 'safety.action_min', []],
    [' sim.seed = 7 ', 'sim.seed', 7],
    ['sim.seed:=7', 'sim.seed', 7],
  ])('parses %s', (text, key, value) => {
    expect(parseOverride(text)).toEqual([key, value]);
  });

  it.each([
    ['pruning.keep_ratio', 'override', 'Expected key=value'],
    ['=1', 'override', 'key before "="'],
    ['x=[1, 2', 'x', 'YAML value'],
  ])('rejects %s', (text, field, message) => {
    let caught: unknown;
    try {
      parseOverride(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).message).toContain(message);
  });

  it('feeds loadConfig', async () => {
    const overrides = Object.fromEntries(
      ['pruning.keep_ratio=0.5', 'backend.execution_providers=[cuda, cpu]'].map(parseOverride),
    );
    const config = await loadConfig({ overrides });
    expect(config.pruning.keep_ratio).toBe(0.5);
    expect(config.backend.execution_providers).toEqual(['cuda', 'cpu']);
  });
});
