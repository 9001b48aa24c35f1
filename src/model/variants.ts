/**
 * The variants of a model package, for every family (encoder + policy, flow-matching,
 * autoregressive): their graph files confined, sized and hashed when a package loads, and one rule
 * that picks the variant to run. The families differ only in their graph roles, so each loader
 * passes its roles and everything else lives here once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { byRole } from '../util/roles.js';
import { packageFile, PACKAGE_LIMITS, sha256File } from './files.js';
import type { ModelFile, Precision } from './manifest.js';

/**
 * One variant of a package whose graphs have the roles `R`: its files, the compression report that
 * vouches for it and the execution providers it was validated on.
 */
export interface PackageVariant<R extends string> {
  readonly name: string;
  readonly precision: Precision;
  readonly files: Readonly<Record<R, ModelFile>>;
  readonly report?: string;
  readonly providers?: readonly string[];
}

/** How strictly a package's files are checked when it loads. */
export interface LoadOptions {
  /** Check every variant file's SHA-256 (default true). */
  readonly verifyHashes?: boolean;
}

/** Confine and size one graph file of a variant, and check its SHA-256 unless told not to. */
async function checkVariantFile(
  root: string,
  file: ModelFile,
  field: string,
  options: LoadOptions,
): Promise<string> {
  const path = packageFile(root, file.path, `manifest.${field}.path`, {
    maxBytes: PACKAGE_LIMITS.graphBytes,
  });
  if (options.verifyHashes !== false) await verifyFile(path, file, field);
  return path;
}

/** Confine a variant's report path (the report itself may not exist yet). */
function checkReport(root: string, report: string | undefined, index: number): void {
  if (report === undefined) return;
  packageFile(root, report, `manifest.variants[${index}].report`, {
    maxBytes: PACKAGE_LIMITS.jsonBytes,
    mustExist: false,
  });
}

/**
 * Check every variant's graph files of the roles `roles` names and its report path, in the
 * variants' order, so that every path is confined and sized before anything is hashed or opened by
 * ONNX Runtime, with or without hash verification.
 *
 * @param roles the roles whose files every variant has: the family's own check has made sure of
 * that (a family may leave a role out, as AR's instruction graph is optional).
 * @throws {ModelError} MODEL_FILE naming `manifest.variants[i].files.<role>.path|sha256` or
 * `manifest.variants[i].report`.
 */
export async function checkVariantFiles(
  root: string,
  variants: readonly {
    readonly files: Readonly<Partial<Record<string, ModelFile>>>;
    readonly report?: string;
  }[],
  roles: readonly string[],
  options: LoadOptions,
): Promise<void> {
  for (const [i, v] of variants.entries()) {
    for (const role of roles) {
      await checkVariantFile(
        root,
        v.files[role] as ModelFile,
        `variants[${i}].files.${role}`,
        options,
      );
    }
    checkReport(root, v.report, i);
  }
}

/** Check a confined, regular file (see {@link packageFile}) against its manifest SHA-256. */
async function verifyFile(path: string, file: ModelFile, field: string): Promise<void> {
  let digest: string;
  try {
    digest = await sha256File(path);
  } catch (cause) {
    throw new ModelError('MODEL_FILE', `Expected model file ${file.path} to be readable`, {
      field: `manifest.${field}.path`,
      cause,
    });
  }
  if (digest !== file.sha256) {
    throw new ModelError(
      'MODEL_FILE',
      `Expected ${file.path} to have SHA-256 ${file.sha256} but received ${digest}: the file is corrupted or was replaced without updating the manifest`,
      { field: `manifest.${field}.sha256` },
    );
  }
}

/**
 * What a variant's validation report (written by `vla-node compress`) says about it: whether it
 * passed its gate on `provider`, and its latency relative to fp32; undefined when the variant has
 * no readable report.
 */
export function variantGate(
  pkg: { readonly dir: string },
  variant: { readonly report?: string },
  provider = 'cpu',
): { readonly passed: boolean; readonly latencyRatio: number } | undefined {
  if (variant.report === undefined) return undefined;
  try {
    const path = packageFile(pkg.dir, variant.report, 'manifest.variants[].report', {
      maxBytes: PACKAGE_LIMITS.jsonBytes,
    });
    const report = JSON.parse(readFileSync(path, 'utf8')) as {
      gate?: { passed?: unknown; provider?: unknown };
      latency?: { ratio?: { total?: unknown } };
    };
    const ratio = report.latency?.ratio?.total;
    return {
      passed: report.gate?.passed === true && report.gate.provider === provider,
      latencyRatio: typeof ratio === 'number' && Number.isFinite(ratio) ? ratio : Infinity,
    };
  } catch {
    return undefined;
  }
}

/**
 * The variant of `precision` among `pkg`'s variants; `auto` picks the fastest variant whose report
 * says it passed its gate on `provider` and runs faster than fp32, else fp32. One rule for every
 * package family.
 *
 * @throws {ModelError} INVALID_MANIFEST naming `model.precision` when there is no such variant.
 */
function pickVariant<V extends { readonly precision: Precision; readonly report?: string }>(
  pkg: {
    readonly dir: string;
    readonly manifest: { readonly name: string; readonly variants: readonly V[] };
  },
  precision: Precision | 'auto',
  provider = 'cpu',
): V {
  let wanted: Precision = precision === 'auto' ? 'fp32' : precision;
  let variant = pkg.manifest.variants.find((v) => v.precision === wanted);
  if (precision === 'auto') {
    let best = 1;
    for (const v of pkg.manifest.variants) {
      if (v.precision === 'fp32') continue;
      const gate = variantGate(pkg, v, provider);
      if (gate?.passed === true && gate.latencyRatio < best) {
        best = gate.latencyRatio;
        variant = v;
        wanted = v.precision;
      }
    }
  }
  if (variant === undefined) {
    throw new ModelError(
      'INVALID_MANIFEST',
      `Expected a variant with precision ${wanted} in ${pkg.manifest.name} but it has ${pkg.manifest.variants.map((v) => v.precision).join('|')}`,
      { field: 'model.precision' },
    );
  }
  return variant;
}

/** The absolute path of each of `roles`' graph files of `variant` in the package folder `dir`. */
function variantPaths<R extends string>(
  dir: string,
  variant: { readonly files: Readonly<Partial<Record<R, ModelFile>>> },
  roles: readonly R[],
): Record<R, string> {
  return byRole(roles, (r) => join(dir, (variant.files[r] as ModelFile).path));
}

/**
 * The variant {@link pickVariant} picks for `precision`, with the absolute path of each of `roles`'
 * graph files: what every family's `select…Variant` returns.
 */
export function selectPackageVariant<
  R extends string,
  V extends {
    readonly precision: Precision;
    readonly report?: string;
    readonly files: Readonly<Partial<Record<R, ModelFile>>>;
  },
>(
  pkg: {
    readonly dir: string;
    readonly manifest: { readonly name: string; readonly variants: readonly V[] };
  },
  precision: Precision | 'auto',
  provider: string,
  roles: readonly R[],
): V & { readonly paths: Readonly<Record<R, string>> } {
  const variant = pickVariant(pkg, precision, provider);
  return { ...variant, paths: variantPaths(pkg.dir, variant, roles) };
}
