/**
 * What `replay` takes and gives: the pipeline it drives, its options, and the metrics of a
 * run (the `--json` summary of `vla-node replay`).
 */
import type { DecompressHandlers } from '@mcap/core';
import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation } from '../../pipeline/types.js';
import type { LatencySummary } from '../../runtime/latency.js';
import type { TopicMap } from './replay-topics.js';

/** The part of VlaPipeline replay uses. */
export interface ReplayPipeline {
  readonly model: {
    readonly manifest: Pick<Manifest, 'chunk' | 'state'> & {
      /** The action names and limits (an autoregressive manifest has no action statistics). */
      readonly action: Pick<Manifest['action'], 'names' | 'min' | 'max'>;
    };
  };
  /**
   * The model's cameras when it takes several (a flow package): replay then reads one image topic
   * per camera ({@link ReplayOptions.cameraTopics}); absent: one camera, the image topic.
   */
  readonly cameras?: readonly { readonly name: string }[];
  /** Reset before playback, so stateful (temporal) pruning starts afresh on every replay. */
  readonly pruner?: { reset(stream?: string): void };
  infer(obs: Observation): Promise<ActionChunk>;
}

export interface ReplayOptions {
  readonly pipeline: ReplayPipeline;
  /** Topic mapping; topics left out take `DEFAULT_TOPICS` (replay-topics.ts). */
  readonly topics?: Partial<TopicMap>;
  /**
   * Image topic per camera name, for a pipeline with several cameras; cameras left out take
   * `defaultCameraTopic`. The first camera's topic drives the inferences (one per message),
   * with the latest message of each other camera's topic.
   */
  readonly cameraTopics?: Readonly<Record<string, string>>;
  /** `max` (default): as fast as possible; a number: paced at that multiple of the bag's clock. */
  readonly rate?: number | 'max';
  /**
   * Write the chunks and diagnostics here: a `.mcap` file (replaced when it exists) or a new or
   * empty bag folder; never the bag itself or a path inside its folder (a `BagError`, field `out`).
   */
  readonly out?: string;
  /** Instruction used until the bag's instruction topic has a message (default ''). */
  readonly instruction?: string;
  /** A DiagnosticArray on /diagnostics every this many chunks (default 10; 0 = none). */
  readonly diagnosticsEvery?: number;
  /** Chunk decompressors by name (e.g. zstd from fzstd) for bags Node cannot decompress itself. */
  readonly decompressHandlers?: DecompressHandlers;
  /** Called with each chunk as it is computed. */
  readonly onChunk?: (chunk: ActionChunk) => void;
}

export interface SkippedTopic {
  readonly topic: string;
  readonly type: string;
  readonly messages: number;
  readonly reason: string;
}

export interface ActionError {
  /** Chunks compared with a reference message. */
  readonly chunks: number;
  /** Mean absolute error per action dimension over every compared action. */
  readonly mean_abs: number[];
  readonly max_abs: number[];
}

/** What a replay did; the `--json` summary of `vla-node replay`. */
export interface ReplayMetrics {
  readonly bag: string;
  readonly files: string[];
  readonly topics: TopicMap;
  /** Image topic per camera (a pipeline with several cameras only; the first is `topics.image`). */
  readonly camera_topics?: Record<string, string>;
  /** Messages read per topic (every topic of the bag). */
  readonly messages: Record<string, number>;
  readonly frames: number;
  readonly chunks: number;
  readonly skipped_topics: SkippedTopic[];
  /** Mapped topics the bag does not have (a typo in a topic option shows here). */
  readonly missing_topics: { readonly role: string; readonly topic: string }[];
  /** Per-message problems by kind (frames skipped, a truncated file, missing inputs). */
  readonly warnings: Record<string, number>;
  readonly latency_ms: LatencySummary;
  readonly action_error: ActionError | null;
  readonly rate: number | 'max';
  readonly wall_s: number;
  readonly frames_per_s: number;
  readonly out: string | null;
}

export interface ReplayResult {
  readonly chunks: ActionChunk[];
  readonly metrics: ReplayMetrics;
}
