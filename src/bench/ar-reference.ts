/**
 * The autoregressive family in the performance report: the node's ArPolicy (encoder, every visual
 * token, prefill, greedy decoding with the key-value cache kept in ONNX Runtime's tensors) against
 * PyTorch eager of the same weights decoding greedily with its own key-value cache, on the same
 * simulator observations. Greedy decoding is a sequence of argmaxes, so both must choose the same
 * tokens: the report counts the tokens that agree, and the largest action difference shows the
 * de-tokenizing agrees too. Jacobi and speculative decoding run on the same observations for their
 * decoder calls per chunk (each must give greedy's tokens).
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { FrameIngest } from '../ingest/ingest.js';
import { ArPolicy, type ArAction, type ArActOptions } from '../policy/autoregressive/policy.js';
import { LatencyHistogram, type LatencySummary } from '../runtime/latency.js';
import { TabletopSim } from '../sim/tabletop.js';
import { episodeSeed } from '../util/rng.js';
import { round } from '../util/stats.js';
import { repeated, type Repeated } from './overhead.js';
import {
  runTorchProcesses,
  TORCH_MODULES,
  torchResult,
  type TorchOutput,
  type TorchResult,
} from './torch.js';

/** Chunks decoded per simulated episode before the next episode starts (scenes vary). */
const CHUNKS_PER_EPISODE = 4;
/** Observations decoded by each strategy before anything is timed (ONNX Runtime's first runs). */
const WARMUP = 5;

export interface ArReferenceSettings {
  readonly frames: number;
  readonly repeats: number;
  readonly seed: number;
  readonly threads: number;
  readonly python: string;
  /** Steps of a chunk executed before the next observation (default 4, as `bench decode`). */
  readonly executeSteps?: number;
  /** Tokens fed per Jacobi or speculative decoder call (default 8, as `bench decode`). */
  readonly window?: number;
}

/** Where the node's and PyTorch's greedy tokens part, if anywhere. */
export interface TokenAgreement {
  readonly chunks: number;
  readonly chunks_equal: number;
  readonly tokens: number;
  readonly tokens_equal: number;
  /** The first token that differs (chunk and position), or null when every token agrees. */
  readonly first_difference: {
    readonly chunk: number;
    readonly index: number;
    readonly node: number | null;
    readonly pytorch: number | null;
  } | null;
}

/** One decoding strategy of the node on the observations. */
export interface ArStrategyFigures {
  readonly strategy: ArActOptions['strategy'];
  readonly chunk_p50_ms: number;
  readonly chunk_p95_ms: number;
  /** Sequential decoder calls after the prefill, per chunk. */
  readonly decoder_calls_per_chunk: number;
  /** Every chunk's tokens equal greedy's. */
  readonly same_tokens_as_greedy: boolean;
}

/** PyTorch eager's timing, its decoder calls and how its greedy tokens agree with the node's. */
export type ArTorchComparison = TorchResult & {
  readonly available: true;
  readonly decoder_calls_per_chunk: number;
  readonly tokens: TokenAgreement;
};

export interface ArReferenceReport {
  readonly model: string;
  readonly frames: number;
  readonly episodes: number;
  readonly tokens_per_chunk: number;
  /** Steps of each chunk the simulator executed before the next observation. */
  readonly execute_steps: number;
  /** Tokens fed per Jacobi or speculative decoder call. */
  readonly window: number;
  /**
   * The package has an instruction graph: the node computes the words' keys and values once per
   * instruction and keeps them across frames (exact; PyTorch recomputes the whole prefix).
   */
  readonly instruction_cache: boolean;
  /** Intra-op threads of ONNX Runtime and of PyTorch. */
  readonly threads: number;
  /** Frame (RGB8 at the model's size) → clamped chunk, greedy, every visual token, per chunk. */
  readonly node: Repeated;
  readonly strategies: readonly ArStrategyFigures[];
  readonly pytorch:
    | (TorchResult & { readonly available: false })
    | (ArTorchComparison & { readonly node_speedup_p50: number });
}

/** One recorded observation: the camera frame at the model's size, as RGB8. */
interface ArRecord {
  readonly rgb: Uint8Array;
  readonly state: Float32Array;
  readonly instruction: string;
  readonly episode: number;
}

/**
 * Compares the node's greedy tokens with PyTorch's, chunk by chunk (a chunk of a different length
 * differs at the first position one of them lacks).
 */
export function compareTokens(
  node: readonly (readonly number[])[],
  pytorch: readonly (readonly number[])[],
): TokenAgreement {
  let chunksEqual = 0;
  let tokens = 0;
  let tokensEqual = 0;
  let first: TokenAgreement['first_difference'] = null;
  const chunks = Math.max(node.length, pytorch.length);
  for (let c = 0; c < chunks; c++) {
    const a = node[c] ?? [];
    const b = pytorch[c] ?? [];
    const n = Math.max(a.length, b.length);
    let equal = a.length === b.length;
    for (let i = 0; i < n; i++) {
      tokens++;
      if (a[i] !== undefined && a[i] === b[i]) tokensEqual++;
      else {
        equal = false;
        first ??= { chunk: c, index: i, node: a[i] ?? null, pytorch: b[i] ?? null };
      }
    }
    if (equal) chunksEqual++;
  }
  return {
    chunks,
    chunks_equal: chunksEqual,
    tokens,
    tokens_equal: tokensEqual,
    first_difference: first,
  };
}

/**
 * Observations along simulated episodes: each chunk decoded greedily by the node is executed for
 * `executeSteps` steps before the next observation (so a speculative draft, the previous chunk
 * shifted, is what a robot would have), at most {@link CHUNKS_PER_EPISODE} per episode.
 */
async function recordObservations(
  policy: ArPolicy,
  ingest: FrameIngest,
  count: number,
  seed: number,
  executeSteps: number,
): Promise<ArRecord[]> {
  const { image, actionDim } = policy.pkg;
  const pixels = new Float32Array(3 * image.width * image.height);
  const out: ArRecord[] = [];
  for (let e = 0; out.length < count; e++) {
    const sim = new TabletopSim({
      seed: episodeSeed(seed, e),
      cameraWidth: image.width,
      cameraHeight: image.height,
    });
    for (let c = 0; c < CHUNKS_PER_EPISODE && !sim.done && out.length < count; c++) {
      const obs = sim.observe();
      // The simulator reuses its image buffer between renders: each record keeps a copy.
      const rgb = (await ingest.toRgb(obs.image)).slice();
      ingest.normalise(rgb, pixels);
      const record = { rgb, state: obs.state.slice(), instruction: obs.instruction, episode: e };
      const r = await policy.act({ ...record, pixels }, { strategy: 'greedy' });
      out.push(record);
      for (let s = 0; s < executeSteps; s++)
        if (sim.step(r.actions.subarray(s * actionDim, (s + 1) * actionDim))) break;
    }
  }
  return out;
}

/** The medians rounded to the microsecond (a median of two repeats is their mean). */
function tidy(r: Repeated): Repeated {
  const m = r.median;
  return {
    ...r,
    median: {
      p50: round(m.p50, 3),
      p95: round(m.p95, 3),
      p99: round(m.p99, 3),
      max: round(m.max, 3),
    },
  };
}

/** What the autoregressive recipe's bench_torch.py imports (its FAST tokenizer's DCT is scipy's). */
export const AR_TORCH_MODULES = [...TORCH_MODULES, 'scipy'] as const;

/**
 * Time the node's ArPolicy (greedy, then Jacobi and speculative once) and PyTorch eager (the
 * recipe's bench_torch.py beside its model.py, reading the package's train/checkpoint.pt) on the
 * same observations; PyTorch is reported unavailable, with the reason, when Python, PyTorch or the
 * checkpoint is missing.
 */
export async function measureArReference(
  dir: string,
  settings: ArReferenceSettings,
): Promise<ArReferenceReport> {
  const policy = await ArPolicy.load(dir, {
    intraOpNumThreads: settings.threads,
    interOpNumThreads: 1,
  });
  const pkg = policy.pkg;
  const instructionCache = policy.graphs.instructionSession !== undefined;
  const executeSteps = settings.executeSteps ?? 4;
  const window = settings.window ?? 8;
  const ingest = new FrameIngest({
    width: pkg.image.width,
    height: pkg.image.height,
    ...pkg.normalisation,
  });
  const pixels = new Float32Array(3 * pkg.image.width * pkg.image.height);
  let records: ArRecord[];
  let node: Repeated | undefined;
  const greedy: ArAction[] = [];
  const strategies: ArStrategyFigures[] = [];
  try {
    records = await recordObservations(
      policy,
      ingest,
      settings.frames,
      settings.seed,
      executeSteps,
    );
    // Frame → chunk as the node computes it: the frame to RGB at the model's size, normalised,
    // encoded, prefilled and decoded, the tokens turned into clamped absolute actions.
    const once = async (
      o: ArRecord,
      options: ArActOptions,
    ): Promise<{ ms: number; result: ArAction }> => {
      const t0 = performance.now();
      const rgb = await ingest.toRgb({
        kind: 'raw',
        encoding: 'rgb8',
        width: pkg.image.width,
        height: pkg.image.height,
        data: o.rgb,
      });
      ingest.normalise(rgb, pixels);
      const result = await policy.act({ ...o, rgb, pixels }, options);
      return { ms: performance.now() - t0, result };
    };
    // Each strategy warms up: a call feeding many tokens is a new shape to ONNX Runtime.
    for (const o of records.slice(0, WARMUP))
      for (const strategy of ['greedy', 'jacobi', 'speculative'] as const)
        await once(o, { strategy, window });
    const calls = (results: readonly ArAction[]): number =>
      round(results.reduce((s, r) => s + r.decoderCalls, 0) / Math.max(1, results.length), 2);
    // `repeats` timed passes over every observation; the chunks of the last one.
    const timed = async (
      strategy: ArActOptions['strategy'],
    ): Promise<{ latency: Repeated; results: ArAction[] }> => {
      const runs: LatencySummary[] = [];
      const results: ArAction[] = [];
      for (let r = 0; r < settings.repeats; r++) {
        const h = new LatencyHistogram();
        for (const [i, o] of records.entries()) {
          const before = records[i - 1];
          // The robot's previous chunk of the same episode is the speculative draft.
          const previous =
            strategy === 'speculative' && before?.episode === o.episode
              ? { actions: (greedy[i - 1] as ArAction).actions, stepsExecuted: executeSteps }
              : undefined;
          const { ms, result } = await once(o, {
            strategy,
            window,
            ...(previous === undefined ? {} : { previous }),
          });
          h.record(ms);
          results[i] = result;
        }
        runs.push(h.summary());
      }
      return { latency: tidy(repeated(runs)), results };
    };
    for (const strategy of ['greedy', 'jacobi', 'speculative'] as const) {
      const { latency, results } = await timed(strategy);
      if (strategy === 'greedy') {
        node = latency;
        greedy.push(...results);
      }
      strategies.push({
        strategy,
        chunk_p50_ms: round(latency.median.p50, 3),
        chunk_p95_ms: round(latency.median.p95, 3),
        decoder_calls_per_chunk: calls(results),
        same_tokens_as_greedy:
          compareTokens(
            greedy.map((g) => g.tokens),
            results.map((x) => x.tokens),
          ).chunks_equal === records.length,
      });
    }
  } finally {
    await policy.close();
  }
  if (node === undefined) throw new Error('greedy decoding was not timed');
  const pytorch = await pytorchReference(dir, pkg, records, greedy, settings);
  return {
    model: pkg.name,
    frames: records.length,
    episodes: new Set(records.map((r) => r.episode)).size,
    tokens_per_chunk: pkg.tokenizer.maxTokens,
    execute_steps: executeSteps,
    window,
    instruction_cache: instructionCache,
    threads: settings.threads,
    node,
    strategies,
    pytorch: pytorch.available
      ? {
          ...pytorch,
          latency: tidy(pytorch.latency),
          node_speedup_p50: round(pytorch.latency.median.p50 / node.median.p50, 2),
        }
      : pytorch,
  };
}

/** PyTorch eager on the recorded observations, its tokens compared with the node's greedy ones. */
async function pytorchReference(
  dir: string,
  pkg: ArPolicy['pkg'],
  records: readonly ArRecord[],
  greedy: readonly ArAction[],
  settings: ArReferenceSettings,
): Promise<ArTorchComparison | (TorchResult & { readonly available: false })> {
  const frameBytes = pkg.image.width * pkg.image.height * 3;
  const L = pkg.words.maxLength;
  const S = pkg.stateMean.length;
  const H = pkg.horizon * pkg.actionDim;
  const frames = new Uint8Array(records.length * frameBytes);
  const states = new Float32Array(records.length * S);
  const ids = new BigInt64Array(records.length * L);
  const expected = new Float32Array(records.length * H);
  records.forEach((o, i) => {
    frames.set(o.rgb, i * frameBytes);
    states.set(o.state, i * S);
    pkg.words.encodeInto(o.instruction, ids.subarray(i * L, (i + 1) * L));
    expected.set((greedy[i] as ArAction).actions, i * H);
  });
  const run = await runTorchProcesses(
    { dir },
    { 'frames.u8': frames, 'states.f32': states, 'ids.i64': ids, 'expected.f32': expected },
    [],
    {
      python: settings.python,
      script: join(dir, 'train', 'bench_torch.py'),
      checkpoint: join(dir, 'train', 'checkpoint.pt'),
      threads: settings.threads,
      repeats: settings.repeats,
      modules: AR_TORCH_MODULES,
    },
  );
  if (!run.available) return run;
  const result = torchResult(run.outputs);
  if (!result.available) return result;
  const node = greedy.map((g) => g.tokens);
  // Every process must have chosen the node's tokens: the worst agreement is reported.
  const agreements = run.outputs.map((o: TorchOutput) =>
    compareTokens(node, Array.isArray(o.tokens) ? (o.tokens as number[][]) : []),
  );
  const tokens = agreements.reduce<TokenAgreement>(
    (worst, a) => (a.tokens_equal < worst.tokens_equal ? a : worst),
    compareTokens(node, node),
  );
  const calls = run.outputs[0]?.decoder_calls_per_chunk;
  return {
    ...result,
    decoder_calls_per_chunk: typeof calls === 'number' ? calls : Number.NaN,
    tokens,
  };
}

/** The report's section on the autoregressive package, node against PyTorch eager. */
export function arReferenceMarkdown(r: ArReferenceReport, section = 9): string[] {
  const n = r.node.median;
  const t = r.pytorch;
  const g = r.strategies.find((s) => s.strategy === 'greedy');
  const agreement = t.available
    ? `${t.tokens.tokens_equal} / ${t.tokens.tokens} tokens (${t.tokens.chunks_equal} / ${t.tokens.chunks} chunks)`
    : '';
  const lines = [
    `## ${section}. PyTorch eager, autoregressive (${r.model}: ${r.tokens_per_chunk} action tokens per chunk, greedy with a key-value cache)`,
    '',
    '| | chunk p50 | p95 | max | decoder calls per chunk | greedy tokens equal |',
    '|---|---:|---:|---:|---:|---|',
    `| node (ArPolicy greedy: ingest, encoder, every visual token, prefill, decoder, clamp) | ${n.p50} ms | ${n.p95} ms | ${n.max} ms | ${g?.decoder_calls_per_chunk ?? ''} | (reference) |`,
    t.available
      ? `| PyTorch eager ${t.torch} (same weights and observations; ${t.threads} thread${t.threads === 1 ? '' : 's'}) | ${t.latency.median.p50} ms | ${t.latency.median.p95} ms | ${t.latency.median.max} ms | ${t.decoder_calls_per_chunk} | ${agreement} |`
      : `| PyTorch eager | skipped: ${t.reason} | | | | |`,
    ...r.strategies
      .filter((s) => s.strategy !== 'greedy')
      .map(
        (s) =>
          `| node, ${s.strategy} decoding | ${s.chunk_p50_ms} ms | ${s.chunk_p95_ms} ms | | ${s.decoder_calls_per_chunk} | ${s.same_tokens_as_greedy ? 'all chunks' : '**no**'} |`,
      ),
    '',
    `${r.frames} simulator observations from ${r.episodes} episodes (each greedy chunk executed for ${r.execute_steps} steps before the next observation), the camera frame rendered at the model's size, every visual token kept${r.instruction_cache ? ", the instruction's keys and values computed once per instruction by the node (the package's instruction graph; exact) and for every observation by PyTorch (the recipe's full prefill)" : ', the whole prefix (instruction, visual tokens, state) computed for every observation by both'}; ${r.threads} intra-op thread${r.threads === 1 ? '' : 's'} for ONNX Runtime and PyTorch alike; median of ${r.node.repeats.length} repeat${r.node.repeats.length === 1 ? '' : 's'} (PyTorch: one process per repeat). Both decode greedily, one decoder call per token after the prefill, each reusing the keys and values of everything before it; the last column counts PyTorch's tokens equal to the node's, and each faster decoder's chunks equal to greedy's. Jacobi and speculative decoding feed ${r.window} tokens per call (speculative drafts: the previous chunk shifted by the steps executed).` +
      (t.available
        ? ` Largest action difference PyTorch − node: ${t.max_abs_diff_vs_node.toExponential(1)}; the node is ${t.node_speedup_p50}× faster at p50.` +
          (t.tokens.first_difference === null
            ? ''
            : ` First token that differs: chunk ${t.tokens.first_difference.chunk}, position ${t.tokens.first_difference.index} (node ${String(t.tokens.first_difference.node)}, PyTorch ${String(t.tokens.first_difference.pytorch)}).`)
        : ''),
  ];
  return lines;
}
