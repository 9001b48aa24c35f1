import { execFile } from 'node:child_process';
import os from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import sharp from 'sharp';
import { benchObservations, type BenchObservation } from '../bench/frames.js';
import { countFlops, type FlopCount } from '../bench/flops.js';
import {
  cameraIngestMarkdown,
  measureCameraIngest,
  type CameraIngestReport,
} from '../bench/ingest.js';
import { measureKeepRatios, type KeepRatioLatency } from '../bench/keep.js';
import { machineInfo, type MachineInfo } from '../bench/machine.js';
import { measureOverhead, type OverheadResult, type Repeated } from '../bench/overhead.js';
import { measureMatmulPeak, type MatmulPeak } from '../bench/peak.js';
import { measureStartup, type StartupResult } from '../bench/startup.js';
import { measureTorch, type TorchResult } from '../bench/torch.js';
import {
  applyOverrides,
  resolvePackagePath,
  validateConfig,
  type VlaConfig,
} from '../config/index.js';
import { PACKAGE_ROOT } from '../config/config.js';
import { loadModelPackage, selectVariant, type ModelPackage } from '../model/manifest.js';
import { graphOf, loadOnnx } from '../util/onnx-graph.js';
import { ConfigError } from '../errors.js';
import { FrameIngest } from '../ingest/index.js';
import type { PipelineOptions } from '../pipeline/pipeline.js';
import { barChartSvg, lineChartSvg } from './chart.js';
import type { CommandIo, CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';
import { simulate, type SimReport } from '../sim/experiment.js';
import { median, round } from '../util/stats.js';

const RATIOS = [1, 0.5, 0.25, 0.125] as const;
const MATRIX_PRECISIONS = ['fp32', 'int8'] as const;
const STRATEGY = 'saliency';

/** One model's latency sections: overhead, PyTorch, FLOPs against the peak, start-up, keep ratios. */
export interface ModelReport {
  readonly model: string;
  readonly parameters: number;
  readonly visual_tokens: number;
  readonly pipeline_overhead: Omit<OverheadResult, 'actions'>;
  /** The node fed frames from the simulator's 128×128 camera (resized by ingest), same sessions. */
  readonly pipeline_overhead_camera_frames: Omit<OverheadResult, 'actions'> | null;
  readonly pytorch: TorchResult & { readonly node_speedup_p50?: number };
  readonly flops: {
    readonly encoder: FlopCount;
    readonly policy_by_tokens: readonly { readonly tokens: number; readonly flops: FlopCount }[];
    /** Achieved rate of the node's stages at all tokens (stage p50) and the share of the peak. */
    readonly achieved: {
      readonly encoder_gflops: number;
      readonly policy_gflops: number;
      readonly encoder_share_of_peak: number;
      readonly policy_share_of_peak: number;
    };
  };
  readonly startup: StartupResult;
  readonly keep_ratios: readonly KeepRatioLatency[];
}

/** One cell of the compression × pruning matrix (closed loop on the shipped model). */
export interface MatrixCell {
  readonly precision: string;
  readonly keep_ratio: number;
  readonly tokens_kept: number;
  readonly success_rate: number;
  readonly end_to_end_ms: { readonly p50: number; readonly p95: number };
  readonly policy_ms: { readonly p50: number; readonly p95: number };
  readonly encode_ms: { readonly p50: number };
  /** Success rate and latency medians are over `repeats` runs of the same episodes. */
  readonly repeats: number;
  /** (max − min) / median of the runs' end-to-end p50, in percent. */
  readonly p50_spread_pct: number;
}

export interface PerformanceReport {
  readonly created: string;
  readonly machine: MachineInfo;
  readonly settings: {
    readonly intra_op_threads: number;
    readonly repeats: number;
    readonly frames: number;
    readonly episodes_per_cell: number;
    readonly strategy: string;
  };
  readonly matmul_peak: MatmulPeak;
  readonly models: readonly ModelReport[];
  readonly matrix: readonly MatrixCell[];
  /** Camera-frame ingest (`vla-node bench ingest`), on the shipped model. */
  readonly ingest: CameraIngestReport;
  readonly skipped: readonly { readonly what: string; readonly reason: string }[];
  readonly files: Readonly<Record<string, string>>;
}

const strip = (o: OverheadResult): Omit<OverheadResult, 'actions'> => {
  const { actions: _actions, ...rest } = o;
  return rest;
};

async function parameterCount(model: ModelPackage): Promise<number> {
  const variant = selectVariant(model, 'fp32');
  let n = 0;
  for (const path of [variant.paths.encoder, variant.paths.policy]) {
    for (const t of graphOf(await loadOnnx(path)).initializer) {
      if (t.dataType === 1) n += t.dims.reduce<number>((a, d) => a * Number(d), 1);
    }
  }
  return n;
}

/** FLOPs of the encoder and of the policy at each token count, from the fp32 graphs. */
async function stageFlops(
  model: ModelPackage,
  obs: BenchObservation,
  tokenCounts: readonly number[],
): Promise<{ encoder: FlopCount; policy: { tokens: number; flops: FlopCount }[] }> {
  const m = model.manifest;
  const variant = selectVariant(model, 'fp32');
  const ingest = new FrameIngest(m.image);
  const pixels = new Float32Array(3 * m.image.width * m.image.height);
  await ingest.toTensor(obs.frame, pixels);
  const encIn = m.graphs.encoder.inputs[0]?.name ?? '';
  const pixelTensor = new ort.Tensor('float32', pixels, [1, 3, m.image.height, m.image.width]);
  const encoder = await countFlops(variant.paths.encoder, { [encIn]: pixelTensor });
  const session = await ort.InferenceSession.create(variant.paths.encoder, { logSeverityLevel: 3 });
  let tokens: Float32Array;
  try {
    const out = await session.run({ [encIn]: pixelTensor });
    tokens = out[m.graphs.encoder.outputs[0]?.name ?? '']?.data as Float32Array;
  } finally {
    await session.release();
  }
  const [vt, vp, vi, vs] = m.graphs.policy.inputs.map((i) => i.name);
  const ids = new BigInt64Array(m.tokenizer.max_length);
  model.tokenizer.encodeInto(obs.instruction, ids);
  const policy: { tokens: number; flops: FlopCount }[] = [];
  for (const k of tokenCounts) {
    const feeds = {
      [vt ?? '']: new ort.Tensor('float32', tokens.slice(0, k * m.token_dim), [1, k, m.token_dim]),
      [vp ?? '']: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: k }, (_, i) => BigInt(i)),
        [1, k],
      ),
      [vi ?? '']: new ort.Tensor('int64', ids, [1, ids.length]),
      [vs ?? '']: new ort.Tensor('float32', new Float32Array(m.state.names.length), [
        1,
        m.state.names.length,
      ]),
    };
    policy.push({ tokens: k, flops: await countFlops(variant.paths.policy, feeds) });
  }
  return { encoder, policy };
}

async function modelReport(
  model: ModelPackage,
  options: PipelineOptions,
  settings: { repeats: number; frames: number; seed: number; python: string; threads: number },
  peak: number,
  io: CommandIo,
  withCameraFrames: boolean,
): Promise<ModelReport> {
  const m = model.manifest;
  const name = m.name;
  const total = m.patch_grid.width * m.patch_grid.height;
  const obs = benchObservations(m, settings.frames, settings.seed);
  io.progress(
    `${name}: pipeline vs bare sessions (${settings.frames} frames × ${settings.repeats} repeats)`,
  );
  const overhead = await measureOverhead(model, options, obs, settings.repeats);
  io.progress(
    `${name}: node p50 ${overhead.node.median.p50} ms, bare p50 ${overhead.bare.median.p50} ms, ratio ${overhead.ratio_p50.median}`,
  );
  let camera: OverheadResult | null = null;
  if (withCameraFrames) {
    const camObs = benchObservations(m, settings.frames, settings.seed, {
      width: 128,
      height: 128,
    });
    camera = await measureOverhead(model, options, camObs, settings.repeats);
    io.progress(
      `${name}: with 128×128 camera frames (resize in ingest) node p50 ${camera.node.median.p50} ms`,
    );
  }
  io.progress(`${name}: PyTorch eager reference`);
  const checkpoint = [
    join(model.dir, 'train', 'checkpoint.pt'),
    join(model.dir, 'checkpoint.pt'),
  ].find((p) => existsSync(p));
  const torch = await measureTorch(model, obs, overhead.actions, {
    python: settings.python,
    script: join(PACKAGE_ROOT, 'models', 'tiny-vla', 'train', 'bench_torch.py'),
    checkpoint: checkpoint ?? join(model.dir, 'train', 'checkpoint.pt'),
    threads: settings.threads,
    repeats: settings.repeats,
  });
  const pytorch = torch.available
    ? { ...torch, node_speedup_p50: round(torch.latency.median.p50 / overhead.node.median.p50, 2) }
    : torch;
  io.progress(
    torch.available
      ? `${name}: PyTorch p50 ${torch.latency.median.p50} ms (max |Δ| vs node ${torch.max_abs_diff_vs_node.toExponential(1)})`
      : `${name}: PyTorch reference skipped: ${torch.reason}`,
  );
  io.progress(`${name}: FLOPs from the graphs`);
  const counts = RATIOS.map((r) => Math.max(1, Math.round(r * total)));
  const flops = await stageFlops(model, obs[0] as BenchObservation, counts);
  const full = flops.policy[0]?.flops.total ?? 0;
  const encMs = overhead.node_stages_p50.encode ?? Number.NaN;
  const polMs = overhead.node_stages_p50.policy ?? Number.NaN;
  const encG = flops.encoder.total / (encMs * 1e6);
  const polG = full / (polMs * 1e6);
  io.progress(`${name}: start-up probe`);
  const startup = await measureStartup(model.dir, 'fp32', name === 'tiny-vla' ? 200 : 20);
  io.progress(`${name}: latency by keep ratio (${STRATEGY})`);
  const keep = await measureKeepRatios(
    model,
    options,
    obs.slice(0, Math.min(obs.length, 100)),
    RATIOS,
    STRATEGY,
  );
  return {
    model: name,
    parameters: await parameterCount(model),
    visual_tokens: total,
    pipeline_overhead: strip(overhead),
    pipeline_overhead_camera_frames: camera === null ? null : strip(camera),
    pytorch,
    flops: {
      encoder: flops.encoder,
      policy_by_tokens: flops.policy,
      achieved: {
        encoder_gflops: round(encG, 2),
        policy_gflops: round(polG, 2),
        encoder_share_of_peak: round(encG / peak, 3),
        policy_share_of_peak: round(polG / peak, 3),
      },
    },
    startup,
    keep_ratios: keep,
  };
}

async function matrix(
  base: VlaConfig,
  episodes: number,
  repeats: number,
  io: CommandIo,
): Promise<MatrixCell[]> {
  const cells: MatrixCell[] = [];
  for (const precision of MATRIX_PRECISIONS) {
    for (const ratio of RATIOS) {
      const config = validateConfig(
        applyOverrides(base, {
          'model.precision': precision,
          'pruning.strategy': ratio === 1 ? 'none' : STRATEGY,
          'pruning.keep_ratio': ratio,
          'pruning.keep_count': 0,
          'runtime.latency_budget_ms': 0,
          'sim.episodes': episodes,
        }),
        'bench report',
      );
      const runs: SimReport[] = [];
      for (let i = 0; i < repeats; i++) runs.push(await simulate(config, 'model', () => undefined));
      const med = (f: (r: SimReport) => number | undefined): number =>
        median(runs.map((r) => f(r) ?? 0));
      const p50s = runs.map((r) => r.latency_ms?.p50 ?? 0);
      const first = runs[0];
      const cell: MatrixCell = {
        precision,
        keep_ratio: ratio,
        tokens_kept: first?.visual_tokens?.kept ?? 0,
        success_rate: med((r) => r.success_rate),
        end_to_end_ms: { p50: med((r) => r.latency_ms?.p50), p95: med((r) => r.latency_ms?.p95) },
        policy_ms: {
          p50: med((r) => r.stage_percentiles_ms?.policy?.p50),
          p95: med((r) => r.stage_percentiles_ms?.policy?.p95),
        },
        encode_ms: { p50: med((r) => r.stage_percentiles_ms?.encode?.p50) },
        repeats,
        p50_spread_pct: round(
          ((Math.max(...p50s) - Math.min(...p50s)) / med((r) => r.latency_ms?.p50)) * 100,
          1,
        ),
      };
      cells.push(cell);
      io.progress(
        `matrix ${precision} keep ${ratio}: success ${(100 * cell.success_rate).toFixed(0)}%, end-to-end p50 ${cell.end_to_end_ms.p50} ms, policy p50 ${cell.policy_ms.p50} ms`,
      );
    }
  }
  return cells;
}

const fmt = (r: Repeated): string =>
  `${r.median.p50} / ${r.median.p95} / ${r.median.p99} / ${r.median.max}`;

/** The report as Markdown. */
export function reportMarkdown(r: PerformanceReport): string {
  const out: string[] = [];
  const mc = r.machine;
  out.push(
    '# vla-node performance report',
    '',
    `Made by \`npm run bench\` on ${r.created}. Machine: ${mc.cpu}, ${mc.logical_cores} logical cores (${mc.flags.join(', ')}), ${mc.memory_gib} GiB; ${mc.os}; Node ${mc.node}; ONNX Runtime ${mc.onnxruntime} (${r.models[0]?.pipeline_overhead.provider ?? 'cpu'} execution provider). ${r.settings.intra_op_threads} intra-op thread(s) for ONNX Runtime and PyTorch alike; ${r.settings.frames} frames × ${r.settings.repeats} repeats per latency figure (median of the repeats; spread = (max − min) / median of the per-repeat p50).`,
    '',
    '## 1. Pipeline overhead (frame → chunk vs the bare ONNX Runtime sessions)',
    '',
    '| model | node p50 / p95 / p99 / max (ms) | bare sessions p50 / p95 / p99 / max (ms) | node / bare at p50 | spread node, bare |',
    '|---|---|---|---:|---|',
  );
  for (const m of r.models) {
    const o = m.pipeline_overhead;
    out.push(
      `| ${m.model} | ${fmt(o.node)} | ${fmt(o.bare)} | **${o.ratio_p50.median}×** | ${o.node.p50_spread_pct}%, ${o.bare.p50_spread_pct}% |`,
    );
    const c = m.pipeline_overhead_camera_frames;
    if (c !== null)
      out.push(
        `| ${m.model}, 128×128 camera frames (resize in ingest) | ${fmt(c.node)} | ${fmt(c.bare)} | ${c.ratio_p50.median}× | ${c.node.p50_spread_pct}%, ${c.bare.p50_spread_pct}% |`,
      );
  }
  out.push(
    '',
    'The node is `VlaPipeline.infer` from an RGB8 frame to a clamped chunk in robot units (ingest, encoder, token selection, policy, de-normalisation, safety); the bare loop calls the same two sessions (same files and options) on tensors normalised beforehand and passes the encoder output straight to the policy.',
    '',
    'Node stage p50 (ms): ' +
      r.models
        .map(
          (m) =>
            `${m.model}: ${Object.entries(m.pipeline_overhead.node_stages_p50)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}`,
        )
        .join('; '),
    '',
    '## 2. Against PyTorch eager (same weights, same frames, same threads)',
    '',
    '| model | PyTorch p50 / p95 / p99 / max (ms) | node p50 (ms) | node speed-up at p50 | max abs difference of the actions | spread |',
    '|---|---|---:|---:|---:|---|',
  );
  for (const m of r.models) {
    const t = m.pytorch;
    if (t.available)
      out.push(
        `| ${m.model} | ${fmt(t.latency)} | ${m.pipeline_overhead.node.median.p50} | **${t.node_speedup_p50 ?? ''}×** | ${t.max_abs_diff_vs_node.toExponential(1)} | ${t.latency.p50_spread_pct}% |`,
      );
    else out.push(`| ${m.model} | skipped: ${t.reason} | | | | |`);
  }
  out.push(
    '',
    'PyTorch runs the training recipe (`models/tiny-vla/train/model.py`) with the checkpoint the ONNX graphs were exported from, in eval mode under `torch.inference_mode()`, one frame at a time, with its own preprocessing and de-normalisation timed (`bench_torch.py`), every thread pool (OpenMP, OpenBLAS) limited to the same thread count, one Python process per repeat (its speed varies between processes more than within one). The action difference shows both computed the same thing.',
    '',
    `## 3. Compression × pruning (closed loop on the shipped model, ${r.settings.episodes_per_cell} episodes per cell × ${r.settings.repeats} runs, ${r.settings.strategy} pruning; the camera frames are resized by ingest)`,
    '',
    '| precision | keep ratio | tokens | success | end-to-end p50 / p95 (ms) | encoder p50 (ms) | policy p50 / p95 (ms) | spread of p50 |',
    '|---|---:|---:|---:|---|---:|---|---:|',
  );
  for (const c of r.matrix)
    out.push(
      `| ${c.precision} | ${c.keep_ratio} | ${c.tokens_kept} | ${(100 * c.success_rate).toFixed(0)}% | ${c.end_to_end_ms.p50} / ${c.end_to_end_ms.p95} | ${c.encode_ms.p50} | ${c.policy_ms.p50} / ${c.policy_ms.p95} | ${c.p50_spread_pct}% |`,
    );
  for (const m of r.models) {
    if (m.keep_ratios.length === 0) continue;
    out.push(
      '',
      `Open-loop latency by keep ratio, ${m.model} (fp32, ${r.settings.strategy}):`,
      '',
      '| keep ratio | tokens | end-to-end p50 / p95 (ms) | policy p50 / p95 (ms) |',
      '|---:|---:|---|---|',
      ...m.keep_ratios.map(
        (k) =>
          `| ${k.keep_ratio} | ${k.tokens_kept} | ${k.end_to_end_ms.p50} / ${k.end_to_end_ms.p95} | ${k.policy_ms.p50} / ${k.policy_ms.p95} |`,
      ),
    );
  }
  const peaks = Object.entries(r.matmul_peak.peak_gflops)
    .map(([t, g]) => `${g} GFLOP/s with ${t} thread${t === '1' ? '' : 's'}`)
    .join(', ');
  out.push(
    '',
    '## 4. Against the machine',
    '',
    `Measured peak: ${peaks} (${r.matmul_peak.method}).`,
    '',
    `| model | encoder MFLOP | policy MFLOP at 100% / 50% / 25% / 12.5% tokens | encoder GFLOP/s (share of the peak at ${r.settings.intra_op_threads} thread(s)) | policy GFLOP/s (share) |`,
    '|---|---:|---|---:|---:|',
  );
  for (const m of r.models) {
    const f = m.flops;
    out.push(
      `| ${m.model} | ${(f.encoder.total / 1e6).toFixed(1)} | ${f.policy_by_tokens.map((p) => (p.flops.total / 1e6).toFixed(1)).join(' / ')} | ${f.achieved.encoder_gflops} (${(100 * f.achieved.encoder_share_of_peak).toFixed(0)}%) | ${f.achieved.policy_gflops} (${(100 * f.achieved.policy_share_of_peak).toFixed(0)}%) |`,
    );
  }
  out.push(
    '',
    'FLOPs are 2 × the multiply-adds of every MatMul, Gemm and Conv node, from the shapes each node sees when the fp32 graph runs on a real frame at that token count; achieved = FLOPs / the node stage p50 at all tokens.',
    '',
    '## 5. Start-up and memory',
    '',
    '| model | process start → first chunk (ms) | imported / ready / first chunk, child clock (ms) | peak RSS (MiB) after N frames |',
    '|---|---:|---|---:|',
  );
  for (const m of r.models) {
    const s = m.startup;
    out.push(
      s.available
        ? `| ${m.model} | ${s.process_start_to_first_chunk_ms} | ${s.phases_ms.imported} / ${s.phases_ms.ready} / ${s.phases_ms.first_chunk} | ${s.peak_rss_mib} (N = ${s.inferences}) |`
        : `| ${m.model} | skipped: ${s.reason} | | |`,
    );
  }
  out.push(
    '',
    'A fresh `node` process imports the built library, loads the package, creates and warms the sessions (`backend.warmup_runs`) and computes a chunk from a 128×128 simulator frame.',
    '',
    '## 6. Realistic-scale model',
    '',
  );
  const real = r.models.find((m) => m.model !== 'tiny-vla');
  out.push(
    real === undefined
      ? `Not measured: ${r.skipped.find((s) => s.what === 'realistic model')?.reason ?? 'no realistic model'}.`
      : `${real.model}: ${(real.parameters / 1e6).toFixed(1)}M parameters, ${real.visual_tokens} visual tokens, random weights (\`/usr/bin/python3 models/tiny-vla/train/make_realistic.py --out models/realistic-vla\`); its rows are in the tables above.`,
  );
  out.push(
    '',
    '## 7. Camera-frame ingest (`vla-node bench ingest`)',
    '',
    ...cameraIngestMarkdown(r.ingest),
  );
  if (r.skipped.length > 0)
    out.push('', '## Skipped', '', ...r.skipped.map((s) => `- ${s.what}: ${s.reason}`));
  return `${out.join('\n')}\n`;
}

/** The few lines printed at the end and quoted in the README. */
export function reportSummary(r: PerformanceReport): string {
  const lines = [
    `${r.machine.cpu}, ${r.machine.logical_cores} cores, ONNX Runtime ${r.machine.onnxruntime}`,
  ];
  for (const m of r.models) {
    const o = m.pipeline_overhead;
    lines.push(
      `${m.model}: node p50 ${o.node.median.p50} ms vs bare sessions ${o.bare.median.p50} ms (${o.ratio_p50.median}×)` +
        (m.pytorch.available
          ? `; PyTorch eager ${m.pytorch.latency.median.p50} ms (node ${m.pytorch.node_speedup_p50 ?? ''}× faster)`
          : `; PyTorch skipped`) +
        `; policy ${m.flops.achieved.policy_gflops} GFLOP/s = ${(100 * m.flops.achieved.policy_share_of_peak).toFixed(0)}% of the ${r.settings.intra_op_threads}-thread peak` +
        (m.startup.available
          ? `; start → first chunk ${m.startup.process_start_to_first_chunk_ms} ms, peak RSS ${m.startup.peak_rss_mib} MiB`
          : ''),
    );
  }
  for (const c of r.matrix.filter((c) => c.keep_ratio === 1 || c.keep_ratio === 0.25))
    lines.push(
      `${c.precision} keep ${c.keep_ratio}: success ${(100 * c.success_rate).toFixed(0)}%, p50 ${c.end_to_end_ms.p50} ms`,
    );
  return lines.join('\n');
}

async function realisticPackage(
  path: string,
  python: string,
  io: CommandIo,
): Promise<{ model?: ModelPackage; reason?: string }> {
  if (path === '') return { reason: 'disabled (--realistic "")' };
  const dir = resolve(path);
  if (!existsSync(join(dir, 'manifest.json'))) {
    const script = join(PACKAGE_ROOT, 'models', 'tiny-vla', 'train', 'make_realistic.py');
    io.progress(`generating the realistic-scale model: ${python} ${script} --out ${dir}`);
    try {
      await promisify(execFile)(python, [script, '--out', dir], { timeout: 10 * 60_000 });
    } catch (error) {
      return {
        reason: `${dir} does not exist and could not be generated (${error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)}); make it with ${python} models/tiny-vla/train/make_realistic.py --out ${path}`,
      };
    }
  }
  return { model: await loadModelPackage(dir) };
}

/** The files `bench report` writes into its --out folder. */
const REPORT_FILES = [
  'report.json',
  'report.md',
  'report.svg',
  'report.png',
  'report-matrix.svg',
  'report-matrix.png',
];

export const benchReportCommand: CommandSpec = {
  name: 'bench report',
  summary:
    'the performance report: node vs bare sessions vs PyTorch eager, fp32/int8 × keep ratios, FLOPs vs the measured matmul peak, start-up and memory, tiny and realistic-scale models',
  options: {
    out: {
      type: 'string',
      default: 'bench',
      help: 'folder for report.json, report.md, report.svg and report.png (existing ones need --force)',
    },
    ...FORCE_OPTION,
    repeats: { type: 'string', default: '3', help: 'repeats of each latency figure' },
    frames: { type: 'string', default: '200', help: 'frames per repeat (tiny model)' },
    'realistic-frames': {
      type: 'string',
      default: '40',
      help: 'frames per repeat for the realistic-scale model',
    },
    episodes: { type: 'string', default: '50', help: 'closed-loop episodes per matrix cell' },
    seed: { type: 'string', default: '1', help: 'seed of the scenes' },
    realistic: {
      type: 'string',
      default: 'models/realistic-vla',
      help: 'realistic-scale package (generated with make_realistic.py when missing; "" to skip)',
    },
    python: {
      type: 'string',
      default: '/usr/bin/python3',
      help: 'Python with PyTorch for the eager reference',
    },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const int = (name: string, min: number): number => {
      const v = Number(values[name]);
      if (!Number.isInteger(v) || v < min) {
        throw new ConfigError(
          `Expected an integer ≥ ${min} for --${name} but received ${String(values[name])}`,
          { field: name },
        );
      }
      return v;
    };
    const repeats = int('repeats', 1);
    const frames = int('frames', 1);
    const realisticFrames = int('realistic-frames', 1);
    const episodes = int('episodes', 1);
    const seed = int('seed', 0);
    const python = String(values.python);
    const base = await configFromArgs(values);
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out), files: REPORT_FILES }],
      [
        { what: 'the model package', path: resolvePackagePath(base.model.path), enclosing: true },
        ...(typeof values.realistic === 'string' && values.realistic !== ''
          ? [{ what: 'the realistic model package', path: values.realistic, enclosing: true }]
          : []),
      ],
    );
    const options = pipelineOptions(base, () => undefined);
    // 0 = ONNX Runtime's default: one thread per core.
    const threads =
      base.backend.intra_op_threads > 0 ? base.backend.intra_op_threads : os.availableParallelism();
    const skipped: { what: string; reason: string }[] = [];
    const machine = machineInfo();
    io.progress(
      `machine: ${machine.cpu}, ${machine.logical_cores} cores, ${machine.flags.join(' ')}`,
    );
    io.progress('matrix-multiply peak');
    const peak = await measureMatmulPeak({
      threads: [...new Set([1, threads, machine.logical_cores])].sort((a, b) => a - b),
    });
    // The stages are compared with the peak at the thread count they ran with.
    const peakAtThreads = peak.peak_gflops[String(threads)] ?? Number.NaN;
    io.progress(`peak ${JSON.stringify(peak.peak_gflops)} GFLOP/s by thread count`);
    const models: ModelReport[] = [];
    const tiny = await modelFromConfig(base);
    const settings = { repeats, frames, seed, python, threads };
    models.push(await modelReport(tiny, options, settings, peakAtThreads, io, true));
    const real = await realisticPackage(String(values.realistic), python, io);
    if (real.model !== undefined) {
      models.push(
        await modelReport(
          real.model,
          options,
          { ...settings, frames: realisticFrames },
          peakAtThreads,
          io,
          false,
        ),
      );
    } else skipped.push({ what: 'realistic model', reason: real.reason ?? '' });
    for (const m of models) {
      if (!m.pytorch.available)
        skipped.push({ what: `PyTorch reference (${m.model})`, reason: m.pytorch.reason });
      if (!m.startup.available)
        skipped.push({ what: `start-up probe (${m.model})`, reason: m.startup.reason });
    }
    io.progress('camera-frame ingest (as `vla-node bench ingest`)');
    // As many timed calls per ingest figure as frames per latency repeat (200 by default, as
    // bench ingest's --runs).
    const ingest = await measureCameraIngest(
      tiny,
      options,
      { runs: frames, repeats, frames },
      (line) => {
        io.progress(line);
      },
    );
    io.progress(`compression × pruning matrix (${episodes} episodes per cell)`);
    const cells = await matrix(base, episodes, repeats, io);
    const out = resolve(String(values.out));
    await mkdir(out, { recursive: true });
    const files = {
      json: join(out, 'report.json'),
      markdown: join(out, 'report.md'),
      svg: join(out, 'report.svg'),
      png: join(out, 'report.png'),
      matrix_svg: join(out, 'report-matrix.svg'),
      matrix_png: join(out, 'report-matrix.png'),
    };
    const report: PerformanceReport = {
      created: new Date().toISOString(),
      machine,
      settings: {
        intra_op_threads: threads,
        repeats,
        frames,
        episodes_per_cell: episodes,
        strategy: STRATEGY,
      },
      matmul_peak: peak,
      models,
      matrix: cells,
      ingest,
      skipped,
      files,
    };
    const bars = barChartSvg(
      models.map((m) => ({
        title: `${m.model}: frame → chunk p50 (ms)`,
        yLabel: 'ms',
        categories: ['bare sessions', 'node', 'PyTorch eager'],
        series: [
          {
            name: m.model,
            values: [
              m.pipeline_overhead.bare.median.p50,
              m.pipeline_overhead.node.median.p50,
              m.pytorch.available ? m.pytorch.latency.median.p50 : Number.NaN,
            ],
          },
        ],
      })),
    );
    const byPrecision = (f: (c: MatrixCell) => number) =>
      MATRIX_PRECISIONS.map((p) => ({
        name: p,
        points: cells.filter((c) => c.precision === p).map((c) => ({ x: c.keep_ratio, y: f(c) })),
      }));
    const lines = lineChartSvg([
      {
        title: 'closed-loop success (tiny-vla)',
        xLabel: 'keep ratio',
        yLabel: 'success',
        series: byPrecision((c) => c.success_rate),
        yMin: 0,
        yMax: 1,
      },
      {
        title: 'frame → chunk p50 (ms, tiny-vla)',
        xLabel: 'keep ratio',
        yLabel: 'ms',
        series: byPrecision((c) => c.end_to_end_ms.p50),
        yMin: 0,
      },
    ]);
    await writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(files.markdown, reportMarkdown(report));
    await writeFile(files.svg, bars);
    await sharp(Buffer.from(bars)).png().toFile(files.png);
    await writeFile(files.matrix_svg, lines);
    await sharp(Buffer.from(lines)).png().toFile(files.matrix_png);
    io.result(report, reportSummary(report));
    return 0;
  },
};
