/** The options of `compressPackage` and the evaluator it scores a model with. */
import type { Precision } from '../model/manifest.js';
import type { CalibrationSample } from './calibration.js';
import type { QuantMode } from './quantize.js';
import type { CalibrationMethod } from './runner.js';

/** What `compress` makes: INT8 (`static` QDQ, `dynamic`) or an FP16 variant for GPU providers. */
export type CompressMode = QuantMode | 'fp16';

/** The precisions `compress` writes. */
export type CompressedPrecision = 'int8' | 'fp16';

export interface CompressOptions {
  readonly model: string;
  readonly calibration: string;
  /** Activation ranges (static INT8 only). */
  readonly method: CalibrationMethod;
  readonly mode: CompressMode;
  /**
   * What stays in float; undefined = the defaults. INT8: node names (default: patch embedding,
   * action head). FP16: operator types or node names kept in float32 (default
   * {@link DEFAULT_FP16_KEEP_OPS}). `none` keeps nothing.
   */
  readonly exclude?: readonly string[];
  /** Frames per calibration batch (progress line per batch). */
  readonly batchSize: number;
  /** Held-out simulator frames for the action error. */
  readonly heldOut: number;
  /** Closed-loop episodes per variant and their seed. */
  readonly episodes: number;
  readonly seed: number;
  /** Gate: mean absolute action error (table units, worst dimension) must stay under this. */
  readonly errorThreshold: number;
  /** Gate: success may drop at most this many points. */
  readonly successTolerance: number;
  /** Latency rounds per variant. */
  readonly latencyRounds: number;
  /** Where the ranges JSON goes (default `<calibration>/ranges.json`, static mode only). */
  readonly rangesOut?: string;
  readonly progress: (line: string) => void;
  /**
   * Scores the model on its own task: the held-out observations and the closed loop of the
   * gate. The built-in tabletop's is `tabletopEvaluator()` (src/sim/evaluator.ts); a model
   * trained for another task passes its own.
   */
  readonly evaluator: CompressionEvaluator;
}

/** Closed-loop score of one variant: success rate and the p50 of the encode and policy stages, ms. */
export interface ClosedLoopScore {
  readonly rate: number;
  readonly stages: { readonly encode: number; readonly policy: number };
}

/** What the compression gate needs of the model's task (see {@link CompressOptions.evaluator}). */
export interface CompressionEvaluator {
  /**
   * `count` observations, seeded by `seed`, that calibration did not see: the action error's.
   * `cameras` (a flow package's camera names, in order) asks for a frame of each camera per
   * observation in `images`.
   */
  heldOut(count: number, seed: number, cameras?: readonly string[]): readonly CalibrationSample[];
  /**
   * Run `episodes` closed-loop episodes (seeded by `seed`) of the package in `dir` at
   * `precision`; for a flow package, `stages.policy` is instruction + prefix + denoising.
   */
  closedLoop(
    dir: string,
    precision: Precision,
    run: { readonly episodes: number; readonly seed: number },
  ): Promise<ClosedLoopScore>;
}
