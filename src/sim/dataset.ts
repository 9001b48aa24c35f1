import { mkdir, open, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FrameIngest, type ImageInputSpec } from '../ingest/index.js';
import type { WordTokenizer } from '../model/tokenizer.js';
import { expertChunk } from './expert.js';
import { objectMask } from './render.js';
import { episodeSeed, Rng } from '../util/rng.js';
import { TabletopSim } from './tabletop.js';
import { wristObjectMask } from './wrist.js';

export interface DatasetOptions {
  readonly out: string;
  readonly episodes: number;
  readonly seed: number;
  readonly horizon: number;
  /** The model's input image (the demonstrations go through the same ingest as at run time). */
  readonly image: ImageInputSpec;
  readonly grid: { readonly width: number; readonly height: number };
  readonly tokenizer: WordTokenizer;
  /** Fraction of episodes whose executed actions get Gaussian noise (DART-style recovery data). */
  readonly noisyFraction: number;
  readonly noiseStd: number;
  readonly onEpisode?: (index: number) => void;
  /**
   * Also record the wrist camera (same ingest, `span` table units across) and its object mask:
   * the two-camera data of flow-matching models. Absent: the one-camera format, unchanged.
   */
  readonly wrist?: { readonly span: number };
}

/** Summary written to meta.json beside the binary arrays. */
export interface DatasetMeta {
  readonly samples: number;
  readonly episodes: number;
  readonly seed: number;
  readonly image: { readonly width: number; readonly height: number; readonly channels: 3 };
  readonly grid: { readonly width: number; readonly height: number };
  readonly horizon: number;
  readonly action_dim: 2;
  readonly state_dim: 2;
  readonly max_tokens: number;
  readonly files: Record<string, string>;
  /** Two-camera datasets only: the cameras in order and the wrist camera's span (table units). */
  readonly cameras?: readonly string[];
  readonly wrist_span?: number;
}

/**
 * Record scripted-expert demonstrations from the simulator for the training recipe: one sample
 * per control step with the ingested image (model size, RGB8), state, instruction tokens, the
 * expert's action chunk from that state and a per-patch object mask. Arrays are little-endian
 * binary files (numpy.fromfile reads them) described by meta.json.
 */
const DATA_FILES = {
  images: 'images.u8',
  states: 'states.f32',
  actions: 'actions.f32',
  tokens: 'tokens.i32',
  saliency: 'saliency.u8',
  episode: 'episode.i32',
} as const;

const WRIST_FILES = {
  images_wrist: 'images_wrist.u8',
  saliency_wrist: 'saliency_wrist.u8',
} as const;

/** Every file {@link writeDataset} writes into its folder. */
export const DATASET_FILES: readonly string[] = [
  ...Object.values(DATA_FILES),
  ...Object.values(WRIST_FILES),
  'meta.json',
];

export async function writeDataset(options: DatasetOptions): Promise<DatasetMeta> {
  const { horizon, grid, tokenizer } = options;
  await mkdir(options.out, { recursive: true });
  const ingest = new FrameIngest(options.image);
  const wrist = options.wrist;
  const files: Record<string, string> = wrist ? { ...DATA_FILES, ...WRIST_FILES } : DATA_FILES;
  const handles = {} as Record<keyof typeof DATA_FILES, FileHandle> &
    Partial<Record<keyof typeof WRIST_FILES, FileHandle>>;
  for (const [k, f] of Object.entries(files)) {
    handles[k as keyof typeof DATA_FILES] = await open(join(options.out, f), 'w');
  }
  const chunk = new Float32Array(horizon * 2);
  const tokens = new Int32Array(tokenizer.maxLength);
  const mask = new Uint8Array(grid.width * grid.height);
  let samples = 0;
  try {
    for (let e = 0; e < options.episodes; e++) {
      const seed = episodeSeed(options.seed, e);
      const sim = new TabletopSim({ seed });
      const noise = new Rng(seed ^ 0x5bd1e995);
      const noisy = noise.next() < options.noisyFraction;
      tokenizer.encodeInto(sim.scene.task.instruction, tokens);
      // One sample per control step, plus one at the goal so the policy learns to stay there.
      for (let atGoal = 0; !sim.done || (sim.success && atGoal++ === 0);) {
        const obs = sim.observe();
        const rgb = await ingest.toRgb(obs.image);
        expertChunk(sim.effector, sim.scene.task.goal, horizon, chunk);
        objectMask(sim.scene.blocks, sim.effector, grid.width, grid.height, mask);
        await handles.images.write(rgb);
        await handles.states.write(new Uint8Array(obs.state.buffer));
        await handles.actions.write(new Uint8Array(chunk.slice().buffer));
        await handles.tokens.write(new Uint8Array(tokens.slice().buffer));
        await handles.saliency.write(mask.slice());
        await handles.episode.write(new Uint8Array(Int32Array.of(e).buffer));
        if (wrist !== undefined) {
          await handles.images_wrist?.write(await ingest.toRgb(sim.wristImage(wrist.span)));
          wristObjectMask(
            sim.scene.blocks,
            sim.effector,
            grid.width,
            grid.height,
            mask,
            wrist.span,
          );
          await handles.saliency_wrist?.write(mask.slice());
        }
        samples++;
        const sx = noisy ? noise.normal() * options.noiseStd : 0;
        const sy = noisy ? noise.normal() * options.noiseStd : 0;
        sim.step([(chunk[0] ?? 0) + sx, (chunk[1] ?? 0) + sy]);
      }
      options.onEpisode?.(e);
    }
  } finally {
    await Promise.all(Object.values(handles).map((h) => h.close()));
  }
  const meta: DatasetMeta = {
    samples,
    episodes: options.episodes,
    seed: options.seed,
    image: { width: options.image.width, height: options.image.height, channels: 3 },
    grid,
    horizon,
    action_dim: 2,
    state_dim: 2,
    max_tokens: tokenizer.maxLength,
    files,
    ...(wrist ? { cameras: ['table', 'wrist'], wrist_span: wrist.span } : {}),
  };
  await writeFile(join(options.out, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}
