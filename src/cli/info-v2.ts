/**
 * What `vla-node info` prints of every v2 package (format vla-node/model@2: the flow and
 * autoregressive families): the manifest's common fields, in the order users and scripts read
 * them, around each family's own, and the variants' lines. A family passes only what is its own.
 */
import * as ort from 'onnxruntime-node';
import { printable } from '../errors.js';
import type { ArManifest } from '../model/ar-manifest.js';
import type { FlowManifest } from '../model/flow-manifest.js';
import { describeFiles, type CheckedVariant } from './info-variant.js';

/** The part of a v2 manifest that `info` shows for every family. */
type V2Manifest = Pick<
  FlowManifest | ArManifest,
  | 'name'
  | 'format'
  | 'family'
  | 'description'
  | 'cameras'
  | 'token_dim'
  | 'chunk'
  | 'control_rate_hz'
  | 'action'
  | 'state'
>;

/**
 * `info --json`'s object for the v2 package in `dir`: the model's common fields with the
 * family's `own` after the chunk, then `variants` as the family reports them.
 */
export function v2Info<O extends object, V>(
  dir: string,
  m: V2Manifest,
  own: O,
  variants: readonly V[],
) {
  return {
    model: {
      name: m.name,
      path: dir,
      format: m.format,
      family: m.family,
      description: m.description ?? '',
      cameras: m.cameras,
      // Every camera's tokens (an autoregressive package has exactly one camera).
      visual_tokens: m.cameras.reduce((n, c) => n + c.patch_grid.width * c.patch_grid.height, 0),
      token_dim: m.token_dim,
      chunk: m.chunk,
      ...own,
      control_rate_hz: m.control_rate_hz,
      action_names: m.action.names,
      state_names: m.state.names,
    },
    variants,
    onnxruntime: ort.env.versions,
    node: process.versions.node,
  };
}

/**
 * `info`'s human output for the v2 package in `dir`: the header, the family's `own` lines, the
 * chunk, and a line per checked variant ending with what `warmup` says of its warm-up.
 */
export function v2Human<W>(
  dir: string,
  m: V2Manifest,
  own: readonly string[],
  variants: readonly CheckedVariant<W, string>[],
  warmup: (result: W) => string,
): string {
  return [
    `${printable(m.name)} (${m.format}, family ${m.family}): ${printable(m.description ?? '')}`,
    `  ${printable(dir)}`,
    ...own,
    `  chunk ${m.chunk.horizon} × ${m.chunk.action_dim} [${printable(m.action.names.join(', '))}] at ${m.control_rate_hz} Hz`,
    'variants:',
    ...variants.map(
      (v) =>
        `  ${printable(v.name)} (${v.precision}): ${describeFiles(v.files)}; warm-up passed (${warmup(v.warmup)})`,
    ),
  ].join('\n');
}
