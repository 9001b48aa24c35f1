/**
 * How an `ArPipeline` (pipeline.ts) is built and decodes (the `runtime.decoding` strategies, pruning,
 * limits, batching), and the decoding totals it reports.
 */
import type { IngestLimits } from '../../ingest/index.js';
import type { Precision } from '../../model/manifest.js';
import type { LimitsRequest } from '../../runtime/safety.js';
import type { ArPruningOptions } from './pruned.js';

/** The decoding strategies (`runtime.decoding`); every one gives greedy's tokens. */
export const AR_DECODINGS = ['greedy', 'jacobi', 'speculative'] as const;
export type ArDecoding = (typeof AR_DECODINGS)[number];

/** How an `ArPipeline` decodes. */
export interface ArDecodingOptions {
  readonly strategy: ArDecoding;
  /** Tokens fed per decoder call (jacobi, speculative); 0: the chunk's whole token count. */
  readonly window: number;
}

/** How an `ArPipeline` is built. */
export interface ArPipelineOptions {
  readonly precision?: Precision | 'auto';
  readonly pruning: ArPruningOptions;
  readonly decoding: ArDecodingOptions;
  /** Action limits (empty min/max = the manifest's, maxDeltaPerStep 0 = derived from it). */
  readonly limits: LimitsRequest;
  /** Pixel, byte and state bounds on every observation (`ingest.*`); the schema's defaults when absent. */
  readonly ingest?: IngestLimits;
  readonly intraOpThreads?: number;
  /**
   * Speculative decoding: the steps of the previous chunk taken to be executed when two
   * observations of a stream carry no stamps to tell (0: half the horizon, as `runtime.execute_steps`).
   */
  readonly executeSteps?: number;
  /**
   * The rate the robot executes a chunk's steps at, which turns two stamps' difference into the
   * steps executed between them for speculative drafts (`runtime.control_rate_hz`; 0 or absent:
   * the manifest's).
   */
  readonly controlRateHz?: number;
  /** Inferences on a synthetic observation before the pipeline is handed out (default 0). */
  readonly warmupRuns?: number;
  /**
   * Most observations `ArPipeline.inferBatch` decodes together (the bridge's `max_batch`;
   * default 1: one at a time).
   */
  readonly maxBatch?: number;
  /**
   * Continuous batching: `ArPipeline.infer` calls decode together in an active set of up to
   * `maxBatch` sequences, a call that arrives while others decode joining them between two
   * decoder calls (default false: one call at a time, `ArPipeline.inferBatch` for batches).
   */
  readonly continuous?: boolean;
}

/** What decoding cost so far, summed over chunks (the serve and sim reports show it). */
export interface ArDecodeTotals {
  chunks: number;
  /** Visual tokens the prefill saw. */
  keptTokens: number;
  tokens: number;
  decoderCalls: number;
  guessesFed: number;
  guessesAccepted: number;
}
