/**
 * The part of the pipeline the ROS node drives, and how the node gets one: {@link VlaPipeline},
 * the flow and autoregressive pipelines, and the tests' doubles implement it.
 */
import type { VlaConfig } from '../../config/index.js';
import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation, VlaPipeline } from '../../pipeline/pipeline.js';
import type { LatencySummary } from '../../runtime/latency.js';
import type { ActionLimits } from '../../runtime/safety.js';
import type { NodeDecoding } from './diagnostics.js';

/** The part of {@link VlaPipeline} the node uses (a test double implements it). */
export interface NodePipeline {
  readonly model: {
    readonly manifest: Pick<
      Manifest,
      'control_rate_hz' | 'image' | 'patch_grid' | 'chunk' | 'state'
    > & {
      // The node reads the action names (an autoregressive manifest has no action statistics).
      readonly action: Pick<Manifest['action'], 'names' | 'min' | 'max'>;
    };
  };
  readonly provider: string;
  /** The cameras the model sees, when it sees several (a flow package); one camera when absent. */
  readonly cameras?: readonly { readonly name: string }[];
  readonly actionLimits: ActionLimits;
  readonly lastSelection: VlaPipeline['lastSelection'];
  /** How chunks are decoded, shown in the diagnostics (an autoregressive package). */
  readonly decoding?: NodeDecoding;
  readonly latency: { readonly total: { summary(): LatencySummary } };
  infer(observation: Observation): Promise<ActionChunk>;
  release(): Promise<void>;
}

/** Loads and warms the model for a configuration; `log` receives progress lines. */
export type PipelineFactory = (
  config: Readonly<VlaConfig>,
  log: (line: string) => void,
) => Promise<NodePipeline>;
