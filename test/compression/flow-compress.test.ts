/**
 * `compress` on a flow-matching package (format v2), end to end on temporary copies of
 * models/tiny-vla-flow with real ONNX graphs, ONNX Runtime and the simulator's closed loop (a few
 * episodes: the gate's 100 are the command's default, not the test's).
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../src/cli/command.js';
import { compressCommand } from '../../src/cli/compress.js';
import { flowTabletopEvaluator } from '../../src/cli/sim-flow.js';
import {
  prepareFlowSamples,
  readCalibrationSet,
  writeCalibrationSet,
} from '../../src/compression/calibration.js';
import type { CompressionReport, CompressOptions } from '../../src/compression/compress.js';
import {
  compressFlowPackage,
  flowDefaultExclusions,
  type FlowCompressionReport,
} from '../../src/compression/flow-compress.js';
import { InputError, type VlaError } from '../../src/errors.js';
import { FlowPolicy } from '../../src/flow/policy.js';
import {
  FLOW_ROLES,
  loadFlowPackage,
  selectFlowVariant,
  type FlowPackage,
} from '../../src/model/flow-manifest.js';
import { loadModelPackage, selectVariant } from '../../src/model/manifest.js';
import { simulatorSamples } from '../../src/sim/samples.js';
import { graphOf, loadOnnx } from '../../src/util/onnx-graph.js';
import { TINY_VLA } from '../helpers.js';
import { copyFlowPackage, removeFlowCopies } from '../flow/package.js';

let work: string;
let pkgDir: string;
let calDir: string;
const CAMERAS = ['table', 'wrist'];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'vla-compress-flow-test-'));
  // Only the fp32 variant: whatever the shipped package holds, the test starts from fp32.
  pkgDir = await copyFlowPackage((m) => {
    m.variants = (m.variants as { precision: string }[]).filter((v) => v.precision === 'fp32');
  });
  calDir = join(work, 'cal');
  await writeCalibrationSet(calDir, simulatorSamples(6, 3, 2, CAMERAS), 'test');
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});
afterAll(removeFlowCopies);

function options(overrides: Partial<CompressOptions> = {}): CompressOptions {
  return {
    model: pkgDir,
    calibration: calDir,
    method: 'minmax',
    mode: 'static',
    batchSize: 4,
    heldOut: 4,
    episodes: 2,
    seed: 1,
    errorThreshold: 0.02,
    successTolerance: 3,
    latencyRounds: 4,
    rangesOut: join(work, 'ranges.json'),
    progress: () => undefined,
    evaluator: flowTabletopEvaluator(),
    ...overrides,
  };
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await readdir(dir, { recursive: true }))
    out[f] = (await readFile(join(dir, f)).catch(() => Buffer.alloc(0))).toString('base64');
  return out;
}

/** One observation of both cameras, as FlowPolicy takes it. */
async function request(pkg: FlowPackage, seed: number) {
  const [sample] = await prepareFlowSamples(pkg, simulatorSamples(1, 11, 2, CAMERAS));
  if (sample === undefined) throw new Error('no sample');
  return { ...sample, seed };
}

function policyOptions(precision: 'fp32' | 'int8' | 'fp16') {
  return {
    precision,
    pruning: { strategy: 'none' as const, keepRatio: 1, keepCount: 0, seed: 0 },
    caches: { instruction: true, visualThreshold: null, visualCameras: [] },
    intraOpThreads: 1,
  };
}

describe('compress a flow package (temp copy of models/tiny-vla-flow)', () => {
  it('adds a static INT8 variant: QDQ graphs that load, selectable by FlowPolicy, gated report', async () => {
    const lines: string[] = [];
    const report = await compressFlowPackage(options({ progress: (l) => lines.push(l) }));
    if (report.precision !== 'int8') throw new Error('expected an int8 report');
    expect(lines).toContain('calibrating (minmax): 4/6 frames'); // a line per --batch-size
    expect(lines).toContain('calibrating (minmax): 6/6 frames');

    // Calibration saw every graph through the runtime, the expert at every Euler time.
    const pkg = await loadFlowPackage(pkgDir); // verifies every SHA-256
    const steps = pkg.manifest.denoising.steps;
    expect(report.calibration.cameras).toEqual(CAMERAS);
    expect(report.calibration.graph_runs).toEqual({
      encoder: 6,
      instruction: 6,
      prefix: 6,
      expert: 6 * steps,
    });
    expect(report.calibration.expert_times).toEqual(
      Array.from({ length: steps }, (_, i) => Math.round((i / steps) * 1e4) / 1e4),
    );
    // What stays float by default, and what the report says about it.
    const fp32 = selectFlowVariant(pkg, 'fp32');
    const graphs = Object.fromEntries(
      await Promise.all(FLOW_ROLES.map(async (r) => [r, await loadOnnx(fp32.paths[r])])),
    ) as Record<(typeof FLOW_ROLES)[number], Awaited<ReturnType<typeof loadOnnx>>>;
    expect(report.excluded).toEqual(flowDefaultExclusions(graphs));
    expect(report.excluded.expert).toHaveLength(2);

    // The gate's figures are all there, and consistent with the gate's verdict.
    expect(report.action_error.names).toEqual(pkg.manifest.action.names);
    expect(report.action_error.mean_abs).toHaveLength(pkg.manifest.chunk.action_dim);
    expect(report.action_error.frames).toBe(4);
    expect(report.closed_loop.episodes).toBe(2);
    expect(report.closed_loop.fp32_success_rate).toBeGreaterThanOrEqual(0);
    expect(report.closed_loop.int8_success_rate).toBeLessThanOrEqual(1);
    const worst = Math.max(...report.action_error.mean_abs);
    const drop =
      100 * (report.closed_loop.fp32_success_rate - report.closed_loop.int8_success_rate);
    expect(report.gate.passed).toBe(worst < 0.02 && drop <= 3);
    expect(report.gate.reasons.length === 0).toBe(report.gate.passed);
    expect(report.latency.ratio.total).toBeGreaterThan(0);
    expect(report.size_bytes.ratio).toBeLessThan(0.6);
    expect(await readFile(join(pkgDir, 'reports/int8.md'), 'utf8')).toContain('## Closed loop');
    const ranges = JSON.parse(await readFile(join(work, 'ranges.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    for (const r of FLOW_ROLES) expect(Object.keys(ranges[r] as object).length).toBeGreaterThan(0);
    expect((await readdir(pkgDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // Every graph of the variant holds QDQ pairs and loads in ONNX Runtime.
    const int8 = selectFlowVariant(pkg, 'int8');
    expect(int8.report).toBe('reports/int8.json');
    for (const r of FLOW_ROLES) {
      expect(int8.files[r].path).toMatch(/\.int8\.onnx$/);
      const ops = new Set(graphOf(await loadOnnx(int8.paths[r])).node.map((n) => n.opType));
      expect(ops.has('QuantizeLinear') && ops.has('DequantizeLinear')).toBe(true);
      const session = await ort.InferenceSession.create(int8.paths[r]);
      await session.release();
    }

    // FlowPolicy selects it: finite actions within the limits, close to fp32 from the same noise.
    const q = await FlowPolicy.create(pkg, policyOptions('int8'));
    const f = await FlowPolicy.create(pkg, policyOptions('fp32'));
    try {
      const req = await request(pkg, 5);
      const a = (await q.infer(req)).actions;
      const b = (await f.infer(req)).actions;
      const A = pkg.manifest.chunk.action_dim;
      a.forEach((v, i) => {
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThanOrEqual(pkg.manifest.action.min[i % A] as number);
        expect(v).toBeLessThanOrEqual(pkg.manifest.action.max[i % A] as number);
      });
      expect(Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))))).toBeLessThan(0.2);
    } finally {
      await Promise.all([q.release(), f.release()]);
    }

    // auto, as for v1: the fastest variant whose report passed its gate on the provider, else fp32.
    const reportFile = join(pkgDir, 'reports/int8.json');
    const write = (passed: boolean, total: number): Promise<void> =>
      writeFile(
        reportFile,
        JSON.stringify({ gate: { passed, provider: 'cpu' }, latency: { ratio: { total } } }),
      );
    await write(true, 0.5);
    expect(selectFlowVariant(pkg, 'auto').name).toBe('int8');
    expect(selectFlowVariant(pkg, 'auto', 'cuda').name).toBe('fp32');
    const auto = await FlowPolicy.create(pkg, { ...policyOptions('fp32'), precision: 'auto' });
    expect(auto.variant).toEqual({ name: 'int8', precision: 'int8' });
    await auto.release();
    await write(false, 0.5);
    expect(selectFlowVariant(pkg, 'auto').name).toBe('fp32');
    await write(true, 1.2);
    expect(selectFlowVariant(pkg, 'auto').name).toBe('fp32');
  }, 120_000);

  it('adds an FP16 variant via the command, keeping out-of-range nodes in float32', async () => {
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
      'held-out': '4',
      episodes: '2',
      'latency-rounds': '4',
    };
    expect(await compressCommand.run(flags, io, [])).toBe(0);
    const report = result as FlowCompressionReport;
    if (report.precision !== 'fp16') throw new Error('expected an fp16 report');
    expect(report.family).toBe('flow');
    // Whatever left the float16 range on the calibration inputs was kept float32, so no
    // activation computed in float16 overflows.
    expect(report.activations.over_fp16_max).toEqual([]);
    for (const r of FLOW_ROLES)
      for (const n of report.kept_fp32.for_range[r]) expect(report.kept_fp32.nodes[r]).toContain(n);
    expect(report.emulated_action_error.mean_abs).toHaveLength(2);
    expect(Math.max(...report.action_error.mean_abs)).toBeLessThan(0.01);
    const pkg = await loadFlowPackage(pkgDir);
    const fp16 = selectFlowVariant(pkg, 'fp16');
    expect(fp16.providers).toEqual(['tensorrt', 'cuda']);
    const policy = await FlowPolicy.create(pkg, policyOptions('fp16'));
    try {
      const { actions } = await policy.infer(await request(pkg, 2));
      expect(actions.every((v) => Number.isFinite(v))).toBe(true);
    } finally {
      await policy.release();
    }
  }, 120_000);

  it('records a calibration set of every camera from a flow package; a v1 package records one', async () => {
    const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
    const two = join(work, 'two');
    await compressCommand.run({ calibration: two, record: '3', model: pkgDir }, io, []);
    const index = JSON.parse(await readFile(join(two, 'frames.json'), 'utf8')) as {
      frames: { image: string; images?: Record<string, string> }[];
    };
    expect(index.frames).toHaveLength(3);
    for (const f of index.frames) expect(Object.keys(f.images ?? {})).toEqual(['wrist']);
    const samples = await readCalibrationSet(two);
    const pkg = await loadFlowPackage(pkgDir);
    const prepared = await prepareFlowSamples(pkg, samples);
    expect(prepared[0]?.images).toHaveLength(2);
    // The two cameras differ (the wrist view is not a copy of the table view).
    const [table, wrist] = prepared[0]?.images ?? [];
    if (table?.kind !== 'raw' || wrist?.kind !== 'raw') throw new Error('expected raw frames');
    expect(Buffer.from(table.data).equals(Buffer.from(wrist.data))).toBe(false);

    const one = join(work, 'one');
    await compressCommand.run({ calibration: one, record: '3', model: TINY_VLA }, io, []);
    const v1 = JSON.parse(await readFile(join(one, 'frames.json'), 'utf8')) as {
      frames: Record<string, unknown>[];
    };
    expect(v1.frames.every((f) => !('images' in f))).toBe(true);
  }, 30_000);

  it('refuses a calibration set without wrist frames, naming the field; nothing is written', async () => {
    const one = join(work, 'one-camera');
    await writeCalibrationSet(one, simulatorSamples(4, 3), 'test');
    const before = await snapshot(pkgDir);
    const error = await compressFlowPackage(options({ calibration: one })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as VlaError).field).toBe('calibration.frames[0].images.wrist');
    expect((error as Error).message).toMatch(/camera "wrist"/);
    expect(await snapshot(pkgDir)).toEqual(before);
  });

  it('refuses an --exclude that names no node of the graph it names', async () => {
    const before = await snapshot(pkgDir);
    const error = await compressFlowPackage(
      options({ mode: 'dynamic', exclude: ['expert:/no/such/MatMul'] }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as VlaError).field).toBe('exclude');
    expect(await snapshot(pkgDir)).toEqual(before);
  });
});

describe('compress on a v1 package is unchanged', () => {
  it('compresses the encoder + policy package via the command from a two-camera set', async () => {
    // A set recorded for the flow package also serves v1: its `image` is the tabletop view.
    const v1 = join(work, 'tiny-vla');
    await mkdir(v1);
    const manifest = JSON.parse(await readFile(join(TINY_VLA, 'manifest.json'), 'utf8')) as {
      variants: { precision: string }[];
    };
    manifest.variants = manifest.variants.filter((v) => v.precision === 'fp32');
    await writeFile(join(v1, 'manifest.json'), JSON.stringify(manifest, null, 2));
    for (const f of ['tokenizer.json', 'vision_encoder.onnx', 'policy.onnx'])
      await copyFile(join(TINY_VLA, f), join(v1, f));
    let result: unknown;
    const io: CommandIo = {
      json: true,
      progress: () => undefined,
      result: (r) => {
        result = r;
      },
    };
    const flags = {
      model: v1,
      calibration: calDir,
      'held-out': '4',
      episodes: '2',
      'latency-rounds': '4',
      'ranges-out': join(work, 'v1-ranges.json'),
    };
    expect(await compressCommand.run(flags, io, [])).toBe(0);
    const report = result as CompressionReport;
    expect(report).not.toHaveProperty('family');
    if (report.precision !== 'int8') throw new Error('expected an int8 report');
    expect(Object.keys(report.quantized_nodes)).toEqual(['encoder', 'policy']);
    expect(report.calibration.frames).toBe(6);
    const pkg = await loadModelPackage(v1);
    expect(selectVariant(pkg, 'int8').files.policy.path).toBe('policy.int8.onnx');
  }, 60_000);
});
