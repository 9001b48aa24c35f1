/** What goes into and comes out of the pipeline: its options, observations and action chunks. */
import type { BackendOptions } from '../backend/sessions.js';
import type { Frame, IngestLimits } from '../ingest/index.js';
import type { Precision } from '../model/manifest.js';
import type { PruningStrategy } from '../pruning/pruner.js';
import type { StageTimings } from '../runtime/latency.js';
import type { LimitsRequest } from '../runtime/safety.js';

/** How a pipeline is built: precision, backend, pruning, latency budget, limits, warm-up. */
export interface PipelineOptions {
  readonly precision: Precision | 'auto';
  readonly backend: BackendOptions;
  readonly pruning: {
    readonly strategy: PruningStrategy;
    readonly keepRatio: number;
    readonly keepCount: number;
    readonly seed: number;
    /** Lowest ratio the latency-budget controller may choose. */
    readonly minKeepRatio: number;
  };
  /** p95 end-to-end latency to stay under by adapting the keep ratio; 0 = off. */
  readonly latencyBudgetMs: number;
  /** Action limits (empty min/max = the manifest's, maxDeltaPerStep 0 = derived from it). */
  readonly limits: LimitsRequest;
  /** Inference runs on a synthetic frame before the pipeline reports ready. */
  readonly warmupRuns: number;
  /** Pixel, byte and state bounds on every observation (`ingest.*`); the schema's defaults when absent. */
  readonly ingest?: IngestLimits;
}

/** One camera's frame of an observation, with the camera's name when the sender gave one. */
export interface CameraFrame {
  /** The camera's name (a flow package's `cameras[].name`); absent: matched by position. */
  readonly camera?: string;
  readonly frame: Frame;
}

/**
 * The longest instruction (characters) the transports take by default: a robot's task is a
 * sentence, and longer text costs tokenizing and logging on the thread that runs the control loop.
 * The bridge's `maxInstructionLength` starts from it; the ROS node drops a longer instruction as an
 * input problem and replay skips it with a warning.
 */
export const MAX_INSTRUCTION_LENGTH = 1024;

/** One observation: a camera frame, the instruction and the robot state (manifest units). */
export interface Observation {
  /** The frame (of a model with several cameras: the first of `cameras`). */
  readonly frame: Frame;
  /**
   * Every camera's frame, for models that take several (flow packages); absent: `frame` is the one
   * camera. Single-camera pipelines read `frame` only.
   */
  readonly cameras?: readonly CameraFrame[];
  /**
   * Seed of a flow-matching model's initial noise (an unsigned 32-bit integer): the same
   * observation and seed give the same chunk. Absent: derived from `stamp` (FlowPipeline).
   * Single-pass policies draw no noise and ignore it.
   */
  readonly seed?: number;
  readonly instruction: string;
  readonly state: ArrayLike<number>;
  /** Stamp of the source frame in ms (camera clock); carried into the chunk. */
  readonly stamp?: number;
  /** Camera stream name, for stateful pruners. */
  readonly stream?: string;
  /** Visual tokens to keep for this inference only, in [1, total tokens]; overrides the budget. */
  readonly keepCount?: number;
}

/** An action chunk with its metadata. `actions` is horizon × actionDim, row-major, in manifest units, within limits. */
export interface ActionChunk {
  readonly sequence: number;
  readonly actions: Float32Array;
  readonly horizon: number;
  readonly actionDim: number;
  /** Seconds between consecutive actions (1 / control rate). */
  readonly dt: number;
  /** Stamp of the frame the chunk was computed from (ms), if the observation had one. */
  readonly sourceStamp: number | undefined;
  /** Frame in → chunk out, milliseconds. */
  readonly latencyMs: number;
  readonly stages: StageTimings;
  readonly tokens: { readonly total: number; readonly kept: number };
  /** Values changed by the safety clamp. */
  readonly clamped: number;
}

/**
 * An observation checked and decoded by {@link VlaPipeline.prepare} (state, keep count, frame →
 * RGB at the model's size), ready for {@link VlaPipeline.inferBatch}.
 */
export class PreparedObservation {
  readonly observation: Observation;
  /** The frame as packed RGB8 at the model's input size. */
  readonly rgb: Uint8Array;
  /** Tokens to keep (checked), or undefined for the pipeline's budget when it runs. */
  readonly budget: number | undefined;
  /** Time the checks and the decode took, ms. */
  readonly preprocessMs: number;

  /** Made by {@link VlaPipeline.prepare}. */
  constructor(
    observation: Observation,
    rgb: Uint8Array,
    budget: number | undefined,
    preprocessMs: number,
  ) {
    this.observation = observation;
    this.rgb = rgb;
    this.budget = budget;
    this.preprocessMs = preprocessMs;
  }
}
