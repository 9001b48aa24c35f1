/**
 * What the autoregressive runtime needs from a model package: the manifest's `action_tokenizer`,
 * chunk, state and action fields, read with typed errors. The package format (`vla-node/model@2`,
 * family `autoregressive`) is described in schema/model-manifest.schema.json once the
 * flow-matching family's format lands; until then this reader checks exactly the fields it uses.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, ModelError } from '../../errors.js';
import type { ActionTokenizer } from './action-tokenizer.js';
import { FastTokenizer } from './fast.js';
import { UniformBinTokenizer } from './uniform-bins.js';
import type { BpeMerge } from './bpe.js';

/** The autoregressive package's facts the runtime uses. */
export interface ArPackage {
  readonly dir: string;
  readonly name: string;
  readonly horizon: number;
  readonly actionDim: number;
  readonly actionMin: readonly number[];
  readonly actionMax: readonly number[];
  readonly stateMean: readonly number[];
  readonly stateStd: readonly number[];
  /** Decoded values in [-1, 1] times this range are the motion from the current state. */
  readonly range: readonly number[];
  readonly tokenizer: ActionTokenizer;
  readonly tokenOffset: number;
  /** The first action token's position id; undefined: the prefix's length (Optimum). */
  readonly firstActionPosition: number | undefined;
  readonly image: { readonly width: number; readonly height: number };
  readonly grid: { readonly width: number; readonly height: number };
  readonly tokenDim: number;
  readonly maxWords: number;
  readonly files: {
    readonly encoder: string;
    readonly prefill: string;
    readonly decoder: string;
    readonly words: string;
  };
}

type Json = Record<string, unknown>;

function at(value: unknown, path: string): unknown {
  let v = value;
  for (const key of path.split('.')) {
    v =
      typeof v === 'object' && v !== null
        ? (v as Json)[/^\d+$/.test(key) ? Number(key) : key]
        : undefined;
  }
  return v;
}

function fail(path: string, expected: string, received: unknown): never {
  throw new ModelError(
    'INVALID_MANIFEST',
    `Expected ${expected} but received ${describe(received)}`,
    { field: path },
  );
}

function int(m: unknown, path: string, min = 1): number {
  const v = at(m, path);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    fail(path, `an integer >= ${min}`, v);
  return v;
}

function numbers(m: unknown, path: string, length: number, positive = false): number[] {
  const v = at(m, path);
  if (
    !Array.isArray(v) ||
    v.length !== length ||
    !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))
  )
    fail(path, `${length} finite${positive ? ' positive' : ''} numbers`, v);
  return v as number[];
}

function file(m: unknown, path: string): string {
  const v = at(m, path);
  if (typeof v !== 'string' || v.length === 0 || v.includes('..') || v.startsWith('/'))
    fail(path, 'a file name inside the package', v);
  return v;
}

/** Reads and checks `manifest.json` of an autoregressive package in `dir`. */
export async function readArPackage(dir: string): Promise<ArPackage> {
  let m: unknown;
  try {
    m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  } catch (cause) {
    throw new ModelError(
      'INVALID_MANIFEST',
      `Expected a JSON manifest at ${join(dir, 'manifest.json')}`,
      {
        field: 'manifest',
        cause,
      },
    );
  }
  if (at(m, 'format') !== 'vla-node/model@2') fail('format', '"vla-node/model@2"', at(m, 'format'));
  if (at(m, 'family') !== 'autoregressive') fail('family', '"autoregressive"', at(m, 'family'));
  const horizon = int(m, 'chunk.horizon');
  const actionDim = int(m, 'chunk.action_dim');
  const stateDim = (at(m, 'state.mean') as unknown[] | undefined)?.length ?? 0;
  const kind = at(m, 'action_tokenizer.kind');
  let tokenizer: ActionTokenizer;
  if (kind === 'uniform_bins') {
    tokenizer = new UniformBinTokenizer(horizon, actionDim, int(m, 'action_tokenizer.bins', 2));
  } else if (kind === 'fast') {
    const merges = at(m, 'action_tokenizer.merges');
    if (!Array.isArray(merges))
      fail('action_tokenizer.merges', 'an array of [left, right] pairs', merges);
    const scale = at(m, 'action_tokenizer.scale');
    if (typeof scale !== 'number' || !(scale > 0))
      fail('action_tokenizer.scale', 'a positive number', scale);
    const minToken = at(m, 'action_tokenizer.min_token');
    if (typeof minToken !== 'number' || !Number.isInteger(minToken))
      fail('action_tokenizer.min_token', 'an integer', minToken);
    tokenizer = new FastTokenizer({
      horizon,
      actionDim,
      scale,
      minToken,
      alphabet: int(m, 'action_tokenizer.alphabet'),
      merges: merges as BpeMerge[],
    });
  } else fail('action_tokenizer.kind', '"uniform_bins" or "fast"', kind);
  if (at(m, 'action_tokenizer.relative_to') !== 'state')
    fail(
      'action_tokenizer.relative_to',
      '"state" (tokens encode the motion from the current state)',
      at(m, 'action_tokenizer.relative_to'),
    );
  const first = at(m, 'decoder.first_action_position');
  if (
    first !== 'prefix_length' &&
    !(typeof first === 'number' && Number.isInteger(first) && first >= 0)
  )
    fail('decoder.first_action_position', 'a position id (integer >= 0) or "prefix_length"', first);
  const cameras = at(m, 'cameras');
  if (!Array.isArray(cameras) || cameras.length !== 1)
    fail('cameras', 'one camera (several: not yet for this family)', cameras);
  return {
    dir,
    name: String(at(m, 'name')),
    horizon,
    actionDim,
    actionMin: numbers(m, 'action.min', actionDim),
    actionMax: numbers(m, 'action.max', actionDim),
    stateMean: numbers(m, 'state.mean', stateDim),
    stateStd: numbers(m, 'state.std', stateDim, true),
    range: numbers(m, 'action_tokenizer.range', actionDim, true),
    tokenizer,
    tokenOffset: int(m, 'action_tokenizer.token_offset', 0),
    firstActionPosition: first === 'prefix_length' ? undefined : first,
    image: { width: int(m, 'cameras.0.image.width'), height: int(m, 'cameras.0.image.height') },
    grid: {
      width: int(m, 'cameras.0.patch_grid.width'),
      height: int(m, 'cameras.0.patch_grid.height'),
    },
    tokenDim: int(m, 'token_dim'),
    maxWords: int(m, 'tokenizer.max_length'),
    files: {
      encoder: file(m, 'variants.0.files.encoder.path'),
      prefill: file(m, 'variants.0.files.prefill.path'),
      decoder: file(m, 'variants.0.files.decoder.path'),
      words: file(m, 'tokenizer.file'),
    },
  };
}
