/**
 * What the autoregressive runtime needs from a model package. The manifest (format
 * `vla-node/model@2`, family `autoregressive`) is validated by src/model/ar-manifest.ts against
 * schema/model-manifest.schema.json, where every field's type, range and meaning is written once;
 * this module maps the validated manifest to the runtime's view and builds the action tokenizer.
 */
import type { ResizeMode } from '../../ingest/frame.js';
import {
  arRoles,
  loadArManifest,
  logitsVocab,
  selectArVariant,
  type ArManifest,
  type ArRole,
} from '../../model/ar-manifest.js';
import { ModelError } from '../../errors.js';
import type { Precision } from '../../model/manifest.js';
import type { LoadOptions } from '../../model/variants.js';
import type { WordTokenizer } from '../../model/tokenizer.js';
import type { ActionTokenizer } from './action-tokenizer.js';
import { FastTokenizer } from './fast.js';
import { UniformBinTokenizer } from './uniform-bins.js';

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
  /** How a camera frame becomes the encoder's pixels (the manifest's camera). */
  readonly normalisation: {
    readonly resize: ResizeMode;
    readonly mean: readonly [number, number, number];
    readonly std: readonly [number, number, number];
  };
  readonly grid: { readonly width: number; readonly height: number };
  readonly tokenDim: number;
  readonly maxWords: number;
  /** The encoder's tensor names (roles are positional: pixels -> visual tokens, saliency). */
  readonly encoderNames: {
    readonly pixels: string;
    readonly tokens: string;
    readonly saliency: string;
  };
  /**
   * The selected variant's graph files, relative to `dir`, and the word tokenizer's; `instruction`
   * only when the package has the instruction graph (the prefill then takes its cache as past).
   */
  readonly files: Readonly<Record<ArRole, string>> & {
    readonly instruction?: string;
    readonly words: string;
  };
  /** The selected variant's name and precision. */
  readonly variant: { readonly name: string; readonly precision: Precision };
  /** The validated manifest. */
  readonly manifest: ArManifest;
  /** The instruction's word tokenizer, checked against `tokenizer.max_length`. */
  readonly words: WordTokenizer;
}

/** Which variant to read and whether to hash its files. */
export interface ArPackageOptions extends LoadOptions {
  /** The variant's precision (default `auto`: fp32). */
  readonly precision?: Precision | 'auto';
}

function actionTokenizer(m: ArManifest): ActionTokenizer {
  const spec = m.action_tokenizer;
  const { horizon, action_dim: actionDim } = m.chunk;
  if (spec.kind === 'uniform_bins') return new UniformBinTokenizer(horizon, actionDim, spec.bins);
  try {
    return new FastTokenizer({
      horizon,
      actionDim,
      scale: spec.scale,
      minToken: spec.min_token,
      alphabet: spec.alphabet,
      merges: spec.merges,
    });
  } catch (error) {
    // The byte-pair encoder names fields relative to action_tokenizer; errors here name the
    // manifest path as every other manifest error does.
    if (error instanceof ModelError)
      throw new ModelError(error.code, error.message, {
        field: `manifest.${error.field ?? 'action_tokenizer'}`,
        cause: error,
      });
    throw error;
  }
}

/**
 * Reads, validates and checks the autoregressive package in `dir` (see {@link loadArManifest}) and
 * returns the runtime's view of the variant of `options.precision`.
 *
 * @throws {ModelError} INVALID_MANIFEST / MODEL_FILE naming the field.
 */
export async function readArPackage(
  dir: string,
  options: ArPackageOptions = {},
): Promise<ArPackage> {
  const pkg = await loadArManifest(dir, options);
  const m = pkg.manifest;
  const variant = selectArVariant(pkg, options.precision ?? 'auto');
  const tokenizer = actionTokenizer(m);
  const spec = m.action_tokenizer;
  const vocab = logitsVocab(m, 'decoder');
  if (vocab !== undefined && spec.token_offset + tokenizer.vocabSize > vocab)
    throw new ModelError(
      'INVALID_MANIFEST',
      `Expected token_offset + the action tokenizer's ${tokenizer.vocabSize} ids to fit the decoder's vocabulary of ${vocab} but received token_offset ${spec.token_offset}`,
      { field: 'manifest.action_tokenizer.token_offset' },
    );
  const [cam] = m.cameras;
  const first = m.decoder.first_action_position;
  const enc = m.graphs.encoder;
  return {
    dir: pkg.dir,
    name: m.name,
    horizon: m.chunk.horizon,
    actionDim: m.chunk.action_dim,
    actionMin: m.action.min,
    actionMax: m.action.max,
    stateMean: m.state.mean,
    stateStd: m.state.std,
    range: spec.range,
    tokenizer,
    tokenOffset: spec.token_offset,
    firstActionPosition: first === 'prefix_length' ? undefined : first,
    image: { width: cam.image.width, height: cam.image.height },
    normalisation: { resize: cam.image.resize, mean: cam.image.mean, std: cam.image.std },
    grid: { width: cam.patch_grid.width, height: cam.patch_grid.height },
    tokenDim: m.token_dim,
    maxWords: m.tokenizer.max_length,
    encoderNames: {
      pixels: (enc.inputs[0] as { name: string }).name,
      tokens: (enc.outputs[0] as { name: string }).name,
      saliency: (enc.outputs[1] as { name: string }).name,
    },
    files: {
      ...(Object.fromEntries(
        arRoles(m).map((r) => [r, (variant.files[r] as { path: string }).path]),
      ) as Record<ArRole, string>),
      words: m.tokenizer.file,
    },
    variant: { name: variant.name, precision: variant.precision },
    manifest: m,
    words: pkg.words,
  };
}
