import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compressCommand } from '../../src/cli/compress.js';
import type { CommandIo } from '../../src/cli/command.js';
import {
  readCalibrationSet,
  simulatorSamples,
  writeCalibrationSet,
} from '../../src/compression/calibration.js';
import {
  compressPackage,
  withVariants,
  type CompressOptions,
} from '../../src/compression/compress.js';
import { InputError, ModelError, type VlaError } from '../../src/errors.js';
import { loadModelPackage, selectVariant } from '../../src/model/manifest.js';
import { TINY_VLA } from '../helpers.js';

let work: string;
let pkgDir: string;
let calDir: string;

/** A temp copy of the shipped package with only its fp32 variant, and 8 calibration frames. */
async function setup(): Promise<void> {
  work = await mkdtemp(join(tmpdir(), 'vla-compress-test-'));
  pkgDir = join(work, 'tiny-vla');
  calDir = join(work, 'cal');
  await mkdir(pkgDir);
  const manifest = JSON.parse(await readFile(join(TINY_VLA, 'manifest.json'), 'utf8')) as {
    variants: { precision: string }[];
  };
  manifest.variants = manifest.variants.filter((v) => v.precision === 'fp32');
  await writeFile(join(pkgDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  for (const f of ['tokenizer.json', 'vision_encoder.onnx', 'policy.onnx'])
    await copyFile(join(TINY_VLA, f), join(pkgDir, f));
  await writeCalibrationSet(calDir, simulatorSamples(8, 3), 'test');
}

function options(overrides: Partial<CompressOptions> = {}): CompressOptions {
  return {
    model: pkgDir,
    calibration: calDir,
    method: 'minmax',
    mode: 'static',
    batchSize: 4,
    heldOut: 8,
    episodes: 4,
    seed: 1,
    errorThreshold: 0.02,
    successTolerance: 3,
    latencyRounds: 6,
    rangesOut: join(work, 'ranges.json'),
    progress: () => undefined,
    ...overrides,
  };
}

async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await readdir(pkgDir, { recursive: true }))
    out[f] = (await readFile(join(pkgDir, f)).catch(() => Buffer.alloc(0))).toString('base64');
  return out;
}

beforeEach(setup);
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('compress end to end (temp copy of the package)', () => {
  it('adds a gated int8 variant with reports, hashes and ranges', async () => {
    const lines: string[] = [];
    const report = await compressPackage(options({ progress: (l) => lines.push(l) }));
    expect(lines.some((l) => l.startsWith('calibrating (minmax): 8/8'))).toBe(true);
    expect(report.gate.passed).toBe(true);
    expect(report.closed_loop.int8_success_rate).toBeGreaterThanOrEqual(
      report.closed_loop.fp32_success_rate - 0.03,
    );
    expect(report.size_bytes.ratio).toBeLessThan(0.6);
    expect(report.latency.ratio.total).toBeGreaterThan(0);
    const pkg = await loadModelPackage(pkgDir); // verifies every SHA-256
    const int8 = selectVariant(pkg, 'int8');
    expect(int8.files.encoder.path).toBe('vision_encoder.int8.onnx');
    expect(int8.report).toBe('reports/int8.json');
    const saved = JSON.parse(await readFile(join(pkgDir, 'reports/int8.json'), 'utf8')) as {
      variant: string;
    };
    expect(saved.variant).toBe('int8');
    expect(await readFile(join(pkgDir, 'reports/int8.md'), 'utf8')).toContain('int8/fp32');
    const ranges = JSON.parse(await readFile(join(work, 'ranges.json'), 'utf8')) as {
      frames: number;
    };
    expect(ranges.frames).toBe(8);
    expect((await readdir(pkgDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // auto: the fastest variant whose report passed its gate on the CPU, else fp32.
    const reportFile = join(pkgDir, 'reports/int8.json');
    const write = (passed: boolean, total: number): Promise<void> =>
      writeFile(
        reportFile,
        JSON.stringify({ gate: { passed, provider: 'cpu' }, latency: { ratio: { total } } }),
      );
    await write(true, 0.5);
    expect(selectVariant(pkg, 'auto').name).toBe('int8');
    expect(selectVariant(pkg, 'auto', 'cuda').name).toBe('fp32');
    await write(false, 0.5);
    expect(selectVariant(pkg, 'auto').name).toBe('fp32');
    await write(true, 1.3);
    expect(selectVariant(pkg, 'auto').name).toBe('fp32');
    await rm(reportFile);
    expect(selectVariant(pkg, 'auto').name).toBe('fp32');
  }, 30_000);

  it('records a calibration set from the simulator via the command and refuses to overwrite it', async () => {
    const dir = join(work, 'recorded');
    const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
    await compressCommand.run({ calibration: dir, record: '5', seed: '2' }, io, []);
    expect(await readCalibrationSet(dir)).toHaveLength(5);
    await expect(
      compressCommand.run({ calibration: dir, record: '5' }, io, []),
    ).rejects.toBeInstanceOf(InputError);
  });

  it('keeps every other byte of the manifest when replacing its variants', () => {
    const text = '{\n  "a": [0.0, 1.0],\n  "variants": [\n    {"name": "x]"}\n  ],\n  "z": 1\n}\n';
    const out = withVariants(text, []);
    expect(out).toContain('"a": [0.0, 1.0]');
    expect(JSON.parse(out)).toEqual({ a: [0, 1], variants: [], z: 1 });
  });
});

describe('compress bad input: typed errors, nothing overwritten', () => {
  const cases: {
    name: string;
    prepare: () => Promise<Partial<CompressOptions>>;
    error: typeof InputError | typeof ModelError;
    field: string | RegExp;
  }[] = [
    {
      name: 'missing calibration folder',
      prepare: () => Promise.resolve({ calibration: join(work, 'nope') }),
      error: InputError,
      field: 'calibration',
    },
    {
      name: 'empty calibration set',
      prepare: async () => {
        await writeFile(join(calDir, 'frames.json'), JSON.stringify({ frames: [] }));
        return {};
      },
      error: InputError,
      field: 'calibration.frames',
    },
    {
      name: 'unreadable calibration image',
      prepare: async () => {
        await writeFile(join(calDir, 'frames/0000.png'), 'not a png');
        return {};
      },
      error: InputError,
      field: 'calibration.frames[0].image',
    },
    {
      name: 'variant whose SHA-256 does not match',
      prepare: async () => {
        const p = join(pkgDir, 'policy.onnx');
        const bytes = await readFile(p);
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
        await writeFile(p, bytes);
        return {};
      },
      error: ModelError,
      field: 'manifest.variants[0].files.policy.sha256',
    },
    {
      name: 'exclusion naming no node',
      prepare: () => Promise.resolve({ exclude: ['/no/such/Node'] }),
      error: InputError,
      field: 'exclude',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const overrides = await c.prepare();
      const before = await snapshot();
      const error = await compressPackage(options(overrides)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(c.error);
      expect((error as VlaError).field).toMatch(c.field);
      expect(await snapshot()).toEqual(before);
    });
  }
});
