/**
 * Loading a model package of any family (encoder + policy, flow-matching, autoregressive) from its
 * folder: `manifest.json` read (confined, size-limited) and validated against
 * schema/model-manifest.schema.json, then, in one order for every family, the family's own checks,
 * the shared section checks, the tokenizer and every variant's files. Each family's loader says
 * only what is its own (see {@link PackageFamily}).
 */
import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { describe, ModelError, printable } from '../errors.js';
import { packageFile, PACKAGE_LIMITS } from './files.js';
import type { ManifestCommon, ModelFile } from './manifest.js';
import { checkStateAndVariants, loadTokenizer } from './manifest-sections.js';
import type { WordTokenizer } from './tokenizer.js';
import { checkVariantFiles, type LoadOptions } from './variants.js';

const SCHEMA_URL = new URL('../../schema/model-manifest.schema.json', import.meta.url);
let validator: ValidateFunction | undefined;

/**
 * Validate parsed manifest JSON against the schema (either format).
 *
 * @throws {ModelError} INVALID_MANIFEST naming the first offending field.
 */
async function validateManifestJson(raw: unknown): Promise<unknown> {
  if (validator === undefined) {
    const schema = JSON.parse(await readFile(SCHEMA_URL, 'utf8')) as object;
    validator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  if (!validator(raw)) {
    const errors = (validator.errors ?? []).filter(
      (e) => e.keyword !== 'oneOf' && e.keyword !== 'if',
    );
    const first = errors[0];
    const lines = errors.slice(0, 8).map((e) => `${fieldOf(e)}: ${explain(e, raw)}`);
    throw new ModelError('INVALID_MANIFEST', `Invalid model manifest:\n  ${lines.join('\n  ')}`, {
      field: first ? fieldOf(first) : 'manifest',
    });
  }
  return raw;
}

function fieldOf(e: ErrorObject): string {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  const missing = e.keyword === 'required' ? `.${String(e.params.missingProperty)}` : '';
  const extra =
    e.keyword === 'additionalProperties' ? `.${String(e.params.additionalProperty)}` : '';
  return `manifest${path}${missing}${extra}`;
}

function explain(e: ErrorObject, raw: unknown): string {
  const received = e.instancePath
    .split('/')
    .slice(1)
    .reduce<unknown>(
      (o, k) =>
        typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined,
      raw,
    );
  switch (e.keyword) {
    case 'required':
      return 'Expected this key but it is missing';
    case 'additionalProperties':
      return 'Expected no such key (unknown keys are rejected)';
    case 'enum':
      return `Expected one of ${(e.params.allowedValues as unknown[]).join('|')} but received ${describe(received)}`;
    case 'const':
      return `Expected ${JSON.stringify(e.params.allowedValue)} but received ${describe(received)}`;
    default:
      return `Expected a value that ${e.message ?? 'matches the schema'} but received ${describe(received)}`;
  }
}

/**
 * Read and parse `dir/manifest.json` (confined, size-limited), unvalidated: the first step of
 * loading a package of either format.
 *
 * @throws {ModelError} MODEL_FILE when it cannot be read, INVALID_MANIFEST when it is not JSON.
 */
export async function readManifestJson(dir: string): Promise<{ root: string; raw: unknown }> {
  const root = resolve(dir);
  const manifestPath = join(root, 'manifest.json');
  try {
    await access(manifestPath);
  } catch (cause) {
    throw new ModelError(
      'MODEL_FILE',
      `Expected a model package with manifest.json at ${printable(root)} but could not read it`,
      {
        field: 'manifest',
        cause,
      },
    );
  }
  const text = await readFile(
    packageFile(root, 'manifest.json', 'manifest', { maxBytes: PACKAGE_LIMITS.manifestBytes }),
    'utf8',
  );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ModelError(
      'INVALID_MANIFEST',
      `Expected valid JSON in ${printable(manifestPath)} but received text that does not parse: ${printable(reason)}`,
      { field: 'manifest', cause },
    );
  }
  return { root, raw };
}

/** What one package family adds to the loading steps every family shares. */
export interface PackageFamily<M> {
  /**
   * The schema-valid manifest as this family's type, or an INVALID_MANIFEST error (each family
   * says in its own words where a package of another format or family is loaded instead).
   */
  readonly accept: (valid: unknown) => M;
  /** The cross-field checks of the family's own sections and graphs (the schema cannot say them). */
  readonly check: (manifest: M) => void;
  /** The graph roles whose files each variant of `manifest` has. */
  readonly roles: (manifest: M) => readonly string[];
}

/** The sections every family's manifest has, as far as the shared loading steps read them. */
interface SharedManifestSections extends Pick<ManifestCommon, 'tokenizer' | 'state'> {
  readonly variants: readonly {
    readonly name: string;
    readonly files: Readonly<Partial<Record<string, ModelFile>>>;
    readonly report?: string;
  }[];
}

/**
 * Load the package in `dir` as one of `family`: read and schema-validate `manifest.json`, accept
 * it as the family's manifest, run the family's checks and then the shared state and variant-name
 * checks, load the tokenizer, and confine, size and (unless told not to) hash every variant's
 * files. Every path is confined and sized before anything is hashed or opened by ONNX Runtime.
 *
 * @returns the package's absolute folder (`dir`), its manifest and its word tokenizer.
 * @throws {ModelError} MODEL_FILE / INVALID_MANIFEST naming the field (`manifest.<JSON path>`).
 * @example
 * const { dir: root, manifest } = await loadPackage(dir, options, {
 *   accept: acceptFlow, // throws unless format v2, family flow
 *   check: checkFlowConsistency,
 *   roles: () => FLOW_ROLES,
 * });
 */
export async function loadPackage<M extends SharedManifestSections>(
  dir: string,
  options: LoadOptions,
  family: PackageFamily<M>,
): Promise<{ dir: string; manifest: M; tokenizer: WordTokenizer }> {
  const { root, raw } = await readManifestJson(dir);
  const manifest = family.accept(await validateManifestJson(raw));
  family.check(manifest);
  checkStateAndVariants(manifest);
  const tokenizer = await loadTokenizer(root, manifest.tokenizer);
  await checkVariantFiles(root, manifest.variants, family.roles(manifest), options);
  return { dir: root, manifest, tokenizer };
}
