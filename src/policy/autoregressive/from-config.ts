/**
 * From the validated configuration to an autoregressive package's pipeline: the parameters the
 * encoder + policy pipeline reads (precision, pruning, latency budget, limits, ingest bounds,
 * threads, warm-up) read the same way, plus the family's own decoding strategy
 * (`runtime.decoding`, `runtime.decoding_window`).
 */

import type { VlaConfig } from '../../config/index.js';
import { pipelineOptions } from '../../pipeline/from-config.js';
import { ArPipeline } from './pipeline.js';

/**
 * The pipeline of the autoregressive package in `dir` with the parameters' precision, pruning
 * (before the prefill) and latency budget, safety limits, ingest limits, intra-op threads, warm-up
 * runs and decoding strategy, on the CPU provider (the family's graphs run there); `maxBatch`
 * observations decoded together at most by `inferBatch` (the bridge passes `serve.max_batch`), and
 * by a continuous batch when `continuous` (the bridge passes `serve.continuous_batching`).
 *
 * @throws {ConfigError} for limits that do not fit the package.
 * @throws {ModelError} for a package that does not load.
 */
export async function arPipelineFromConfig(
  config: VlaConfig,
  dir: string,
  options: { readonly maxBatch?: number; readonly continuous?: boolean } = {},
): Promise<ArPipeline> {
  const o = pipelineOptions(config, () => undefined);
  return ArPipeline.create(dir, {
    precision: o.precision,
    pruning: { ...o.pruning, latencyBudgetMs: o.latencyBudgetMs },
    decoding: { strategy: config.runtime.decoding, window: config.runtime.decoding_window },
    limits: o.limits,
    ...(o.ingest === undefined ? {} : { ingest: o.ingest }),
    intraOpThreads: config.backend.intra_op_threads,
    executeSteps: config.runtime.execute_steps,
    controlRateHz: config.runtime.control_rate_hz,
    warmupRuns: o.warmupRuns,
    ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
    ...(options.continuous === undefined ? {} : { continuous: options.continuous }),
  });
}
