/**
 * A real autoregressive package for tests, assembled in a temporary folder: the decoder pair of
 * test/fixtures/ar-decoder (prefill.onnx, decoder.onnx: random weights in the family's graph
 * signatures), the shipped models/tiny-vla vision encoder and word tokenizer (the same 96×96 image,
 * 12×12 grid, 64-dim tokens and 12 words the pair was made for) and a manifest as
 * models/tiny-vla-ar/train/export.py writes it, with sizes read from reference.json and hashes
 * computed from the files. With `{ instruction: true }` the package has the instruction graph
 * (instruction.onnx) and the prefill that takes the words' cache as past (the fixture's
 * prefill-with-past.onnx, same weights), as export.py writes it by default.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArDecoding, ArPipelineOptions } from '../../../src/policy/autoregressive/pipeline.js';
import type { Observation } from '../../../src/pipeline/types.js';

export const AR_FIXTURE_DIR = fileURLToPath(new URL('../../fixtures/ar-decoder', import.meta.url));
const TINY_VLA = fileURLToPath(new URL('../../../models/tiny-vla', import.meta.url));

export type Json = Record<string, unknown>;

interface Reference {
  readonly vocab: number;
  readonly horizon: number;
  readonly action_dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly head_dim: number;
  readonly first_action_position: number;
}

const temps: string[] = [];

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

function tensor(name: string, dtype: string, shape: (number | string)[]): Json {
  return { name, dtype, shape };
}

/**
 * Builds the package in a fresh temporary folder, applies `mutate` to its manifest and returns the
 * folder. Remove every such folder with {@link removeArPackages}.
 */
export async function makeArPackage(
  mutate?: (m: Json) => void,
  options: { readonly instruction?: boolean } = {},
): Promise<string> {
  const cached = options.instruction === true;
  const dir = await mkdtemp(join(tmpdir(), 'vla-ar-pkg-'));
  temps.push(dir);
  const ref = JSON.parse(
    await readFile(join(AR_FIXTURE_DIR, 'reference.json'), 'utf8'),
  ) as Reference;
  const tiny = JSON.parse(await readFile(join(TINY_VLA, 'manifest.json'), 'utf8')) as Json & {
    image: Json & { width: number; height: number };
    patch_grid: { width: number; height: number };
    token_dim: number;
    tokenizer: { max_length: number };
    state: Json & { names: string[] };
  };
  await copyFile(
    join(AR_FIXTURE_DIR, cached ? 'prefill-with-past.onnx' : 'prefill.onnx'),
    join(dir, 'prefill.onnx'),
  );
  if (cached)
    await copyFile(join(AR_FIXTURE_DIR, 'instruction.onnx'), join(dir, 'instruction.onnx'));
  await copyFile(join(AR_FIXTURE_DIR, 'decoder.onnx'), join(dir, 'decoder.onnx'));
  await copyFile(join(TINY_VLA, 'vision_encoder.onnx'), join(dir, 'vision_encoder.onnx'));
  await copyFile(join(TINY_VLA, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const { width: gw, height: gh } = tiny.patch_grid;
  const D = tiny.token_dim;
  const L = tiny.tokenizer.max_length;
  const f32 = 'float32';
  const i64 = 'int64';
  const kv = (prefix: string, length: string | number): Json[] =>
    Array.from({ length: ref.layers }, (_, j) =>
      ['key', 'value'].map((kind) =>
        tensor(`${prefix}.${j}.${kind}`, f32, ['batch', ref.heads, length, ref.head_dim]),
      ),
    ).flat();
  const files: Json = {};
  for (const [role, file] of [
    ['encoder', 'vision_encoder.onnx'],
    ...(cached ? [['instruction', 'instruction.onnx'] as const] : []),
    ['prefill', 'prefill.onnx'],
    ['decoder', 'decoder.onnx'],
  ] as const)
    files[role] = { path: file, sha256: await sha256(join(dir, file)) };
  const manifest: Json = {
    format: 'vla-node/model@2',
    family: 'autoregressive',
    name: 'ar-fixture',
    description: 'test/fixtures/ar-decoder (random weights) behind the tiny-vla encoder',
    control_rate_hz: 10,
    cameras: [
      { name: 'table', encoder: 'encoder', image: tiny.image, patch_grid: tiny.patch_grid },
    ],
    token_dim: D,
    chunk: { horizon: ref.horizon, action_dim: ref.action_dim },
    action: { names: ['x', 'y'], min: [0, 0], max: [1, 1] },
    state: tiny.state,
    tokenizer: { file: 'tokenizer.json', max_length: L },
    decoder: {
      layers: ref.layers,
      heads: ref.heads,
      head_dim: ref.head_dim,
      instruction_attention: 'block-causal',
      first_action_position: ref.first_action_position,
    },
    action_tokenizer: {
      kind: 'uniform_bins',
      bins: ref.vocab,
      token_offset: 0,
      relative_to: 'state',
      range: [0.3, 0.3],
    },
    graphs: {
      encoder: {
        inputs: [tensor('pixels', f32, ['batch', 3, tiny.image.height, tiny.image.width])],
        outputs: [
          tensor('visual_tokens', f32, ['batch', gw * gh, D]),
          tensor('saliency', f32, ['batch', gw * gh]),
        ],
      },
      ...(cached
        ? {
            instruction: {
              inputs: [tensor('instruction_ids', i64, ['batch', L])],
              outputs: kv('present', L),
            },
            prefill: {
              inputs: [
                tensor('visual_tokens', f32, ['batch', 'tokens', D]),
                tensor('token_positions', i64, ['batch', 'tokens']),
                tensor('state', f32, ['batch', tiny.state.names.length]),
                tensor('attention_mask', i64, ['batch', 'total_length']),
                ...kv('past_key_values', L),
              ],
              outputs: [
                tensor('logits', f32, ['batch', 1, ref.vocab]),
                ...kv('present', 'prefix_length'),
              ],
            },
          }
        : {
            prefill: {
              inputs: [
                tensor('visual_tokens', f32, ['batch', 'tokens', D]),
                tensor('token_positions', i64, ['batch', 'tokens']),
                tensor('instruction_ids', i64, ['batch', L]),
                tensor('state', f32, ['batch', tiny.state.names.length]),
              ],
              outputs: [
                tensor('logits', f32, ['batch', 1, ref.vocab]),
                ...kv('present', 'prefix_length'),
              ],
            },
          }),
      decoder: {
        inputs: [
          tensor('input_ids', i64, ['batch', 'sequence_length']),
          tensor('attention_mask', i64, ['batch', 'total_length']),
          tensor('position_ids', i64, ['batch', 'sequence_length']),
          ...kv('past_key_values', 'past_length'),
        ],
        outputs: [
          tensor('logits', f32, ['batch', 'sequence_length', ref.vocab]),
          ...kv('present', 'total_length'),
        ],
      },
    },
    variants: [{ name: 'fp32', precision: 'fp32', files }],
  };
  mutate?.(manifest);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return dir;
}

export async function removeArPackages(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Follow keys and indices into parsed JSON, failing loudly when absent. */
export function at(value: unknown, ...path: (string | number)[]): Json {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) throw new Error(`no ${String(key)} in JSON`);
    v = (v as Record<string | number, unknown>)[key];
  }
  if (typeof v !== 'object' || v === null) throw new Error(`${path.join('.')} is not an object`);
  return v as Json;
}

/**
 * ArPipeline options for tests: every visual token kept, the manifest's limits only, one thread,
 * the given strategy with the whole chunk as its window; `extra` overrides any of them.
 */
export function arPipelineOptions(
  strategy: ArDecoding,
  extra: Partial<ArPipelineOptions> = {},
): ArPipelineOptions {
  return {
    pruning: {
      strategy: 'none',
      keepRatio: 1,
      keepCount: 0,
      minKeepRatio: 0.1,
      seed: 0,
      latencyBudgetMs: 0,
    },
    decoding: { strategy, window: 0 },
    limits: { min: [], max: [], maxDeltaPerStep: 0 },
    intraOpThreads: 1,
    ...extra,
  };
}

/** The fixture packages' camera size. */
const FRAME_SIZE = 96;

/**
 * A test observation for the fixture packages: a 96x96 rgb8 frame of a pattern set by `shift`,
 * the blue-block instruction and a state that moves with `shift`; `extra` overrides any field.
 */
export function arObservation(shift: number, extra: Partial<Observation> = {}): Observation {
  return {
    frame: {
      kind: 'raw',
      encoding: 'rgb8',
      width: FRAME_SIZE,
      height: FRAME_SIZE,
      data: Uint8Array.from(
        { length: FRAME_SIZE * FRAME_SIZE * 3 },
        (_, i) => (i * 37 + shift * 11) % 256,
      ),
    },
    instruction: 'move to the blue block',
    state: [0.3 + 0.05 * shift, 0.7 - 0.05 * shift],
    ...extra,
  };
}
