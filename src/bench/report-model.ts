/**
 * The per-model sections of `vla-node bench report`: pipeline overhead, the PyTorch reference,
 * FLOPs against the peak, start-up and latency by keep ratio; and the realistic-scale package.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import { PACKAGE_ROOT } from '../config/config.js';
import { FrameIngest } from '../ingest/index.js';
import { loadModelPackage, selectVariant, type ModelPackage } from '../model/manifest.js';
import type { PipelineOptions } from '../pipeline/pipeline.js';
import { graphOf, loadOnnx } from '../util/onnx-graph.js';
import { round } from '../util/stats.js';
import { benchObservations, type BenchObservation } from './frames.js';
import { countFlops, type FlopCount } from './flops.js';
import { measureKeepRatios } from './keep.js';
import { measureOverhead, type OverheadResult } from './overhead.js';
import { RATIOS, STRATEGY, type ModelReport } from './report-types.js';
import { measureStartup } from './startup.js';
import { measureTorch } from './torch.js';

/** Where the report's sections print their progress (the command's `io`). */
export interface ReportProgress {
  progress(line: string): void;
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

/** One model's latency sections (see {@link ModelReport}). */
export async function modelReport(
  model: ModelPackage,
  options: PipelineOptions,
  settings: { repeats: number; frames: number; seed: number; python: string; threads: number },
  peak: number,
  io: ReportProgress,
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

/**
 * The realistic-scale package at `path`, generated with make_realistic.py when missing, or why
 * there is none.
 */
export async function realisticPackage(
  path: string,
  python: string,
  io: ReportProgress,
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
