import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { benchObservations } from '../../src/bench/frames.js';
import { countFlops } from '../../src/bench/flops.js';
import { cpuFlags } from '../../src/bench/machine.js';
import { measureOverhead, repeated } from '../../src/bench/overhead.js';
import { median } from '../../src/util/stats.js';
import { matmulModel, measureMatmulPeak } from '../../src/bench/peak.js';
import { measureStartup } from '../../src/bench/startup.js';
import { measureTorch } from '../../src/bench/torch.js';
import { flowReferenceMarkdown, measureFlowReference } from '../../src/bench/flow-reference.js';
import { loadFlowPackage } from '../../src/model/flow-manifest.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { PYTHON, ROOT, testPipelineOptions, TINY_VLA, torchMissing } from '../helpers.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'bin', 'vla-node.js');

describe('FLOP counting from ONNX graphs', () => {
  it('counts 2·n³ for an n×n matrix product', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vla-flops-'));
    const path = join(dir, 'mm.onnx');
    await (await import('node:fs/promises')).writeFile(path, matmulModel(48));
    const a = new ort.Tensor('float32', new Float32Array(48 * 48), [48, 48]);
    const f = await countFlops(path, { A: a });
    expect(f).toEqual({ total: 2 * 48 ** 3, by_op: { MatMul: 2 * 48 ** 3 }, nodes: 1 });
  });

  it("matches the tiny encoder's architecture counted by hand, and the policy grows with tokens", async () => {
    const pkg = await loadModelPackage(TINY_VLA);
    const pixels = new ort.Tensor('float32', new Float32Array(3 * 96 * 96), [1, 3, 96, 96]);
    const enc = await countFlops(join(TINY_VLA, 'vision_encoder.onnx'), { pixels });
    // 8×8 patch conv to 64 channels on 144 patches, 2 blocks of width 64 with 4 heads and an MLP
    // of 128, then the saliency head: 2 × multiply-adds.
    const n = 144;
    const d = 64;
    const block = n * d * 3 * d + n * d * d + 2 * n * n * d + 2 * n * d * 2 * d;
    const byHand = 2 * (n * d * 3 * 8 * 8 + 2 * block + n * d);
    expect(enc.total).toBe(byHand);
    expect(enc.by_op.Conv).toBe(2 * n * d * 3 * 64);
    const policyAt = async (k: number) =>
      countFlops(join(TINY_VLA, 'policy.onnx'), {
        visual_tokens: new ort.Tensor('float32', new Float32Array(k * d), [1, k, d]),
        token_positions: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: k }, (_, i) => BigInt(i)),
          [1, k],
        ),
        instruction_ids: new ort.Tensor(
          'int64',
          new BigInt64Array(pkg.manifest.tokenizer.max_length),
          [1, pkg.manifest.tokenizer.max_length],
        ),
        state: new ort.Tensor('float32', new Float32Array(2), [1, 2]),
      });
    const [small, full] = [await policyAt(36), await policyAt(144)];
    expect(small.total).toBeGreaterThan(0);
    expect(full.total).toBeGreaterThan(2 * small.total);
  });
});

describe('machine and peak', () => {
  it('reads the SIMD flags from cpuinfo', () => {
    const info = 'processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni ht\n';
    expect(cpuFlags(info)).toEqual(['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni']);
    expect(cpuFlags('Features\t: fp asimd asimddp\n')).toEqual(['asimd', 'asimddp']);
    expect(cpuFlags('')).toEqual([]);
  });

  it('measures a positive matrix-multiply rate per thread count', async () => {
    const peak = await measureMatmulPeak({ sizes: [64, 128], threads: [1], minMs: 20 });
    expect(peak.points.map((p) => p.size)).toEqual([64, 128]);
    for (const p of peak.points) expect(p.gflops).toBeGreaterThan(0);
    expect(peak.peak_gflops['1']).toBe(Math.max(...peak.points.map((p) => p.gflops)));
  });

  it('summarises repeats with medians and the p50 spread', () => {
    const s = (p50: number) => ({
      count: 1,
      mean: p50,
      p50,
      p95: p50 * 2,
      p99: p50 * 3,
      max: p50 * 4,
    });
    const r = repeated([s(1), s(1.2), s(0.9)]);
    expect(r.median.p50).toBe(1);
    expect(r.median.p95).toBe(2);
    expect(r.p50_spread_pct).toBe(30);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('pipeline overhead and the PyTorch reference', () => {
  it('times the node and the bare sessions on the same frames, and PyTorch agrees on the actions', async () => {
    const pkg = await loadModelPackage(TINY_VLA);
    const obs = benchObservations(pkg.manifest, 6, 3);
    const r = await measureOverhead(pkg, testPipelineOptions(), obs, 2, 2);
    expect(r.node.repeats).toHaveLength(2);
    expect(r.bare.repeats.map((s) => s.count)).toEqual([6, 6]);
    expect(r.ratio_p50.median).toBeGreaterThan(0);
    expect(r.actions).toHaveLength(6);
    for (const a of r.actions) expect(a.every(Number.isFinite)).toBe(true);
    expect(Object.keys(r.node_stages_p50)).toEqual([
      'preprocess',
      'encode',
      'prune',
      'policy',
      'postprocess',
    ]);

    const missing = await measureTorch(pkg, obs, r.actions, {
      python: PYTHON,
      script: join(TINY_VLA, 'train', 'bench_torch.py'),
      checkpoint: join(TINY_VLA, 'no-such-checkpoint.pt'),
      threads: 1,
      repeats: 1,
    });
    expect(missing).toEqual({
      available: false,
      reason: expect.stringMatching(
        /PyTorch checkpoint not found at .*no-such-checkpoint\.pt/,
      ) as string,
    });

    const why = await torchMissing();
    if (why !== undefined) {
      console.log(`skipping the PyTorch comparison: ${why}`);
      return;
    }
    const torch = await measureTorch(pkg, obs, r.actions, {
      python: PYTHON,
      script: join(TINY_VLA, 'train', 'bench_torch.py'),
      checkpoint: join(TINY_VLA, 'train', 'checkpoint.pt'),
      threads: 1,
      repeats: 1,
    });
    if (!torch.available) throw new Error(torch.reason);
    // The committed checkpoint is the one the ONNX graphs were exported from.
    expect(torch.max_abs_diff_vs_node).toBeLessThan(1e-4);
    expect(torch.latency.median.p50).toBeGreaterThan(0);
  }, 120_000);
});

describe('flow-matching package against PyTorch eager', () => {
  it('computes the chunks PyTorch computes from the same noise, or says why it cannot compare', async () => {
    const pkg = await loadFlowPackage(join(ROOT, 'models', 'tiny-vla-flow'));
    const settings = { frames: 4, repeats: 1, seed: 3, threads: 1, steps: 5 };
    const missing = await measureFlowReference(pkg, { ...settings, python: '/no/such/python' });
    expect(missing.node.median.p50).toBeGreaterThan(0);
    expect(missing.pytorch).toEqual({
      available: false,
      reason: 'Python not found at /no/such/python',
    });
    const why = await torchMissing();
    if (why !== undefined) {
      console.log(`skipping the flow PyTorch comparison: ${why}`);
      return;
    }
    const r = await measureFlowReference(pkg, { ...settings, python: PYTHON });
    expect(r.cameras).toEqual(['table', 'wrist']);
    expect(r.steps).toBe(5);
    if (!r.pytorch.available) throw new Error(r.pytorch.reason);
    // The committed checkpoint is the one the four ONNX graphs were exported from.
    expect(r.pytorch.max_abs_diff_vs_node).toBeLessThan(1e-4);
    expect(flowReferenceMarkdown(r).join('\n')).toContain('## 8. Flow-matching family');
  }, 120_000);
});

describe('start-up probe', () => {
  it('starts a fresh process, reports time to the first chunk and peak RSS', async () => {
    const r = await measureStartup(TINY_VLA, 'fp32', 3);
    if (!r.available) throw new Error(r.reason);
    expect(r.process_start_to_first_chunk_ms).toBeGreaterThan(r.phases_ms.imported);
    expect(r.phases_ms.first_chunk).toBeGreaterThanOrEqual(r.phases_ms.ready);
    expect(r.peak_rss_mib).toBeGreaterThan(30);
  }, 60_000);

  it('says why when the model cannot load', async () => {
    const r = await measureStartup('/nonexistent/model', 'fp32', 1);
    expect(r.available).toBe(false);
    if (!r.available) expect(r.reason).toMatch(/exited with 1/);
  }, 60_000);
});

describe('bench report', () => {
  it('writes every section as JSON, Markdown and plots', async () => {
    const out = await mkdtemp(join(tmpdir(), 'vla-report-'));
    const { stdout } = await run(
      process.execPath,
      [
        CLI,
        'bench',
        'report',
        '--frames',
        '8',
        '--repeats',
        '2',
        '--episodes',
        '1',
        '--realistic',
        '',
        '--out',
        out,
        '--json',
      ],
      { maxBuffer: 1 << 24 },
    );
    const report = JSON.parse(stdout) as {
      machine: { cpu: string; onnxruntime: string };
      models: { model: string; pipeline_overhead: { ratio_p50: { median: number } } }[];
      matrix: { precision: string; keep_ratio: number; success_rate: number }[];
      matmul_peak: { peak_gflops: Record<string, number> };
      skipped: { what: string; reason: string }[];
      flow: { model: string; steps: number } | null;
      ar: {
        model: string;
        frames: number;
        strategies: { strategy: string; same_tokens_as_greedy: boolean }[];
        pytorch: { available: boolean };
      } | null;
    };
    expect(report.flow).toMatchObject({ model: 'tiny-vla-flow', steps: 10 });
    expect(report.ar).toMatchObject({ model: 'tiny-vla-ar', frames: 8 });
    expect(report.ar?.strategies.every((s) => s.same_tokens_as_greedy)).toBe(true);
    expect(report.machine.onnxruntime).toMatch(/^\d+\.\d+/);
    expect(report.models.map((m) => m.model)).toEqual(['tiny-vla']);
    expect(report.matrix.map((c) => `${c.precision}@${c.keep_ratio}`)).toEqual([
      'fp32@1',
      'fp32@0.5',
      'fp32@0.25',
      'fp32@0.125',
      'int8@1',
      'int8@0.5',
      'int8@0.25',
      'int8@0.125',
    ]);
    expect(report.matmul_peak.peak_gflops['1']).toBeGreaterThan(0);
    expect(report.skipped.map((s) => s.what)).toContain('realistic model');
    const md = await readFile(join(out, 'report.md'), 'utf8');
    for (const section of [
      '## 1. Pipeline overhead',
      '## 2. Against PyTorch eager',
      '## 3. Compression × pruning',
      '## 4. Against the machine',
      '## 5. Start-up and memory',
      '## 6. Realistic-scale model',
      '## 7. Camera-frame ingest',
      '## 8. Flow-matching family',
      '## 9. PyTorch eager, autoregressive (tiny-vla-ar',
    ])
      expect(md).toContain(section);
    for (const f of [
      'report.json',
      'report.svg',
      'report.png',
      'report-matrix.svg',
      'report-matrix.png',
    ])
      expect(existsSync(join(out, f))).toBe(true);
  }, 180_000);

  it('rejects a bad flag with the option name', async () => {
    await expect(
      run(process.execPath, [CLI, 'bench', 'report', '--repeats', '0', '--realistic', '']),
    ).rejects.toMatchObject({ stderr: expect.stringMatching(/--repeats/) as string });
  });
});
