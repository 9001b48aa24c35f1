/**
 * From the validated configuration to a flow package's pipeline: the parameters the encoder +
 * policy pipeline reads (precision, pruning, limits, ingest bounds, threads, warm-up) read the
 * same way for the flow family, plus its own caches.
 */

import type { VlaConfig } from '../config/index.js';
import type { FlowPackage } from '../model/flow-manifest.js';
import { pipelineOptions } from '../pipeline/from-config.js';
import { FlowPipeline } from './pipeline.js';
import type { FlowCacheOptions } from './policy.js';

/** The flow family's default caches: the exact instruction cache on, cross-frame reuse off. */
export const DEFAULT_FLOW_CACHES: FlowCacheOptions = {
  instruction: true,
  visualThreshold: null,
  visualCameras: [],
};

/**
 * A flow pipeline with the parameters' precision, pruning, safety limits, ingest limits, intra-op
 * threads and warm-up runs (on the CPU provider: the flow runtime's graphs run there).
 *
 * @throws {ConfigError} for limits that do not fit the package.
 */
export async function flowPipelineFromConfig(
  config: VlaConfig,
  pkg: FlowPackage,
  options: { readonly caches?: FlowCacheOptions; readonly steps?: number } = {},
): Promise<FlowPipeline> {
  const o = pipelineOptions(config, () => undefined);
  return FlowPipeline.create(pkg, {
    precision: o.precision,
    pruning: o.pruning,
    caches: options.caches ?? DEFAULT_FLOW_CACHES,
    limits: o.limits,
    ...(o.ingest === undefined ? {} : { ingest: o.ingest }),
    intraOpThreads: config.backend.intra_op_threads,
    warmupRuns: o.warmupRuns,
    ...(options.steps === undefined ? {} : { steps: options.steps }),
  });
}
