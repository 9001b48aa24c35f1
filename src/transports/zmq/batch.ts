/** The bridge server's batch run: decoded requests through the pipeline's `inferBatch`. */

import type { ActionChunk, Observation, PreparedObservation } from '../../pipeline/pipeline.js';
import type { Job } from './jobs.js';

/** What became of one request of a batch: its chunk, or why it has none. */
export type BatchOutcome = { readonly chunk: ActionChunk } | { readonly error: unknown };

/** What a batch run needs of the pipeline. */
export interface BatchPipeline {
  inferBatch?(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]>;
}

/**
 * Wait for the requests' decodes, run those that decoded (or came as they are) in one
 * `inferBatch`, and record each request's outcome in `outcomes` (filled as it goes, so a caller
 * still holds what was settled if this throws). A request with no entry got no result.
 */
export async function runBatch(
  pipeline: BatchPipeline,
  live: readonly Job[],
  outcomes: Map<Job, BatchOutcome>,
): Promise<void> {
  const ready: { job: Job; prepared: Observation | PreparedObservation }[] = [];
  const decoded = await Promise.allSettled(
    live.map((job) => job.prepared ?? Promise.reject(new Error('request was not prepared'))),
  );
  decoded.forEach((p, i) => {
    const job = live[i] as Job;
    if (p.status === 'fulfilled') ready.push({ job, prepared: p.value });
    else outcomes.set(job, { error: p.reason });
  });
  if (ready.length === 0) return;
  let results: PromiseSettledResult<ActionChunk>[];
  try {
    if (pipeline.inferBatch === undefined) throw new Error('the pipeline takes no batches');
    results = await pipeline.inferBatch(ready.map((r) => r.prepared));
  } catch (error) {
    for (const { job } of ready) outcomes.set(job, { error });
    return;
  }
  // One result per request; a pipeline that returns fewer fails the rest, more are ignored.
  ready.forEach(({ job }, i) => {
    const r = results[i];
    if (r === undefined) return;
    outcomes.set(job, r.status === 'fulfilled' ? { chunk: r.value } : { error: r.reason });
  });
}
