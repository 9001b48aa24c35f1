/**
 * What a `FlowPolicy` (policy.ts) is built with, what one inference takes and what it gives back.
 */
import type * as ort from 'onnxruntime-node';
import type { Frame } from '../ingest/index.js';
import type { Precision } from '../model/manifest.js';
import type { PruningStrategy } from '../pruning/pruner.js';
import type { FlowSessions } from './graphs.js';
import type { RtcGuidance } from './rtc.js';

/** Which of the flow runtime's caches are on. */
export interface FlowCacheOptions {
  /**
   * Compute the instruction's keys/values once per instruction and reuse them for every frame.
   * Exact: the prefix's block-causal mask keeps the instruction block from seeing any frame.
   */
  readonly instruction: boolean;
  /**
   * VLA-Cache: reuse the keys/values of visual tokens whose patch changed by at most this mean
   * absolute difference (0-255 pixel units) since their keys/values were computed; null: off.
   * Approximate (the reused keys/values saw the older frame).
   */
  readonly visualThreshold: number | null;
  /** Cameras whose tokens may be reused (a camera that moves with the robot sees new places in still-looking patches). */
  readonly visualCameras: readonly string[];
}

export interface FlowPolicyOptions {
  readonly precision?: Precision | 'auto';
  /** Denoising steps (default: the manifest's `denoising.steps`). */
  readonly steps?: number;
  readonly pruning: {
    readonly strategy: PruningStrategy;
    readonly keepRatio: number;
    readonly keepCount: number;
    readonly seed: number;
  };
  readonly caches: FlowCacheOptions;
  /** Action limits (default: the manifest's `action.min/max`). */
  readonly limits?: { readonly min: readonly number[]; readonly max: readonly number[] };
  readonly intraOpThreads?: number;
  /** Copy the prefix keys/values into fresh tensors before every expert step (a baseline that measures what the runtime avoids). */
  readonly copyKvPerStep?: boolean;
  /**
   * Keep the p95 frame → chunk latency under `budgetMs` by lowering the keep ratio down to
   * `minKeepRatio`, then the denoising steps down to `minSteps` (0: never change the steps); see
   * `FlowBudgetController` (runtime/flow-budget.ts). A request's own `steps` still wins.
   */
  readonly latencyBudget?: {
    readonly budgetMs: number;
    readonly minKeepRatio: number;
    readonly minSteps: number;
  };
  /**
   * Told the feeds of every graph call just before it runs (compression captures the calibration
   * inputs of each graph this way). The tensors are the runtime's own and change afterwards (the
   * noisy chunk is integrated in place): copy what you keep.
   */
  readonly onGraphRun?: (
    role: keyof FlowSessions,
    feeds: Readonly<Record<string, ort.Tensor>>,
  ) => void;
}

/** One observation: an image per camera in the manifest's camera order. */
export interface FlowRequest {
  readonly images: readonly Frame[];
  /**
   * The cameras' images already converted to packed RGB8 at each camera's size (by the caller's
   * own `FrameIngest`, e.g. FlowPipeline's, which applies the ingest limits and names the
   * request's fields in its errors); when given, used instead of `images` (which may be empty).
   */
  readonly rgb?: readonly Uint8Array[];
  readonly instruction: string;
  /** Robot state in manifest units. */
  readonly state: ArrayLike<number>;
  /** Seed of the initial noise: the same request and seed give the same chunk. */
  readonly seed: number;
  /** Denoising steps of this request (default: the policy's). */
  readonly steps?: number;
  /** The initial noise itself (horizon × action_dim, normalised units) instead of drawing it from `seed`. */
  readonly noise?: Float32Array;
  /** Real-time chunking: inpaint the frozen start of the chunk (Black et al. 2025). */
  readonly guidance?: RtcGuidance;
}

/** Milliseconds per stage of one inference. */
export interface FlowTimings {
  ingest: number;
  encode: number;
  prune: number;
  instruction: number;
  prefix: number;
  denoise: number;
  total: number;
}

export interface FlowResult {
  /** horizon × action_dim actions in manifest units, clamped to the limits. */
  readonly actions: Float32Array;
  readonly timings: FlowTimings;
  /** Visual tokens the prefix saw (all cameras). */
  readonly keptTokens: number;
  /** Of those, tokens whose keys/values were reused from an earlier frame. */
  readonly reusedTokens: number;
  readonly instructionCached: boolean;
  readonly steps: number;
}
