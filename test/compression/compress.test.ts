import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tabletopEvaluator } from '../../src/sim/evaluator.js';
import { simulatorSamples } from '../../src/sim/samples.js';
import { compressCommand } from '../../src/cli/compress.js';
import type { CommandIo } from '../../src/cli/command.js';
import {
  prepareSamples,
  readCalibrationSet,
  writeCalibrationSet,
} from '../../src/compression/calibration.js';
import {
  compressPackage,
  variantFigures,
  withVariants,
  type CompressionReport,
  type CompressOptions,
} from '../../src/compression/compress.js';
import { DEFAULT_FP16_KEEP_OPS } from '../../src/compression/fp16.js';
import { encodeOnnx, graphOf, loadOnnx } from '../../src/util/onnx-graph.js';
import { GraphRunner } from '../../src/compression/runner.js';
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
    evaluator: tabletopEvaluator(),
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
    expect(report.precision).toBe('int8');
    expect(variantFigures(report).successRate).toBeGreaterThanOrEqual(
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

  it("scores the closed loop with the evaluator it is given, not the tabletop's", async () => {
    // A user's own model is gated on its own task: compression calls the evaluator it is given
    // for both the held-out frames and the closed loop, and reports what that evaluator measured.
    const calls: string[] = [];
    const tabletop = tabletopEvaluator();
    const own = {
      heldOut(count: number, seed: number) {
        calls.push(`heldOut ${count} ${seed}`);
        return tabletop.heldOut(count, seed);
      },
      closedLoop(dir: string, precision: string, run: { episodes: number; seed: number }) {
        calls.push(`closedLoop ${precision} ${run.episodes} ${run.seed}`);
        expect(dir).not.toBe(pkgDir); // a scratch package, never the user's folder
        return Promise.resolve({
          rate: precision === 'fp32' ? 0.5 : 0.25,
          stages: { encode: 1, policy: 2 },
        });
      },
    };
    const report = await compressPackage(options({ mode: 'dynamic', evaluator: own }));
    expect(calls).toEqual([
      `heldOut 8 ${(1 + 0x5eed) >>> 0}`,
      'closedLoop fp32 4 1',
      'closedLoop int8 4 1',
    ]);
    expect(report.closed_loop.fp32_success_rate).toBe(0.5);
    expect(variantFigures(report).successRate).toBe(0.25);
    expect(report.gate.passed).toBe(false);
  }, 30_000);

  it('adds an fp16 variant via the command: float32 IO, hashed, selectable, runs on the CPU', async () => {
    let result: unknown;
    const io: CommandIo = {
      json: true,
      progress: () => undefined,
      result: (r) => {
        result = r;
      },
    };
    const flags = {
      model: pkgDir,
      calibration: calDir,
      mode: 'fp16',
      'batch-size': '4',
      'held-out': '8',
      episodes: '4',
      'latency-rounds': '6',
    };
    expect(await compressCommand.run(flags, io, [])).toBe(0);
    const report = result as CompressionReport;
    if (report.precision !== 'fp16') throw new Error('expected an fp16 report');
    expect(report.variant).toBe('fp16');
    expect(report.gate).toMatchObject({ passed: true, provider: 'cpu' });
    expect(report.intended_providers).toEqual(['tensorrt', 'cuda']);
    expect(report.kept_fp32.ops).toEqual([...DEFAULT_FP16_KEEP_OPS]);
    expect(report.kept_fp32.nodes.policy).toEqual(['/ReduceSum', '/ReduceSum_1']);
    expect(report.activations.over_fp16_max).toEqual([]);
    expect(report.emulated_action_error.mean_abs).toHaveLength(2);
    expect(Math.max(...report.action_error.mean_abs)).toBeLessThan(0.005);
    expect(report.closed_loop.fp16_success_rate).toBeGreaterThanOrEqual(
      report.closed_loop.fp32_success_rate - 0.03,
    );
    expect(report.size_bytes.ratio).toBeLessThan(0.6);
    const md = await readFile(join(pkgDir, 'reports/fp16.md'), 'utf8');
    expect(md).toContain('CPU');
    expect(md).toContain('fp16/fp32');

    const pkg = await loadModelPackage(pkgDir); // verifies every SHA-256
    const fp16 = selectVariant(pkg, 'fp16');
    expect(fp16.files.encoder.path).toBe('vision_encoder.fp16.onnx');
    expect(fp16.files.policy.path).toBe('policy.fp16.onnx');
    expect(fp16.report).toBe('reports/fp16.json');
    expect(fp16.providers).toEqual(['tensorrt', 'cuda']);
    // Explicitly chosen, it loads and runs on the CPU provider with the manifest's float32 IO.
    const ref = await GraphRunner.create(
      pkg,
      selectVariant(pkg, 'fp32').paths.encoder,
      selectVariant(pkg, 'fp32').paths.policy,
    );
    const half = await GraphRunner.create(pkg, fp16.paths.encoder, fp16.paths.policy);
    try {
      const [sample] = await prepareSamples(pkg, simulatorSamples(1, 5));
      if (sample === undefined) throw new Error('no sample');
      const a = (await ref.run(sample)).actions;
      const b = (await half.run(sample)).actions;
      expect(b).toBeInstanceOf(Float32Array);
      a.forEach((v, i) => {
        expect(Math.abs(v - (b[i] as number))).toBeLessThan(5e-3);
      });
    } finally {
      await Promise.all([ref.release(), half.release()]);
    }

    // auto uses the fp16 report like any other: only when it passed on this provider and is faster.
    const auto = selectVariant(pkg, 'auto').name;
    if (!(report.latency.ratio.total < 1)) expect(auto).toBe('fp32');
    const reportFile = join(pkgDir, 'reports/fp16.json');
    const write = (passed: boolean, provider: string, total: number): Promise<void> =>
      writeFile(
        reportFile,
        JSON.stringify({ gate: { passed, provider }, latency: { ratio: { total } } }),
      );
    await write(true, 'cpu', 1.6);
    expect(selectVariant(pkg, 'auto').name).toBe('fp32');
    await write(true, 'cpu', 0.5);
    expect(selectVariant(pkg, 'auto').name).toBe('fp16');
    expect(selectVariant(pkg, 'auto', 'cuda').name).toBe('fp32');
    await write(false, 'cpu', 0.5);
    expect(selectVariant(pkg, 'auto').name).toBe('fp32');
    await write(true, 'cuda', 0.5);
    expect(selectVariant(pkg, 'auto', 'cuda').name).toBe('fp16');
    expect(selectVariant(pkg, 'auto', 'cpu').name).toBe('fp32');

    // A replaced fp16 file is still a typed error at load.
    const p = join(pkgDir, 'policy.fp16.onnx');
    const bytes = await readFile(p);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await writeFile(p, bytes);
    const error = await loadModelPackage(pkgDir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).field).toBe('manifest.variants[1].files.policy.sha256');
  }, 60_000);

  it('refuses an unknown --mode', async () => {
    const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
    await expect(
      compressCommand.run({ model: pkgDir, calibration: calDir, mode: 'fp8' }, io, []),
    ).rejects.toThrow(/static\|dynamic\|fp16/);
  });

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
    {
      name: 'fp16 exclusion naming neither a node nor an operator',
      prepare: () => Promise.resolve({ mode: 'fp16', exclude: ['Softmax', 'NoSuchOp'] }),
      error: InputError,
      field: 'exclude',
    },
    {
      name: 'fp16 of a graph with an operator the converter does not know',
      prepare: async () => {
        const p = join(pkgDir, 'policy.onnx');
        const model = await loadOnnx(p);
        const n = graphOf(model).node.find((x) => x.opType === 'Erf');
        if (n !== undefined) n.opType = 'MysteryOp';
        const bytes = encodeOnnx(model);
        await writeFile(p, bytes);
        const manifestPath = join(pkgDir, 'manifest.json');
        const m = JSON.parse(await readFile(manifestPath, 'utf8')) as {
          variants: { files: { policy: { sha256: string } } }[];
        };
        const v = m.variants[0];
        if (v !== undefined)
          v.files.policy.sha256 = createHash('sha256').update(bytes).digest('hex');
        await writeFile(manifestPath, JSON.stringify(m, null, 2));
        return { mode: 'fp16' };
      },
      error: ModelError,
      field: 'graphs.policy',
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
