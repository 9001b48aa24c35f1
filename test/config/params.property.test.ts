/**
 * Property suite for parameters: random parameter sets and files, valid and invalid, never crash
 * the loader; every refusal is a ConfigError that names the field and says what was expected.
 * Bounded: a fixed number of runs per property, each a pure in-memory validation (the file
 * property writes one small file per run).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  applyOverrides,
  checkConfigForModel,
  configKeys,
  DEFAULT_PARAM_FILE,
  loadConfig,
  validateConfig,
  type VlaConfig,
} from '../../src/config/index.js';
import { ConfigError } from '../../src/errors.js';
import { loadModelPackage, type Manifest } from '../../src/model/manifest.js';
import { resolveLimits } from '../../src/runtime/safety.js';
import { TINY_VLA } from '../helpers.js';

const RUNS = { numRuns: 300, seed: 15 };

let defaults: VlaConfig;
let manifest: Manifest;
let dir: string;
beforeAll(async () => {
  defaults = structuredClone(await loadConfig({ file: DEFAULT_PARAM_FILE }));
  manifest = (await loadModelPackage(TINY_VLA)).manifest;
  dir = mkdtempSync(join(tmpdir(), 'vla-params-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const KEYS = () => configKeys();
/** Every dotted section of the schema (`ros`, `ros.qos`, ...), which a field may also name. */
const sections = () =>
  new Set(
    KEYS().flatMap((k) =>
      k
        .split('.')
        .slice(0, -1)
        .map((_, i, a) => a.slice(0, i + 1).join('.')),
    ),
  );

/** Values a parameter might be given: right type near the edges, wrong types, odd numbers. */
const value = fc.oneof(
  fc.double(),
  fc.double({ min: -2, max: 2, noNaN: true }),
  fc.integer({ min: -5, max: 100_000 }),
  fc.constantFrom(0, -0, 1, -1, 0.5, 1e308, -1e308, Number.NaN, Infinity, -Infinity, 4294967296),
  fc.boolean(),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('hold', 'zero', 'safe_pose', 'sync', 'rtc', 'cpu', 'none', ''),
  fc.constant(null),
  fc.array(fc.oneof(fc.double({ min: -3, max: 3, noNaN: true }), fc.string({ maxLength: 4 })), {
    maxLength: 4,
  }),
  fc.array(fc.double({ min: -1, max: 2, noNaN: true }), { minLength: 2, maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
);

interface Mutation {
  readonly set: [number, unknown][];
  readonly drop: number[];
  readonly extra: [string, string] | null;
}

/** A mutation of the defaults: new values for some keys, some keys removed, maybe an unknown one. */
const mutation: fc.Arbitrary<Mutation> = fc.record({
  set: fc.array(fc.tuple(fc.nat(), value), { maxLength: 5 }),
  drop: fc.array(fc.nat(), { maxLength: 2 }),
  extra: fc.option(
    fc.tuple(
      fc.constantFrom('safety', 'sim', 'ros.qos', ''),
      fc.string({ minLength: 1, maxLength: 6 }),
    ),
  ),
});

function mutate(m: Mutation): unknown {
  const keys = KEYS();
  const overrides = Object.fromEntries(m.set.map(([i, v]) => [keys[i % keys.length] as string, v]));
  const params = applyOverrides(defaults, overrides) as Record<string, unknown>;
  for (const i of m.drop) {
    const path = (keys[i % keys.length] as string).split('.');
    const last = path.pop() as string;
    let node: unknown = params;
    for (const p of path) node = (node as Record<string, unknown>)[p];
    Reflect.deleteProperty(node as object, last);
  }
  if (m.extra !== null) {
    const [section, key] = m.extra;
    let node: unknown = params;
    for (const p of section === '' ? [] : section.split('.'))
      node = (node as Record<string, unknown>)[p];
    (node as Record<string, unknown>)[key] = 1;
  }
  return params;
}

/** The refusal names a real field and says what was expected and what was received. */
function expectNamedRefusal(error: unknown, known: (field: string) => boolean): void {
  expect(error).toBeInstanceOf(ConfigError);
  const e = error as ConfigError;
  expect(e.code).toBe('INVALID_CONFIG');
  expect(typeof e.field).toBe('string');
  expect(known(e.field as string), `field ${String(e.field)} of: ${e.message}`).toBe(true);
  expect(e.message).toContain('Expected');
  expect(e.message).toContain('received');
}

function knownField(extra: string | undefined) {
  const keys = new Set(KEYS());
  const secs = sections();
  return (field: string): boolean => {
    const bare = field.replace(/\[\d+\]/g, '');
    return keys.has(bare) || secs.has(bare) || bare === extra;
  };
}

/** The invariants of a configuration that was accepted. */
function expectSound(config: Readonly<VlaConfig>): void {
  expect(Object.isFrozen(config.safety)).toBe(true);
  const { action_min: min, action_max: max } = config.safety;
  expect(min.length).toBe(max.length);
  min.forEach((lo, d) => {
    expect(lo).toBeLessThan(max[d] as number);
  });
  if (config.runtime.latency_budget_ms > 0 && config.pruning.strategy !== 'none') {
    expect(config.pruning.min_keep_ratio).toBeLessThanOrEqual(config.pruning.keep_ratio);
  }
  for (const key of KEYS()) {
    let v: unknown = config;
    for (const p of key.split('.')) v = (v as Record<string, unknown>)[p];
    for (const x of Array.isArray(v) ? (v as unknown[]) : [v]) {
      if (typeof x === 'number') expect(Number.isFinite(x), key).toBe(true);
    }
  }
}

describe('parameter properties', () => {
  it('random parameter sets: accepted sound, or refused with a ConfigError naming the field', () => {
    fc.assert(
      fc.property(mutation, (m) => {
        const params = mutate(m);
        const extra =
          m.extra === null ? undefined : [m.extra[0], m.extra[1]].filter((s) => s !== '').join('.');
        let config: Readonly<VlaConfig>;
        try {
          config = validateConfig(params);
        } catch (error) {
          expectNamedRefusal(error, knownField(extra));
          return;
        }
        expectSound(config);
      }),
      RUNS,
    );
  });

  it('accepted parameters against the model: fit it, or a ConfigError naming the field', () => {
    const limitsPair = fc.oneof(
      fc.constant<[number[], number[]]>([[], []]),
      fc.tuple(
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 1, maxLength: 3 }),
      ),
    );
    fc.assert(
      fc.property(
        limitsPair,
        fc.boolean(),
        fc.integer({ min: 0, max: 20 }),
        fc.constantFrom('hold', 'zero', 'safe_pose'),
        fc.array(fc.double({ min: -1, max: 2, noNaN: true }), { maxLength: 3 }),
        fc.oneof(fc.constant(0), fc.double({ min: 0, max: 10, noNaN: true })),
        ([min, max], beyond, steps, safe, pose, delta) => {
          let config: Readonly<VlaConfig>;
          try {
            config = validateConfig(
              applyOverrides(defaults, {
                'safety.action_min': min,
                'safety.action_max': max,
                'safety.allow_limits_beyond_model': beyond,
                'safety.safe_action': safe,
                'safety.safe_pose': pose,
                'safety.max_delta_per_step': delta,
                'runtime.execute_steps': steps,
              }),
            );
          } catch (error) {
            expectNamedRefusal(error, knownField(undefined));
            return;
          }
          try {
            checkConfigForModel(config, manifest);
          } catch (error) {
            expectNamedRefusal(error, knownField(undefined));
            return;
          }
          expect(config.runtime.execute_steps).toBeLessThanOrEqual(manifest.chunk.horizon);
          const limits = resolveLimits(manifest, {
            min: config.safety.action_min,
            max: config.safety.action_max,
            maxDeltaPerStep: config.safety.max_delta_per_step,
            allowBeyondModel: beyond,
          });
          limits.min.forEach((lo, d) => {
            expect(lo).toBeLessThan(limits.max[d] as number);
            if (!beyond) {
              expect(lo).toBeGreaterThanOrEqual(manifest.action.min[d] as number);
              expect(limits.max[d]).toBeLessThanOrEqual(manifest.action.max[d] as number);
            }
          });
          const deltas = limits.maxDeltaPerStep;
          for (const d of typeof deltas === 'number' ? [deltas] : deltas)
            expect(d).toBeGreaterThan(0);
        },
      ),
      RUNS,
    );
  });

  it('random parameter files: loaded, or a ConfigError naming the field or the file', async () => {
    const text = fc.oneof(
      mutation.map((m) => stringify({ '/**': { ros__parameters: mutate(m) } })),
      mutation.map((m) => stringify({ vla_node: { ros__parameters: mutate(m) } })),
      fc.string({ maxLength: 80 }),
      fc.constantFrom(
        '',
        '/**: 3',
        '/**:\n  ros__parameters: []',
        '{',
        '- a\n- b',
        '/**:\n  ros__parameters:\n    model: *x',
      ),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(text, async (content) => {
        const file = join(dir, `p${n++}.yaml`);
        writeFileSync(file, content);
        try {
          expectSound(await loadConfig({ file }));
        } catch (error) {
          expectNamedRefusal(
            error,
            (field) =>
              field === 'file' ||
              knownField(undefined)(field) ||
              (error as ConfigError).message.includes(`unknown key ${field} =`),
          );
        }
      }),
      { ...RUNS, numRuns: 150 },
    );
  });

  it('random overrides: applied, or a ConfigError naming the key', () => {
    const key = fc.oneof(
      fc.constantFrom(...configKeys()),
      fc.string({ maxLength: 16 }),
      fc.constantFrom('safety', 'safety.', '.x', 'ros.qos', 'ros.qos.image.x'),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 4 }), (pairs) => {
        const overrides = Object.fromEntries(pairs);
        try {
          expectSound(validateConfig(applyOverrides(defaults, overrides)));
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          const field = (error as ConfigError).field as string;
          // An unknown key is named as given; a bad value by its dotted path.
          expect(Object.keys(overrides).includes(field) || knownField(undefined)(field)).toBe(true);
          expect((error as ConfigError).message).toContain('Expected');
        }
      }),
      RUNS,
    );
  });
});
