/**
 * Test helpers for the shipped model package: its location, temporary copies to break, and the
 * golden fixture. Nothing here hard-codes hashes or weights: everything is read from the files.
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Manifest } from '../../src/model/manifest.js';

/** The shipped package, `models/tiny-vla`. */
export const PACKAGE_DIR = fileURLToPath(new URL('../../models/tiny-vla', import.meta.url));

/** The manifest as plain JSON, for mutation. */
export type JsonObject = Record<string, unknown>;

const temps: string[] = [];

/**
 * Copy the shipped package (without its training folder) into a fresh temporary directory and
 * return the directory. Remove all copies with {@link removeCopies}.
 */
export async function copyPackage(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vla-node-model-'));
  temps.push(dir);
  await cp(PACKAGE_DIR, dir, {
    recursive: true,
    filter: (src) => !(src !== PACKAGE_DIR && basename(src) === 'train'),
  });
  return dir;
}

/** Remove every directory made by {@link copyPackage}. */
export async function removeCopies(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export async function readJson(path: string): Promise<JsonObject> {
  return JSON.parse(await readFile(path, 'utf8')) as JsonObject;
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 2));
}

/** Copy the package and apply `mutate` to its manifest.json. */
export async function copyWithManifest(mutate: (m: JsonObject) => void): Promise<string> {
  const dir = await copyPackage();
  const path = join(dir, 'manifest.json');
  const manifest = await readJson(path);
  mutate(manifest);
  await writeJson(path, manifest);
  return dir;
}

export async function sha256Of(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Follow a path of keys and indices into parsed JSON, failing loudly if it is not there. */
export function at(value: unknown, ...path: (string | number)[]): JsonObject {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) throw new Error(`no ${String(key)} in JSON`);
    v = (v as Record<string | number, unknown>)[key];
  }
  if (typeof v !== 'object' || v === null) throw new Error(`${path.join('.')} is not an object`);
  return v as JsonObject;
}

/** PyTorch's outputs for the first observation of one training episode (see export.py). */
export interface Golden {
  readonly dataset_seed: number;
  readonly episode: number;
  readonly instruction_ids: readonly number[];
  readonly state: readonly number[];
  readonly saliency: readonly number[];
  readonly visual_tokens_first: readonly number[];
  readonly actions_normalised: readonly number[];
}

export async function readGolden(): Promise<Golden> {
  return JSON.parse(await readFile(join(PACKAGE_DIR, 'golden.json'), 'utf8')) as Golden;
}

/** Largest absolute difference between two equally long sequences (Infinity if lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] ?? NaN) - (b[i] ?? NaN));
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst;
}

/**
 * `manifest` with the first dimension of every graph tensor set to `dim`: a name such as "batch"
 * (what the shipped graphs, exported with dynamic batch axes, accept) or 1 (no batch dimension),
 * whatever the shipped manifest declares.
 */
export function withBatchDimension(manifest: Manifest, dim: string | 1 = 'batch'): Manifest {
  const graphs = structuredClone(manifest.graphs) as unknown as Record<
    string,
    Record<string, { shape: (number | string)[] }[]>
  >;
  for (const graph of Object.values(graphs)) {
    for (const tensors of Object.values(graph)) for (const t of tensors) t.shape[0] = dim;
  }
  return { ...manifest, graphs: graphs as unknown as Manifest['graphs'] };
}
