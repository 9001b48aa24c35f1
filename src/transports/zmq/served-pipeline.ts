/** What the bridge server needs of the pipeline it serves. */

import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation, PreparedObservation } from '../../pipeline/pipeline.js';

/** What the server needs of a pipeline ({@link VlaPipeline} is one; tests pass doubles). */
export interface BridgePipeline {
  readonly model: { readonly manifest: Manifest };
  /** Visual tokens per frame before pruning. */
  readonly totalTokens: number;
  /** Tokens kept per frame under the configured budget. */
  readonly tokenBudget: number;
  readonly pruner: { reset(stream?: string): void };
  infer(obs: Observation): Promise<ActionChunk>;
  /** Most observations {@link inferBatch} takes at once; absent or 1: one at a time. */
  readonly maxBatch?: number;
  /** Check and decode an observation ahead of its batch (as `VlaPipeline.prepare`). */
  prepare?(obs: Observation): Promise<PreparedObservation>;
  /** Run a batch; one result per observation (as `VlaPipeline.inferBatch`). */
  inferBatch?(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]>;
}
