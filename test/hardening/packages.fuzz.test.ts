/**
 * Tampered model packages, generated: manifest paths drawn from escapes, absolute paths, symlinks
 * (inside and outside), a FIFO and a folder; random values put at random manifest keys; random
 * bytes as manifest.json. Whatever the package, loading it gives a package whose every file lies
 * inside the folder, or a typed ModelError, and never reads outside. Bounded in time.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describe as describeValue, ModelError, printable } from '../../src/errors.js';
import { loadModelPackage, selectVariant } from '../../src/model/manifest.js';
import {
  copyPackage,
  readJson,
  removeCopies,
  writeJson,
  type JsonObject,
} from '../model/package.js';

const BOUND = { numRuns: 120, interruptAfterTimeLimit: 4000, markInterruptAsFailure: false };

let base: string;
let manifest: JsonObject;
let outside: string;

beforeAll(async () => {
  base = await copyPackage();
  manifest = await readJson(join(base, 'manifest.json'));
  outside = mkdtempSync(join(tmpdir(), 'vla-pkg-fuzz-outside-'));
  writeFileSync(join(outside, 'secret.json'), '{"secret": true}');
  // Hostile entries inside the package, for paths to point at.
  symlinkSync(join(outside, 'secret.json'), join(base, 'link-out.json'));
  symlinkSync('tokenizer.json', join(base, 'link-in.json'));
  symlinkSync('/dev/zero', join(base, 'zero.onnx'));
  execFileSync('mkfifo', [join(base, 'fifo.onnx')]);
  mkdirSync(join(base, 'folder.onnx'));
});
afterAll(async () => {
  await removeCopies();
  rmSync(outside, { recursive: true, force: true });
});

const PATHS = fc.oneof(
  fc.constantFrom(
    'tokenizer.json',
    'vision_encoder.onnx',
    'policy.onnx',
    'link-out.json',
    'link-in.json',
    'zero.onnx',
    'fifo.onnx',
    'folder.onnx',
    '../secret.json',
    '/etc/hostname',
    '/dev/zero',
    './a/../../x',
    'C:\\windows',
    '',
    '.',
  ),
  fc.string({ unit: 'binary', maxLength: 24 }),
);

/** Where a manifest names a path. */
const PATH_KEYS: ((m: JsonObject, p: string) => void)[] = [
  (m, p) => ((m.tokenizer as JsonObject).file = p),
  (m, p) => (((m.variants as JsonObject[])[0] as JsonObject).report = p),
  (m, p) => {
    const v = (m.variants as JsonObject[])[0] as JsonObject;
    ((v.files as JsonObject).encoder as JsonObject).path = p;
  },
  (m, p) => {
    const v = (m.variants as JsonObject[])[0] as JsonObject;
    ((v.files as JsonObject).policy as JsonObject).path = p;
  },
];

/** Load the package with `m` as its manifest: a confined package or a ModelError. */
async function check(m: unknown): Promise<'ok' | 'typed'> {
  await writeJson(join(base, 'manifest.json'), m);
  const started = Date.now();
  try {
    const pkg = await loadModelPackage(base, { verifyHashes: false });
    const root = realpathSync(base);
    for (const v of pkg.manifest.variants) {
      const paths = selectVariant(
        { ...pkg, manifest: { ...pkg.manifest, variants: [v] } },
        v.precision,
      ).paths;
      for (const p of Object.values(paths)) {
        expect(relative(root, realpathSync(p)).startsWith('..')).toBe(false);
      }
    }
    return 'ok';
  } catch (error) {
    if (!(error instanceof ModelError)) throw error;
    expect(error.message).not.toContain('"secret"');
    return 'typed';
  } finally {
    // A FIFO or a device would block or run for minutes: every case returns at once.
    expect(Date.now() - started).toBeLessThan(5000);
  }
}

describe('manifest paths', () => {
  it('confines every path a manifest names, whatever it names', async () => {
    let typed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: PATH_KEYS.length - 1 }), PATHS), {
          minLength: 1,
          maxLength: 3,
        }),
        async (edits) => {
          const m = structuredClone(manifest);
          for (const [k, p] of edits) PATH_KEYS[k]?.(m, p);
          if ((await check(m)) === 'typed') typed++;
        },
      ),
      BOUND,
    );
    expect(typed).toBeGreaterThan(0);
  });
});

describe('manifest values', () => {
  /** Every key path of the manifest, as a list of keys and indices. */
  function keyPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (Array.isArray(value)) {
      return [prefix, ...value.slice(0, 3).flatMap((v, i) => keyPaths(v, [...prefix, i]))];
    }
    if (typeof value === 'object' && value !== null) {
      return [prefix, ...Object.entries(value).flatMap(([k, v]) => keyPaths(v, [...prefix, k]))];
    }
    return [prefix];
  }

  it('gives a typed error or a valid package for any value at any key', async () => {
    const keys = keyPaths(manifest).filter((k) => k.length > 0);
    const values = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(-1, 0, 1e9, 2 ** 53, Number.MAX_VALUE, '', 'batch'),
      fc.array(fc.integer(), { maxLength: 2000 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...keys), values, async (key, value) => {
        const m = structuredClone(manifest);
        let o = m as Record<string | number, unknown>;
        for (const k of key.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
        o[key[key.length - 1] as string | number] = value;
        await check(m);
      }),
      BOUND,
    );
  });

  it('gives a typed error for any bytes as manifest.json', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        writeFileSync(join(base, 'manifest.json'), bytes);
        const error = await loadModelPackage(base).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ModelError);
      }),
      { ...BOUND, numRuns: 60 },
    );
  });
});

describe('printable', () => {
  // eslint-disable-next-line no-control-regex -- what must never reach the terminal raw
  const RAW = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

  it('never lets a control character, a bidi override or a lone surrogate through', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.integer({ min: 4, max: 400 }),
        (s, max) => {
          const out = printable(s, max);
          expect(out).not.toMatch(RAW);
          // Well-formed: every surrogate is half of a pair.
          expect(out).not.toMatch(/[\ud800-\udfff]/u);
          expect(describeValue(s)).not.toMatch(RAW);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('leaves ordinary text as it is', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 100 }).filter((s) => !RAW.test(s)),
        (s) => {
          expect(printable(s)).toBe(s);
        },
      ),
      { numRuns: 300 },
    );
  });
});
