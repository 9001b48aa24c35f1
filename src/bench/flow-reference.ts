/**
 * The flow-matching family in the performance report: the node's FlowPolicy (every camera, the
 * prefix, K Euler steps of the expert) against PyTorch eager of the same weights, on the same
 * simulator observations and from the same initial noise, so that the largest action difference
 * shows the node computes what the recipe's model computes.
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { FlowPackage } from '../model/flow-manifest.js';
import { FlowPolicy } from '../flow/policy.js';
import type { RawFrame } from '../ingest/index.js';
import { LatencyHistogram, type LatencySummary } from '../runtime/latency.js';
import { simCameraFrames } from '../sim/flow-agent.js';
import { TabletopSim } from '../sim/tabletop.js';
import { episodeSeed, Rng } from '../util/rng.js';
import { median, round } from '../util/stats.js';
import { repeated, type Repeated } from './overhead.js';
import { runTorchReference, type TorchResult } from './torch.js';

/** One simulator observation with a frame per camera of the package, in manifest order. */
interface FlowObservation {
  readonly frames: readonly RawFrame[];
  readonly state: Float32Array;
  readonly instruction: string;
  /** The initial noise, horizon × action_dim, normalised units. */
  readonly noise: Float32Array;
}

export interface FlowReferenceSettings {
  readonly frames: number;
  readonly repeats: number;
  readonly seed: number;
  /** Denoising steps (default: the manifest's). */
  readonly steps?: number;
  readonly threads: number;
  readonly python: string;
}

export interface FlowReferenceReport {
  readonly model: string;
  readonly cameras: readonly string[];
  readonly steps: number;
  readonly frames: number;
  /** FlowPolicy.infer from the cameras' frames to a clamped chunk, instruction cache on, all tokens kept. */
  readonly node: Repeated;
  readonly node_stages_p50: Readonly<Record<string, number>>;
  readonly pytorch: TorchResult | (TorchResult & { readonly node_speedup_p50: number });
}

/** `count` observations of seeded tabletop scenes, each camera rendered at its model size. */
function flowObservations(pkg: FlowPackage, count: number, seed: number): FlowObservation[] {
  const m = pkg.manifest;
  const names = m.cameras.map((c) => c.name);
  const image = m.cameras[0]?.image ?? { width: 64, height: 64 };
  const n = m.chunk.horizon * m.chunk.action_dim;
  const out: FlowObservation[] = [];
  for (let i = 0; i < count; i++) {
    const sim = new TabletopSim({
      seed: episodeSeed(seed, i),
      cameraWidth: image.width,
      cameraHeight: image.height,
    });
    const obs = sim.observe();
    // The simulator reuses its image buffers between renders: each observation keeps a copy.
    const frames = simCameraFrames(names, obs, sim).map((f) => {
      const raw = f as RawFrame;
      return { ...raw, data: raw.data.slice() };
    });
    const rng = new Rng(episodeSeed(seed ^ 0x5eed, i));
    out.push({
      frames,
      state: obs.state.slice(),
      instruction: obs.instruction,
      noise: Float32Array.from({ length: n }, () => rng.normal()),
    });
  }
  return out;
}

/**
 * Time the node's FlowPolicy and PyTorch eager (the recipe's bench_torch.py beside its model.py)
 * on the same observations and noise; PyTorch is reported unavailable, with the reason, when
 * Python, PyTorch or the checkpoint is missing.
 */
export async function measureFlowReference(
  pkg: FlowPackage,
  settings: FlowReferenceSettings,
): Promise<FlowReferenceReport> {
  const m = pkg.manifest;
  const steps = settings.steps ?? m.denoising.steps;
  const observations = flowObservations(pkg, settings.frames, settings.seed);
  const policy = await FlowPolicy.create(pkg, {
    steps,
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
    caches: { instruction: true, visualThreshold: null, visualCameras: [] },
    intraOpThreads: settings.threads,
  });
  const actions: Float32Array[] = [];
  const summaries: LatencySummary[] = [];
  const stages: Record<string, number[]> = {};
  try {
    const once = async (o: FlowObservation) =>
      policy.infer({
        images: o.frames,
        instruction: o.instruction,
        state: o.state,
        seed: 0,
        noise: o.noise,
      });
    for (const o of observations.slice(0, 5)) await once(o);
    for (let r = 0; r < settings.repeats; r++) {
      const h = new LatencyHistogram();
      const byStage: Record<string, number[]> = {};
      for (const [i, o] of observations.entries()) {
        const t0 = performance.now();
        const result = await once(o);
        h.record(performance.now() - t0);
        if (r === settings.repeats - 1) actions[i] = result.actions;
        for (const [k, v] of Object.entries(result.timings) as [string, number][])
          (byStage[k] ??= []).push(v);
      }
      summaries.push(h.summary());
      for (const [k, v] of Object.entries(byStage)) (stages[k] ??= []).push(median(v));
    }
  } finally {
    await policy.release();
  }
  const node = repeated(summaries);
  const cams = m.cameras.length;
  const image = m.cameras[0]?.image ?? { width: 0, height: 0 };
  const frameBytes = image.width * image.height * 3;
  const L = m.tokenizer.max_length;
  const S = m.state.names.length;
  const H = m.chunk.horizon * m.chunk.action_dim;
  const frames = new Uint8Array(observations.length * cams * frameBytes);
  const states = new Float32Array(observations.length * S);
  const ids = new BigInt64Array(observations.length * L);
  const noise = new Float32Array(observations.length * H);
  const expected = new Float32Array(observations.length * H);
  observations.forEach((o, i) => {
    o.frames.forEach((f, c) => {
      frames.set(f.data, (i * cams + c) * frameBytes);
    });
    states.set(o.state, i * S);
    pkg.tokenizer.encodeInto(o.instruction, ids.subarray(i * L, (i + 1) * L));
    noise.set(o.noise, i * H);
    expected.set(actions[i] ?? new Float32Array(H), i * H);
  });
  const checkpoint = join(pkg.dir, 'train', 'checkpoint.pt');
  const script = join(pkg.dir, 'train', 'bench_torch.py');
  const torch = await runTorchReference(
    pkg,
    {
      'frames.u8': frames,
      'states.f32': states,
      'ids.i64': ids,
      'noise.f32': noise,
      'expected.f32': expected,
    },
    ['--steps', String(steps)],
    {
      python: settings.python,
      script,
      checkpoint,
      threads: settings.threads,
      repeats: settings.repeats,
    },
  );
  return {
    model: m.name,
    cameras: m.cameras.map((c) => c.name),
    steps,
    frames: observations.length,
    node,
    node_stages_p50: Object.fromEntries(
      Object.entries(stages).map(([k, v]) => [k, round(median(v), 3)]),
    ),
    pytorch: torch.available
      ? { ...torch, node_speedup_p50: round(torch.latency.median.p50 / node.median.p50, 2) }
      : torch,
  };
}

/** Section 8 of the report: the flow package, node against PyTorch eager. */
export function flowReferenceMarkdown(r: FlowReferenceReport): string[] {
  const n = r.node.median;
  const t = r.pytorch;
  const stages = Object.entries(r.node_stages_p50)
    .filter(([k]) => k !== 'total')
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `## 8. Flow-matching family (${r.model}: cameras ${r.cameras.join(' + ')}, ${r.steps} denoising steps)`,
    '',
    '| | p50 | p95 | max |',
    '|---|---:|---:|---:|',
    `| node (FlowPolicy: every camera, prefix, ${r.steps} expert steps, clamp) | ${n.p50} ms | ${n.p95} ms | ${n.max} ms |`,
    t.available
      ? `| PyTorch eager ${t.torch} (same weights, observations and initial noise; ${t.threads} thread${t.threads === 1 ? '' : 's'}) | ${t.latency.median.p50} ms | ${t.latency.median.p95} ms | ${t.latency.median.max} ms |`
      : `| PyTorch eager | skipped: ${t.reason} | | |`,
    '',
    `${r.frames} simulator observations per repeat; the node's instruction cache on (exact), every visual token kept, no cross-frame reuse, so both compute the same chunk. Node stages p50 (ms): ${stages}.` +
      (t.available
        ? ` Largest action difference PyTorch − node: ${t.max_abs_diff_vs_node.toExponential(1)}; the node is ${'node_speedup_p50' in t ? t.node_speedup_p50 : ''}× faster at p50.`
        : ''),
  ];
}
