/**
 * Adding a compressed variant to its package (both families): its name, files and hashes, the
 * scratch folder its validation runs in, then the staged write of ./commit.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Bytes } from '../model/files.js';
import type { ModelFile } from '../model/manifest.js';
import { commitVariant, type StagedFile } from './commit.js';
import type { CompressedPrecision, CompressMode, CompressOptions } from './options.js';
import type { Range } from './quantize.js';
import { FP16_KIND } from './report-common.js';
import { byRole } from '../util/roles.js';

/** The variant's name and file names for a mode. */
export function variantNames(mode: CompressMode): { name: string; suffix: string } {
  if (mode === 'fp16') return { name: 'fp16', suffix: 'fp16' };
  return mode === 'static'
    ? { name: 'int8', suffix: 'int8' }
    : { name: 'int8-dynamic', suffix: 'int8-dynamic' };
}

/** The providers a variant is made for: FP16 for the GPU ones, INT8 for the CPU. */
function variantProviders(precision: CompressedPrecision): string[] {
  return precision === 'fp16' ? [...FP16_KIND.intended_providers] : ['cpu'];
}

/** The manifest entries of a variant's graphs: each fp32 file's name with `.<suffix>`, hashed. */
function variantFiles<R extends string>(
  roles: readonly R[],
  fp32: Readonly<Record<R, ModelFile>>,
  suffix: string,
  bytes: Readonly<Record<R, Uint8Array>>,
): Record<R, ModelFile> {
  return byRole(roles, (r) => ({
    path: fp32[r].path.replace(/\.onnx$/, `.${suffix}.onnx`),
    sha256: sha256Bytes(bytes[r]),
  }));
}

/** What a static INT8 run calibrated, for the ranges file (`vla-node/calibration-ranges@1`). */
export interface CalibratedRanges<R extends string> {
  readonly model: string;
  readonly frames: number;
  readonly ranges: Readonly<Record<R, ReadonlyMap<string, Range>>>;
}

/**
 * The files a compressed variant adds, for {@link commitVariant}: its graphs, its report as JSON
 * and Markdown at `reportPath` (relative to `dir`), and, when `calibrated` is given, the ranges
 * JSON (at `--ranges-out`, by default in the calibration set).
 */
function variantStagedFiles<R extends string>(
  dir: string,
  roles: readonly R[],
  variant: {
    readonly files: Readonly<Record<R, ModelFile>>;
    readonly bytes: Readonly<Record<R, Uint8Array>>;
    readonly reportPath: string;
    readonly report: object;
    readonly markdown: string;
  },
  options: Pick<CompressOptions, 'calibration' | 'method' | 'rangesOut'>,
  calibrated?: CalibratedRanges<R>,
): StagedFile[] {
  const files: StagedFile[] = roles.map((r) => ({
    path: join(dir, variant.files[r].path),
    data: variant.bytes[r],
  }));
  const jsonTarget = join(dir, variant.reportPath);
  files.push(
    { path: jsonTarget, data: `${JSON.stringify(variant.report, null, 2)}\n` },
    { path: jsonTarget.replace(/\.json$/, '.md'), data: variant.markdown },
  );
  if (calibrated !== undefined) {
    const json = {
      format: 'vla-node/calibration-ranges@1',
      model: calibrated.model,
      method: options.method,
      frames: calibrated.frames,
      ...byRole(roles, (r) => Object.fromEntries(calibrated.ranges[r])),
    };
    files.push({
      path: options.rangesOut ?? join(options.calibration, 'ranges.json'),
      data: `${JSON.stringify(json, null, 2)}\n`,
    });
  }
  return files;
}

/** A compressed variant's manifest entry (either family; `R` is the family's graph roles). */
export interface CompressedVariant<R extends string> {
  readonly name: string;
  readonly precision: CompressedPrecision;
  readonly files: Record<R, ModelFile>;
  readonly report: string;
  readonly providers: string[];
}

/**
 * Add a compressed variant to the package in `dir`: name and hash its graphs, let `validate`
 * measure it in a scratch folder (removed afterwards) and return its report, then stage and
 * commit graphs, report and (with `calibrated`) the ranges file. Nothing in the package changes
 * unless every step succeeded.
 */
export async function addCompressedVariant<R extends string, T extends object>(args: {
  readonly dir: string;
  readonly roles: readonly R[];
  readonly fp32Files: Readonly<Record<R, ModelFile>>;
  readonly precision: CompressedPrecision;
  readonly bytes: Readonly<Record<R, Uint8Array>>;
  readonly options: CompressOptions;
  /** Name prefix of the scratch folder in the system's temporary directory. */
  readonly scratchPrefix: string;
  readonly calibrated: CalibratedRanges<R> | undefined;
  readonly validate: (variant: CompressedVariant<R>, scratch: string) => Promise<T>;
  readonly markdown: (report: T) => string;
}): Promise<T> {
  const { name, suffix } = variantNames(args.options.mode);
  const reportPath = `reports/${name}.json`;
  const variant: CompressedVariant<R> = {
    name,
    precision: args.precision,
    files: variantFiles(args.roles, args.fp32Files, suffix, args.bytes),
    report: reportPath,
    providers: variantProviders(args.precision),
  };
  const scratch = await mkdtemp(join(tmpdir(), args.scratchPrefix));
  try {
    const report = await args.validate(variant, scratch);
    const files = variantStagedFiles(
      args.dir,
      args.roles,
      {
        files: variant.files,
        bytes: args.bytes,
        reportPath,
        report,
        markdown: args.markdown(report),
      },
      args.options,
      args.calibrated,
    );
    await commitVariant(args.dir, files, variant);
    return report;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
