/**
 * `vla-node bench decode`: an autoregressive package's closed loop on the simulator decoded
 * greedily, by Jacobi iteration and speculatively, on the same seeds: success, sequential decoder
 * calls and time per chunk, and whether every chunk equals greedy's.
 */
import { resolve } from 'node:path';
import { benchDecode } from '../bench/decode.js';
import { ConfigError } from '../errors.js';
import type { CommandSpec } from './command.js';

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
  },
  async run(values, io) {
    const report = await benchDecode({
      model: resolve(String(values.model)),
      episodes: integerOption(values, 'episodes', 1),
      seed: integerOption(values, 'seed', 0),
      executeSteps: integerOption(values, 'execute-steps', 1),
      window: integerOption(values, 'window', 1),
      progress: (line) => {
        io.progress(line);
      },
    });
    const table = [
      `${report.model}: ${report.episodes} episodes from seed ${report.seed}`,
      '',
      '| strategy | window | success | steps | tokens/chunk | decoder calls/chunk | chunk p50 | chunk p95 | same chunks as greedy |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---|',
      ...report.results.map(
        (r) =>
          `| ${r.strategy} | ${r.window} | ${(100 * r.success_rate).toFixed(0)}% | ${r.mean_steps} | ${r.tokens_per_chunk} | ${r.decoder_calls_per_chunk} | ${r.chunk_p50_ms} ms | ${r.chunk_p95_ms} ms | ${r.same_chunks_as_greedy ? 'yes' : 'NO'} |`,
      ),
    ].join('\n');
    io.result(report, table);
    return 0;
  },
};
