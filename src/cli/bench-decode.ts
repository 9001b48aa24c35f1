/**
 * `vla-node bench decode`: an autoregressive package's closed loop on the simulator decoded
 * greedily, by Jacobi iteration and speculatively, on the same seeds: success, sequential decoder
 * calls and time per chunk, and whether every chunk equals greedy's.
 */
import { resolve } from 'node:path';
import { benchDecode } from '../bench/decode.js';
import { ConfigError } from '../errors.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, MODEL_FLAG_KEYS, MODEL_OPTIONS } from './setup.js';

function integerOption(values: Record<string, unknown>, name: string, min: number): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min)
    throw new ConfigError(
      `Expected an integer >= ${min} for --${name} but received ${String(values[name])}`,
      {
        field: name,
      },
    );
  return v;
}

export const benchDecodeCommand: CommandSpec = {
  name: 'bench decode',
  summary:
    "decode an autoregressive package's chunks greedily, by Jacobi iteration and speculatively on the same simulator seeds: success, sequential decoder calls and time per chunk",
  options: {
    model: { type: 'string', default: 'models/tiny-vla-ar', help: 'autoregressive model package' },
    episodes: { type: 'string', default: '20', help: 'episodes per strategy' },
    seed: { type: 'string', default: '1', help: 'first episode seed' },
    'execute-steps': { type: 'string', default: '4', help: 'actions executed from each chunk' },
    window: {
      type: 'string',
      default: '8',
      help: 'tokens fed per decoder call (jacobi, speculative)',
    },
    precision: MODEL_OPTIONS.precision,
    strategy: MODEL_OPTIONS.strategy,
    'keep-ratio': MODEL_OPTIONS['keep-ratio'],
    'keep-count': MODEL_OPTIONS['keep-count'],
    'latency-budget-ms': MODEL_OPTIONS['latency-budget-ms'],
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    // Pruning before the prefill and the latency budget are the node's parameters (schema-checked,
    // from the parameter file, --set or these flags); the package is --model's, not model.path.
    const { strategy, 'keep-ratio': keepRatio, 'keep-count': keepCount } = MODEL_FLAG_KEYS;
    const config = await configFromArgs(values, {
      precision: MODEL_FLAG_KEYS.precision,
      strategy,
      'keep-ratio': keepRatio,
      'keep-count': keepCount,
      'latency-budget-ms': MODEL_FLAG_KEYS['latency-budget-ms'],
    });
    const seed = integerOption(values, 'seed', 0);
    const report = await benchDecode({
      model: resolve(String(values.model)),
      episodes: integerOption(values, 'episodes', 1),
      seed,
      precision: config.model.precision,
      pruning: {
        strategy: config.pruning.strategy,
        keepRatio: config.pruning.keep_ratio,
        keepCount: config.pruning.keep_count,
        minKeepRatio: config.pruning.min_keep_ratio,
        seed: config.pruning.seed,
        latencyBudgetMs: config.runtime.latency_budget_ms,
      },
      executeSteps: integerOption(values, 'execute-steps', 1),
      window: integerOption(values, 'window', 1),
      progress: (line) => {
        io.progress(line);
      },
    });
    const table = [
      `${report.model} (${report.variant}): ${report.episodes} episodes from seed ${report.seed}; pruning ${config.pruning.strategy}${config.runtime.latency_budget_ms > 0 ? `, latency budget ${config.runtime.latency_budget_ms} ms` : ''}`,
      '',
      '| strategy | window | success | steps | visual tokens | tokens/chunk | decoder calls/chunk | chunk p50 | chunk p95 | same chunks as greedy |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
      ...report.results.map(
        (r) =>
          `| ${r.strategy} | ${r.window} | ${(100 * r.success_rate).toFixed(0)}% | ${r.mean_steps} | ${r.mean_kept_tokens} | ${r.tokens_per_chunk} | ${r.decoder_calls_per_chunk} | ${r.chunk_p50_ms} ms | ${r.chunk_p95_ms} ms | ${r.same_chunks_as_greedy ? `yes (${r.chunks_compared_with_greedy})` : 'NO'} |`,
      ),
      '',
      report.prefill.instruction_graph
        ? `prefill per frame (${report.prefill.visual_tokens} visual tokens): ${report.prefill.p50_ms} ms p50 with the instruction's keys and values cached, ${report.prefill.recompute_p50_ms} ms recomputing them (instruction graph + prefill); cache ${report.prefill.instruction_cache?.hits ?? 0} hits, ${report.prefill.instruction_cache?.misses ?? 0} misses`
        : `prefill per frame (${report.prefill.visual_tokens} visual tokens): ${report.prefill.p50_ms} ms p50, the instruction recomputed every frame (no instruction graph)`,
    ].join('\n');
    io.result(report, table);
    return 0;
  },
};
