import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import { sessionOptionsFor } from '../backend/onnx.js';
import { FrameIngest } from '../ingest/index.js';
import { selectVariant, type ModelPackage } from '../model/manifest.js';
import { VlaPipeline, type PipelineOptions } from '../pipeline/pipeline.js';
import { LatencyHistogram, type LatencySummary } from '../runtime/latency.js';
import type { BenchObservation } from './frames.js';
import { median, round } from '../util/stats.js';

/** Percentiles of several repeats and how far they spread. */
export interface Repeated {
  readonly repeats: readonly LatencySummary[];
  /** Median over repeats of each percentile. */
  readonly median: {
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly max: number;
  };
  /** (max − min) / median of the per-repeat p50, in percent. */
  readonly p50_spread_pct: number;
}

export interface OverheadResult {
  readonly frames: number;
  /** The execution provider both ran on. */
  readonly provider: string;
  /** The node: `VlaPipeline.infer` from an RGB8 frame at the model's size to a safe chunk in manifest units. */
  readonly node: Repeated;
  /** The same two ONNX Runtime sessions (same file, options, provider) called in a bare loop on
   * pre-normalised tensors: encoder, then policy on all its tokens; no copies, no post-processing. */
  readonly bare: Repeated;
  /** node p50 / bare p50 per repeat, and its median. */
  readonly ratio_p50: { readonly repeats: readonly number[]; readonly median: number };
  /** Median per-stage p50 of the node (ms). */
  readonly node_stages_p50: Readonly<Record<string, number>>;
  /** The node's actions for each observation (last repeat), for cross-checks. */
  readonly actions: readonly Float32Array[];
}

/** Run `f`, recording how long it took in `histogram`. */
async function timed(histogram: LatencyHistogram, f: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  await f();
  histogram.record(performance.now() - t0);
}

export function repeated(summaries: readonly LatencySummary[]): Repeated {
  const med = (f: (s: LatencySummary) => number): number => median(summaries.map(f));
  const p50s = summaries.map((s) => s.p50);
  const m = med((s) => s.p50);
  return {
    repeats: summaries,
    median: { p50: m, p95: med((s) => s.p95), p99: med((s) => s.p99), max: med((s) => s.max) },
    p50_spread_pct: m > 0 ? round(((Math.max(...p50s) - Math.min(...p50s)) / m) * 100, 1) : 0,
  };
}

/**
 * Frame → chunk latency of the node against the floor: the same sessions in a bare loop on the
 * same observations, interleaved call by call so both see the same machine state. All tokens
 * (no pruning), no latency budget, fp32 unless `options.precision` says otherwise.
 */
export async function measureOverhead(
  model: ModelPackage,
  options: PipelineOptions,
  observations: readonly BenchObservation[],
  repeats: number,
  warmup = 20,
): Promise<OverheadResult> {
  const m = model.manifest;
  const pipelineOptions: PipelineOptions = {
    ...options,
    pruning: { ...options.pruning, strategy: 'none', keepRatio: 1, keepCount: 0 },
    latencyBudgetMs: 0,
  };
  const pipeline = await VlaPipeline.create(model, pipelineOptions);
  const variant = selectVariant(model, pipeline.precision);
  // The very options the node's sessions were made with, on the provider they run on.
  const sessionOptions = sessionOptionsFor(pipeline.provider, model, options.backend);
  const encoder = await ort.InferenceSession.create(variant.paths.encoder, sessionOptions);
  const policy = await ort.InferenceSession.create(variant.paths.policy, sessionOptions);
  try {
    const ingest = new FrameIngest(m.image);
    const grid = m.patch_grid.width * m.patch_grid.height;
    const positions = new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: grid }, (_, i) => BigInt(i)),
      [1, grid],
    );
    const enc = m.graphs.encoder;
    const pol = m.graphs.policy;
    const names = {
      pixels: enc.inputs[0]?.name ?? '',
      tokens: enc.outputs[0]?.name ?? '',
      vt: pol.inputs[0]?.name ?? '',
      vp: pol.inputs[1]?.name ?? '',
      vi: pol.inputs[2]?.name ?? '',
      vs: pol.inputs[3]?.name ?? '',
    };
    const bareInputs = await Promise.all(
      observations.map(async (o) => {
        const pixels = new Float32Array(3 * m.image.width * m.image.height);
        await ingest.toTensor(o.frame, pixels);
        const ids = new BigInt64Array(m.tokenizer.max_length);
        model.tokenizer.encodeInto(o.instruction, ids);
        const state = Float32Array.from(
          o.state,
          (v, i) => (v - (m.state.mean[i] as number)) / (m.state.std[i] as number),
        );
        return {
          pixels: new ort.Tensor('float32', pixels, [1, 3, m.image.height, m.image.width]),
          ids: new ort.Tensor('int64', ids, [1, ids.length]),
          state: new ort.Tensor('float32', state, [1, state.length]),
        };
      }),
    );
    const bareOnce = async (i: number): Promise<void> => {
      const x = bareInputs[i % bareInputs.length];
      if (x === undefined) return;
      const e = await encoder.run({ [names.pixels]: x.pixels });
      const tokens = e[names.tokens];
      if (tokens === undefined) throw new Error('the encoder returned no tokens');
      await policy.run({
        [names.vt]: tokens,
        [names.vp]: positions,
        [names.vi]: x.ids,
        [names.vs]: x.state,
      });
    };
    const actions: Float32Array[] = [];
    const nodeOnce = async (i: number, keep: boolean): Promise<void> => {
      const o = observations[i % observations.length];
      if (o === undefined) return;
      const chunk = await pipeline.infer({
        frame: o.frame,
        instruction: o.instruction,
        state: o.state,
      });
      if (keep) actions[i] = chunk.actions;
    };
    for (let i = 0; i < warmup; i++) {
      await nodeOnce(i, false);
      await bareOnce(i);
    }
    const nodeRuns: LatencySummary[] = [];
    const bareRuns: LatencySummary[] = [];
    const stageRuns: Record<string, number>[] = [];
    for (let r = 0; r < repeats; r++) {
      const node = new LatencyHistogram();
      const bare = new LatencyHistogram();
      for (const s of Object.values(pipeline.latency.stages)) s.reset();
      // Call by call, taking turns at going first: a shared host's speed changes within the tens
      // of milliseconds a block of calls takes, and node and bare timed in blocks apart carried
      // that change into their ratio (0.88-1.46 between the repeats of one run).
      const timeNode = (i: number): Promise<void> =>
        timed(node, () => nodeOnce(i, r === repeats - 1));
      const timeBare = (i: number): Promise<void> => timed(bare, () => bareOnce(i));
      for (let i = 0; i < observations.length; i++) {
        const [first, second] = (i + r) % 2 === 0 ? [timeNode, timeBare] : [timeBare, timeNode];
        await first(i);
        await second(i);
      }
      nodeRuns.push(node.summary());
      bareRuns.push(bare.summary());
      stageRuns.push(
        Object.fromEntries(
          Object.entries(pipeline.latency.stages).map(([k, h]) => [k, h.summary().p50]),
        ),
      );
    }
    const ratios = nodeRuns.map((n, i) => round(n.p50 / (bareRuns[i]?.p50 ?? Number.NaN)));
    return {
      frames: observations.length,
      provider: pipeline.provider,
      node: repeated(nodeRuns),
      bare: repeated(bareRuns),
      ratio_p50: { repeats: ratios, median: median(ratios) },
      node_stages_p50: Object.fromEntries(
        Object.keys(stageRuns[0] ?? {}).map((k) => [k, median(stageRuns.map((s) => s[k] ?? 0))]),
      ),
      actions,
    };
  } finally {
    await Promise.all([encoder.release(), policy.release(), pipeline.release()]);
  }
}
