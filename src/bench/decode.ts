/**
 * The autoregressive family's decoding benchmark: the same closed-loop episodes on the simulator
 * decoded greedily, by Jacobi iteration and speculatively (draft = the previous chunk shifted by
 * the steps executed). Every strategy is exact, so success and steps must be the same; what
 * changes is the number of sequential decoder calls per chunk and the time per chunk.
 */
import { performance } from 'node:perf_hooks';
import { FrameIngest } from '../ingest/ingest.js';
import { ArPolicy, type ArActOptions } from '../policy/autoregressive/policy.js';
import { createPruner } from '../pruning/strategies.js';
import { tokenBudget, type PruningStrategy } from '../pruning/pruner.js';
import { runEpisodes, type Agent } from '../sim/runner.js';
import { median, round } from '../util/stats.js';

/** Chunks each strategy decodes before timing starts. */
const WARMUP_CHUNKS = 3;

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
  /** Every chunk equal to greedy's for the same observation (checked on the first episodes). */
  readonly same_chunks_as_greedy: boolean;
}

export interface DecodeBenchOptions {
  readonly model: string;
  readonly episodes: number;
  readonly seed: number;
  readonly executeSteps: number;
  readonly window?: number;
  readonly pruning?: { readonly strategy: PruningStrategy; readonly keepRatio: number };
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
  readonly episodes: number;
  readonly seed: number;
  readonly results: DecodeStrategyResult[];
}> {
  const policy = await ArPolicy.load(options.model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const { image, grid, normalisation } = policy.pkg;
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
      const times: number[] = [];
      let calls = 0;
      let tokens = 0;
      let accepted = 0;
      let same = true;
      let previous: { actions: Float32Array; stepsExecuted: number } | undefined;
      const pruner =
        options.pruning === undefined
          ? undefined
          : createPruner(options.pruning.strategy, { seed: options.seed });
      const budget =
        options.pruning === undefined
          ? grid.width * grid.height
          : tokenBudget(grid.width * grid.height, options.pruning.keepRatio, 0);
      const agent: Agent = {
        name: `tiny-vla-ar ${strategy}`,
        act: async (obs) => {
          if (obs.step === 0) previous = undefined;
          const rgb = await ingest.toRgb(obs.image);
          ingest.normalise(rgb, pixels);
          const start = performance.now();
          const r = await policy.act(
            { pixels, rgb, instruction: obs.instruction, state: obs.state },
            {
              strategy,
              window,
              ...(previous === undefined ? {} : { previous }),
              ...(pruner === undefined ? {} : { pruner, budget }),
            },
          );
          times.push(performance.now() - start);
          calls += r.decoderCalls;
          tokens += r.tokens.length;
          accepted += r.guessesAccepted;
          previous = { actions: r.actions, stepsExecuted: options.executeSteps };
          const key = `${obs.instruction}|${Array.from(obs.state).join(',')}|${obs.step}`;
          if (strategy === 'greedy') greedyChunks.set(key, r.actions);
          else {
            const g = greedyChunks.get(key);
            if (g !== undefined && !g.every((v, i) => v === r.actions[i])) same = false;
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
        same_chunks_as_greedy: same,
      });
      options.progress?.(`${strategy}: ${JSON.stringify(results[results.length - 1])}`);
    }
    return { model: policy.pkg.name, episodes: options.episodes, seed: options.seed, results };
  } finally {
    await policy.close();
  }
}
