/**
 * Test helpers for the shipped flow package, `models/tiny-vla-flow`: temporary copies to break and
 * the golden fixture. Nothing is hard-coded: shapes, names and values are read from the files.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlowCacheOptions, FlowPolicyOptions } from '../../src/flow/policy.js';

export const FLOW_DIR = fileURLToPath(new URL('../../models/tiny-vla-flow', import.meta.url));

export type JsonObject = Record<string, unknown>;

const temps: string[] = [];

/** A copy of the package (without `train/`) in a fresh temporary folder. */
export async function copyFlowPackage(mutate?: (m: JsonObject) => void): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vla-flow-pkg-'));
  temps.push(dir);
  await cp(FLOW_DIR, dir, {
    recursive: true,
    filter: (src) => !(src !== FLOW_DIR && basename(src) === 'train'),
  });
  if (mutate !== undefined) {
    const path = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(path, 'utf8')) as JsonObject;
    mutate(m);
    await writeFile(path, JSON.stringify(m, null, 2));
  }
  return dir;
}

export async function removeFlowCopies(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Follow keys and indices into parsed JSON, failing loudly when absent. */
export function at(value: unknown, ...path: (string | number)[]): JsonObject {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) throw new Error(`no ${String(key)} in JSON`);
    v = (v as Record<string | number, unknown>)[key];
  }
  if (typeof v !== 'object' || v === null) throw new Error(`${path.join('.')} is not an object`);
  return v as JsonObject;
}

/** PyTorch's outputs for one held-out observation (models/tiny-vla-flow/train/export.py). */
export interface FlowGolden {
  readonly dataset_seed: number;
  readonly episode: number;
  readonly instruction_ids: readonly number[];
  readonly state: readonly number[];
  readonly saliency_table: readonly number[];
  readonly saliency_wrist: readonly number[];
  readonly visual_tokens_first: readonly number[];
  readonly instruction_keys_first: readonly number[];
  readonly prefix_keys_last: readonly number[];
  readonly noise: readonly number[];
  readonly velocity_t0: readonly number[];
  readonly actions_normalised_by_steps: Readonly<Record<string, readonly number[]>>;
  readonly split_vs_masked_max_abs: number;
}

export async function readFlowGolden(): Promise<FlowGolden> {
  return JSON.parse(await readFile(join(FLOW_DIR, 'golden.json'), 'utf8')) as FlowGolden;
}

export const NO_CACHES: FlowCacheOptions = {
  instruction: false,
  visualThreshold: null,
  visualCameras: [],
};

/** Policy options for tests: no pruning, one thread, the given caches. */
export function flowOptions(overrides: Partial<FlowPolicyOptions> = {}): FlowPolicyOptions {
  return {
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
    caches: NO_CACHES,
    intraOpThreads: 1,
    ...overrides,
  };
}
