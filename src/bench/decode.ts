/**
 * The autoregressive family's decoding benchmark: the same closed-loop episodes on the simulator
 * decoded greedily, by Jacobi iteration and speculatively (draft = the previous chunk shifted by
 * the steps executed). Every strategy is exact, so success and steps must be the same; what
 * changes is the number of sequential decoder calls per chunk and the time per chunk. Visual tokens
 * may be pruned before the prefill, at a fixed budget or under the latency-budget controller.
 * The prefill is also timed alone: as the runtime runs it each frame and with the instruction's
 * keys and values recomputed, which is what the instruction graph's cache saves.
 */
import { performance } from 'node:perf_hooks';
import { FrameIngest } from '../ingest/ingest.js';
import type { Precision } from '../model/manifest.js';
import type { InstructionCacheStats } from '../policy/autoregressive/instruction-cache.js';
import { ArPolicy, type ArActOptions } from '../policy/autoregressive/policy.js';
import { PrunedArPolicy, type ArPruningOptions } from '../policy/autoregressive/pruned.js';
import { runEpisodes, type Agent } from '../sim/runner.js';
import { median, round } from '../util/stats.js';

/** Chunks each strategy decodes before timing starts. */
const WARMUP_CHUNKS = 3;
/** Timed prefills of each kind (cached and recomputed instruction, alternated). */
const PREFILL_ROUNDS = 200;

/** The prefill alone, per frame, with every visual token. */
export interface PrefillTiming {
  /** Whether the package has the instruction graph (the words' keys and values kept across frames). */
  readonly instruction_graph: boolean;
  readonly rounds: number;
  readonly visual_tokens: number;
  /** The prefill as the runtime runs it each frame (with the instruction graph: the words' cache reused). */
  readonly p50_ms: number;
  readonly p95_ms: number;
  /**
   * The words recomputed every frame: the instruction graph + the prefill, or, without the
   * instruction graph, the full prefill (then the same as p50_ms).
   */
  readonly recompute_p50_ms: number;
  readonly recompute_p95_ms: number;
  /** The instruction cache's counters over the closed loops above; null without the graph. */
  readonly instruction_cache: InstructionCacheStats | null;
}

/** One strategy's closed-loop result. */
export interface DecodeStrategyResult {
  readonly strategy: ArActOptions['strategy'];
  readonly window: number;
  readonly success_rate: number;
  readonly mean_steps: number;
  readonly chunks: number;
  readonly tokens_per_chunk: number;
  readonly decoder_calls_per_chunk: number;
  readonly chunk_p50_ms: number;
  readonly chunk_p95_ms: number;
  readonly accepted_guesses_per_call: number;
  /** Visual tokens the prefill saw per chunk, on average (all of them without pruning). */
  readonly mean_kept_tokens: number;
  /** The keep ratio at the end (the latency-budget controller's when it is on). */
  readonly final_keep_ratio: number;
  /** Every chunk equal to greedy's for the same observation and token budget. */
  readonly same_chunks_as_greedy: boolean;
  /** How many chunks that comparison covered (greedy: its own count). */
  readonly chunks_compared_with_greedy: number;
}

export interface DecodeBenchOptions {
  readonly model: string;
  readonly episodes: number;
  readonly seed: number;
  readonly executeSteps: number;
  readonly window?: number;
  /** The variant to run (default `auto`: fp32). */
  readonly precision?: Precision | 'auto';
  /** Pruning before the prefill and the latency budget (default: every token, no budget). */
  readonly pruning?: ArPruningOptions;
  readonly progress?: (line: string) => void;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number);
}

/** Runs the closed loop once per strategy on the same seeds. */
export async function benchDecode(options: DecodeBenchOptions): Promise<{
  readonly model: string;
  readonly variant: string;
  readonly episodes: number;
  readonly seed: number;
  readonly results: DecodeStrategyResult[];
  readonly prefill: PrefillTiming;
}> {
  const policy = await ArPolicy.load(
    options.model,
    { intraOpNumThreads: 1, interOpNumThreads: 1 },
    { precision: options.precision ?? 'auto' },
  );
  try {
    const { image, normalisation } = policy.pkg;
    const pruning: ArPruningOptions = options.pruning ?? {
      strategy: 'none',
      keepRatio: 1,
      keepCount: 0,
      minKeepRatio: 1,
      seed: options.seed,
      latencyBudgetMs: 0,
    };
    const ingest = new FrameIngest({ width: image.width, height: image.height, ...normalisation });
    const pixels = new Float32Array(3 * image.width * image.height);
    const window = options.window ?? policy.pkg.tokenizer.maxTokens;
    const greedyChunks = new Map<string, Float32Array>();
    const results: DecodeStrategyResult[] = [];
    // Every strategy decodes a few chunks before anything is timed: otherwise the first one
    // measured (greedy) pays ONNX Runtime's first-run costs for all of them.
    const grey = {
      pixels: new Float32Array(3 * image.width * image.height),
      rgb: new Uint8Array(3 * image.width * image.height).fill(128),
      instruction: 'move to the red block',
      state: Float32Array.from(policy.pkg.stateMean),
    };
    for (let i = 0; i < WARMUP_CHUNKS; i++)
      for (const strategy of ['greedy', 'jacobi', 'speculative'] as const)
        await policy.act(grey, { strategy, window });
    for (const strategy of ['greedy', 'jacobi', 'speculative'] as const) {
      // Each strategy starts from the configured keep ratio with a fresh controller.
      const runner = new PrunedArPolicy(policy, pruning);
      const times: number[] = [];
      let kept = 0;
      let compared = 0;
      let calls = 0;
      let tokens = 0;
      let accepted = 0;
      let same = true;
      let previous: { actions: Float32Array; stepsExecuted: number } | undefined;
      const agent: Agent = {
        name: `tiny-vla-ar ${strategy}`,
        act: async (obs) => {
          if (obs.step === 0) previous = undefined;
          const rgb = await ingest.toRgb(obs.image);
          ingest.normalise(rgb, pixels);
          const r = await runner.act(
            { pixels, rgb, instruction: obs.instruction, state: obs.state },
            { strategy, window, ...(previous === undefined ? {} : { previous }) },
          );
          times.push(r.latencyMs);
          kept += r.keptTokens;
          calls += r.decoderCalls;
          tokens += r.tokens.length;
          accepted += r.guessesAccepted;
          previous = { actions: r.actions, stepsExecuted: options.executeSteps };
          // The same observation at the same token budget: greedy's chunk is the reference (under a
          // latency budget the budgets, and so the episodes, may part ways).
          const key = `${obs.instruction}|${Array.from(obs.state).join(',')}|${obs.step}|${r.tokenBudget}`;
          if (strategy === 'greedy') greedyChunks.set(key, r.actions);
          else {
            const g = greedyChunks.get(key);
            if (g !== undefined) {
              compared++;
              if (!g.every((v, i) => v === r.actions[i])) same = false;
            }
          }
          return r.actions;
        },
      };
      const summary = await runEpisodes(agent, {
        episodes: options.episodes,
        seed: options.seed,
        executeSteps: options.executeSteps,
        maxSteps: 60,
        cameraWidth: 128,
        cameraHeight: 128,
      });
      const sorted = [...times].sort((a, b) => a - b);
      results.push({
        strategy,
        window: strategy === 'greedy' ? 1 : window,
        success_rate: summary.success_rate,
        mean_steps: summary.mean_steps,
        chunks: times.length,
        tokens_per_chunk: round(tokens / Math.max(1, times.length), 2),
        decoder_calls_per_chunk: round(calls / Math.max(1, times.length), 2),
        chunk_p50_ms: round(median(times), 3),
        chunk_p95_ms: round(percentile(sorted, 0.95), 3),
        accepted_guesses_per_call: round(accepted / Math.max(1, calls), 2),
        mean_kept_tokens: round(kept / Math.max(1, times.length), 2),
        final_keep_ratio: round(runner.keepRatio, 4),
        chunks_compared_with_greedy: strategy === 'greedy' ? times.length : compared,
        same_chunks_as_greedy: same,
      });
      options.progress?.(`${strategy}: ${JSON.stringify(results[results.length - 1])}`);
    }
    const cacheStats = policy.graphs.instructionCache ?? null;
    return {
      model: policy.pkg.name,
      variant: policy.pkg.variant.name,
      episodes: options.episodes,
      seed: options.seed,
      results,
      prefill: { ...(await timePrefill(policy, grey)), instruction_cache: cacheStats },
    };
  } finally {
    await policy.close();
  }
}

/**
 * The prefill alone on one observation with every visual token: as the runtime runs it (the
 * instruction's cache reused) and with the words recomputed, alternated so that load on the
 * machine falls on both alike.
 */
async function timePrefill(
  policy: ArPolicy,
  obs: Parameters<ArPolicy['prefillInput']>[0],
): Promise<Omit<PrefillTiming, 'instruction_cache'>> {
  const { input, kept } = await policy.prefillInput(obs, {});
  const first = policy.pkg.firstActionPosition;
  const graph = policy.graphs.instructionSession !== undefined;
  const cached: number[] = [];
  const recomputed: number[] = [];
  for (let i = 0; i < PREFILL_ROUNDS + WARMUP_CHUNKS; i++) {
    let start = performance.now();
    await policy.graphs.prefill(input, first);
    const a = performance.now() - start;
    start = performance.now();
    if (graph) await policy.graphs.prefill(input, first, { useCache: false });
    const b = graph ? performance.now() - start : a;
    if (i < WARMUP_CHUNKS) continue;
    cached.push(a);
    recomputed.push(b);
  }
  const p = (xs: number[], q: number): number =>
    round(
      percentile(
        [...xs].sort((x, y) => x - y),
        q,
      ),
      3,
    );
  return {
    instruction_graph: graph,
    rounds: PREFILL_ROUNDS,
    visual_tokens: kept,
    p50_ms: round(median(cached), 3),
    p95_ms: p(cached, 0.95),
    recompute_p50_ms: round(median(recomputed), 3),
    recompute_p95_ms: p(recomputed, 0.95),
  };
}
