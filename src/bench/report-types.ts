/** What `vla-node bench report` measures: the report's shape and the settings its sections share. */

import type { ArReferenceReport } from './ar-reference.js';
import type { FlopCount } from './flops.js';
import type { CameraIngestReport } from './ingest.js';
import type { FlowReferenceReport } from './flow-reference.js';
import type { KeepRatioLatency } from './keep.js';
import type { MachineInfo } from './machine.js';
import type { OverheadResult } from './overhead.js';
import type { MatmulPeak } from './peak.js';
import type { StartupResult } from './startup.js';
import type { TorchResult } from './torch.js';

/** Keep ratios of the latency-by-ratio section and of the matrix. */
export const RATIOS = [1, 0.5, 0.25, 0.125] as const;
/** Precisions of the compression × pruning matrix. */
export const MATRIX_PRECISIONS = ['fp32', 'int8'] as const;
/** The pruning strategy of the pruned figures. */
export const STRATEGY = 'saliency';

/** One model's latency sections: overhead, PyTorch, FLOPs against the peak, start-up, keep ratios. */
export interface ModelReport {
  readonly model: string;
  readonly parameters: number;
  readonly visual_tokens: number;
  readonly pipeline_overhead: Omit<OverheadResult, 'actions'>;
  /** The node fed frames from the simulator's 128×128 camera (resized by ingest), same sessions. */
  readonly pipeline_overhead_camera_frames: Omit<OverheadResult, 'actions'> | null;
  readonly pytorch: TorchResult & { readonly node_speedup_p50?: number };
  readonly flops: {
    readonly encoder: FlopCount;
    readonly policy_by_tokens: readonly { readonly tokens: number; readonly flops: FlopCount }[];
    /** Achieved rate of the node's stages at all tokens (stage p50) and the share of the peak. */
    readonly achieved: {
      readonly encoder_gflops: number;
      readonly policy_gflops: number;
      readonly encoder_share_of_peak: number;
      readonly policy_share_of_peak: number;
    };
  };
  readonly startup: StartupResult;
  readonly keep_ratios: readonly KeepRatioLatency[];
}

/** One cell of the compression × pruning matrix (closed loop on the shipped model). */
export interface MatrixCell {
  readonly precision: string;
  readonly keep_ratio: number;
  readonly tokens_kept: number;
  readonly success_rate: number;
  readonly end_to_end_ms: { readonly p50: number; readonly p95: number };
  readonly policy_ms: { readonly p50: number; readonly p95: number };
  readonly encode_ms: { readonly p50: number };
  /** Success rate and latency medians are over `repeats` runs of the same episodes. */
  readonly repeats: number;
  /** (max − min) / median of the runs' end-to-end p50, in percent. */
  readonly p50_spread_pct: number;
}

/** Everything `bench report` measured, as written to report.json. */
export interface PerformanceReport {
  readonly created: string;
  readonly machine: MachineInfo;
  readonly settings: {
    readonly intra_op_threads: number;
    readonly repeats: number;
    readonly frames: number;
    readonly episodes_per_cell: number;
    readonly strategy: string;
  };
  readonly matmul_peak: MatmulPeak;
  readonly models: readonly ModelReport[];
  readonly matrix: readonly MatrixCell[];
  /** Camera-frame ingest (`vla-node bench ingest`), on the shipped model. */
  readonly ingest: CameraIngestReport;
  /** The flow-matching package against PyTorch eager of its weights; null when skipped. */
  readonly flow: FlowReferenceReport | null;
  /** The autoregressive package against PyTorch eager of its weights; null when skipped. */
  readonly ar: ArReferenceReport | null;
  readonly skipped: readonly { readonly what: string; readonly reason: string }[];
  readonly files: Readonly<Record<string, string>>;
}
