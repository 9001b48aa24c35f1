/**
 * Validating a compressed variant against fp32, the same for both families (encoder + policy,
 * flow): the scratch package it runs in, the closed-loop run, the gate's reasons, and the report
 * sections that hold the figures.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { ModelFile, Precision } from '../model/manifest.js';
import { round } from '../util/stats.js';
import type { ActionError } from './action-error.js';
import type { ClosedLoopScore, CompressedPrecision, CompressOptions } from './options.js';

/** The CPU the latency was measured on. */
export function cpuName(): string {
  return cpus()[0]?.model.trim() ?? 'unknown';
}

/**
 * Write a scratch package in `dir` that the real loaders and the closed loop can run: the source
 * package's manifest listing its fp32 variant and `variant`, its tokenizer, the fp32 graphs, and
 * the variant's `bytes` at its files (so the package itself is untouched until the variant passes).
 */
export async function writeScratchPackage<R extends string>(
  dir: string,
  roles: readonly R[],
  scratch: {
    readonly source: {
      readonly dir: string;
      readonly manifest: { readonly tokenizer: { readonly file: string } };
    };
    /** The source's fp32 variant as its family's `select…Variant` gives it (with `paths`). */
    readonly fp32: {
      readonly paths: Readonly<Record<R, string>>;
      readonly files: Readonly<Record<R, ModelFile>>;
    };
    readonly variant: { readonly files: Readonly<Record<R, ModelFile>> };
    readonly bytes: Readonly<Record<R, Uint8Array>>;
  },
): Promise<void> {
  const { source, fp32, variant } = scratch;
  const { paths: _, ...fp32Entry } = fp32;
  const manifest = { ...source.manifest, variants: [fp32Entry, variant] };
  const tokenizer = source.manifest.tokenizer.file;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  await copyFile(join(source.dir, tokenizer), join(dir, tokenizer));
  for (const r of roles) {
    await copyFile(fp32.paths[r], join(dir, fp32.files[r].path));
    await writeFile(join(dir, variant.files[r].path), scratch.bytes[r]);
  }
}

/** Score the package in `dir` at `precision` in the closed loop, by the evaluator of `options`. */
export async function runClosedLoop(
  dir: string,
  precision: Precision,
  options: CompressOptions,
): Promise<ClosedLoopScore> {
  options.progress(`closed loop: ${options.episodes} episodes with ${precision}...`);
  return options.evaluator.closedLoop(dir, precision, {
    episodes: options.episodes,
    seed: options.seed,
  });
}

/** Why the common gate fails: the worst mean action error, the success drop (empty: passed). */
function gateReasons(
  precision: CompressedPrecision,
  meanAbs: readonly number[],
  rates: { readonly fp32: number; readonly variant: number },
  options: Pick<CompressOptions, 'errorThreshold' | 'successTolerance'>,
): string[] {
  const reasons: string[] = [];
  const worst = Math.max(...meanAbs);
  if (!(worst < options.errorThreshold))
    reasons.push(`mean action error ${worst} is not under ${options.errorThreshold}`);
  const drop = 100 * (rates.fp32 - rates.variant);
  if (drop > options.successTolerance)
    reasons.push(
      `success dropped ${round(drop, 1)} points (fp32 ${round(100 * rates.fp32, 1)}%, ${precision} ${round(100 * rates.variant, 1)}%), more than ${options.successTolerance}`,
    );
  return reasons;
}

/** FP16's gate beyond the common one: no activation overflows, the emulated error is small. */
export function fp16Reasons(
  overflowing: readonly string[],
  emulated: ActionError | undefined,
  options: Pick<CompressOptions, 'errorThreshold'>,
): string[] {
  const reasons: string[] = [];
  if (overflowing.length > 0)
    reasons.push(
      `activations beyond the float16 range (65504): ${overflowing.join(', ')}; keep their nodes in float32 with --exclude`,
    );
  const worst = Math.max(...(emulated?.meanAbs ?? [Number.NaN]));
  if (!(worst < options.errorThreshold))
    reasons.push(
      `mean action error of the float16 emulation ${worst} is not under ${options.errorThreshold}`,
    );
  return reasons;
}

/** An FP16 report's `emulated_action_error` (empty lists when the emulation was not measured). */
export function emulatedActionError(emulated: ActionError | undefined): {
  mean_abs: number[];
  max_abs: number[];
} {
  return { mean_abs: emulated?.meanAbs ?? [], max_abs: emulated?.maxAbs ?? [] };
}

/** What every family measures of a variant against fp32 for the report's common sections. */
export interface CommonMeasurement<S> extends ActionError {
  /** Held-out observations the action error was measured on. */
  readonly frames: number;
  readonly closed: Readonly<
    Record<'fp32' | 'variant', { readonly rate: number; readonly stages: S }>
  >;
  readonly size: { readonly fp32: number; readonly variant: number };
}

/** What a family's report adds to the common sections, and where. */
export interface FamilySections {
  /** The action dimensions' names. */
  readonly names: readonly string[];
  /** Denoising steps (flow only): written between `names` and `mean_abs`. */
  readonly steps?: number;
  /** The key of the closed loop's per-stage times: p50s for encoder + policy, means for flow. */
  readonly stageKey: 'sim_stage_p50_ms' | 'sim_stage_mean_ms';
  /** The family's `latency` section (its stages differ). */
  readonly latency: object;
}

/**
 * The validation sections of a report, keyed by `precision` (`int8_success_rate`, ...): action
 * error, closed loop, latency, size and the gate (the common reasons, then `extraReasons`). The
 * caller types the result (computed keys are not typed here).
 */
export function reportSections<S>(
  precision: CompressedPrecision,
  m: CommonMeasurement<S>,
  options: CompressOptions,
  extraReasons: readonly string[],
  family: FamilySections,
): object {
  const reasons = [
    ...gateReasons(
      precision,
      m.meanAbs,
      { fp32: m.closed.fp32.rate, variant: m.closed.variant.rate },
      options,
    ),
    ...extraReasons,
  ];
  return {
    action_error: {
      frames: m.frames,
      names: family.names,
      ...(family.steps === undefined ? {} : { steps: family.steps }),
      mean_abs: m.meanAbs,
      max_abs: m.maxAbs,
      threshold: options.errorThreshold,
    },
    closed_loop: {
      episodes: options.episodes,
      seed: options.seed,
      fp32_success_rate: m.closed.fp32.rate,
      [`${precision}_success_rate`]: m.closed.variant.rate,
      tolerance_points: options.successTolerance,
      [family.stageKey]: { fp32: m.closed.fp32.stages, [precision]: m.closed.variant.stages },
    },
    latency: family.latency,
    size_bytes: {
      fp32: m.size.fp32,
      [precision]: m.size.variant,
      ratio: round(m.size.variant / m.size.fp32, 3),
    },
    gate: { passed: reasons.length === 0, provider: 'cpu', reasons },
  };
}
