/** What the bridge server needs of the pipeline it serves. */

import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation, PreparedObservation } from '../../pipeline/pipeline.js';

/** A model input image as the `welcome` describes it. */
export type ServedImage = Pick<Manifest['image'], 'width' | 'height' | 'resize'>;

/** One camera of a model that takes several (a flow package's `cameras[]`). */
export interface ServedCamera {
  readonly name: string;
  readonly image: ServedImage;
}

/**
 * What the server reads of the served model's manifest: a v1 manifest has `image` (its one
 * camera), a flow manifest (format v2) has none and its pipeline lists `cameras` instead.
 */
export type ServedManifest = Pick<Manifest, 'name' | 'control_rate_hz' | 'chunk' | 'state'> & {
  /** The action names and limits (an autoregressive manifest has no action statistics). */
  readonly action: Pick<Manifest['action'], 'names' | 'min' | 'max'>;
  readonly image?: ServedImage;
};

/**
 * What the server needs of a pipeline ({@link VlaPipeline} is one, FlowPipeline another; tests
 * pass doubles).
 */
export interface BridgePipeline {
  readonly model: { readonly manifest: ServedManifest };
  /**
   * The cameras the model takes, in its order, each request carrying one image per camera (named
   * by the image's `camera` field, or in this order); absent: one camera, `model.manifest.image`.
   */
  readonly cameras?: readonly ServedCamera[];
  /** Visual tokens per frame before pruning (all cameras). */
  readonly totalTokens: number;
  /** Tokens kept per frame under the configured budget (all cameras). */
  readonly tokenBudget: number;
  readonly pruner: { reset(stream?: string): void };
  infer(obs: Observation): Promise<ActionChunk>;
  /** Most observations {@link inferBatch} takes at once; absent or 1: one at a time. */
  readonly maxBatch?: number;
  /** Check and decode an observation ahead of its batch (as `VlaPipeline.prepare`). */
  prepare?(obs: Observation): Promise<PreparedObservation>;
  /**
   * Whether {@link prepare} ahead of the batch saves the batch time for `obs` (as
   * `VlaPipeline.benefitsFromPrepare`); absent: every observation is prepared ahead.
   */
  benefitsFromPrepare?(obs: Observation): boolean;
  /**
   * The pipeline batches its own `infer` calls continuously (as `ArPipeline` with
   * `serve.continuous_batching`): the server hands it each request as soon as it is dequeued, up
   * to {@link maxBatch} in flight, and a request joins the batch already running inside it.
   */
  readonly continuous?: boolean;
  /** Run a batch; one result per observation (as `VlaPipeline.inferBatch`). */
  inferBatch?(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]>;
}
