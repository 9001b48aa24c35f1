/**
 * Builders of the live view's messages in the JSON encoding of Foxglove's schemas
 * (`@foxglove/schemas`: bytes as base64, times as `{ sec, nsec }`), and the JSON schemas of the
 * vla-node channels that have no Foxglove schema. Pure functions: the view calls them only for
 * channels somebody subscribes to.
 */

import type { RawFrame, EncodedFrame, ResizeMode } from '../../ingest/index.js';
import type { ObservedScene } from '../../pipeline/observer.js';

/** `{ sec, nsec }` of a nanosecond stamp. */
export interface FoxgloveTime {
  readonly sec: number;
  readonly nsec: number;
}

export function timeOf(ns: bigint): FoxgloveTime {
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

interface Rgba {
  readonly r: number;
  readonly g: number;
  readonly b: number;
  readonly a: number;
}

const KEPT_COLOUR: Rgba = { r: 0.1, g: 1, b: 0.2, a: 1 };
const CLEAR: Rgba = { r: 0, g: 0, b: 0, a: 0 };
const TEXT_COLOUR: Rgba = { r: 1, g: 1, b: 1, a: 1 };
const TEXT_BACKGROUND: Rgba = { r: 0, g: 0, b: 0, a: 0.6 };

/** Bytes per pixel of the raw encodings vla-node accepts (src/ingest). */
const BYTES_PER_PIXEL: Readonly<Record<string, number>> = {
  rgb8: 3,
  bgr8: 3,
  rgba8: 4,
  bgra8: 4,
  mono8: 1,
  mono16: 2,
  rgb16: 6,
  bgr16: 6,
};

/** foxglove.RawImage of a raw camera frame (rows keep their padding). */
export function rawImage(frame: RawFrame, stamp: FoxgloveTime, frameId: string): object {
  const step = frame.step ?? frame.width * (BYTES_PER_PIXEL[frame.encoding] ?? 3);
  return {
    timestamp: stamp,
    frame_id: frameId,
    width: frame.width,
    height: frame.height,
    encoding: frame.encoding,
    step,
    data: Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength).toString(
      'base64',
    ),
  };
}

/** foxglove.CompressedImage of an encoded (JPEG/PNG) camera frame. */
export function compressedImage(frame: EncodedFrame, stamp: FoxgloveTime, frameId: string): object {
  const d = frame.data;
  // The bytes decide, as in ingest: PNG starts with 0x89 'P'.
  const format = d[0] === 0x89 && d[1] === 0x50 ? 'png' : 'jpeg';
  return {
    timestamp: stamp,
    frame_id: frameId,
    format,
    data: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'),
  };
}

/** How the model's input maps back onto the source frame: source = (model - offset) × scale. */
export interface ModelToSource {
  readonly scaleX: number;
  readonly scaleY: number;
  readonly offsetX: number;
  readonly offsetY: number;
}

/**
 * The inverse of the ingest's fit of a `sw`×`sh` frame to a `mw`×`mh` model input: stretch scales
 * each axis, crop (sharp's `cover`) scales to cover and cuts the centre, pad (`contain`) scales to
 * fit and centres.
 */
export function modelToSource(
  resize: ResizeMode,
  sw: number,
  sh: number,
  mw: number,
  mh: number,
): ModelToSource {
  if (resize === 'stretch') return { scaleX: sw / mw, scaleY: sh / mh, offsetX: 0, offsetY: 0 };
  const s = resize === 'crop' ? Math.max(mw / sw, mh / sh) : Math.min(mw / sw, mh / sh);
  return {
    scaleX: 1 / s,
    scaleY: 1 / s,
    offsetX: (mw - sw * s) / 2,
    offsetY: (mh - sh * s) / 2,
  };
}

export interface OverlayGeometry {
  readonly modelWidth: number;
  readonly modelHeight: number;
  readonly grid: { readonly width: number; readonly height: number };
  readonly resize: ResizeMode;
}

/** The overlay geometry of a model: its input size, token grid and resize mode. */
export function overlayGeometry(manifest: {
  readonly image: { readonly width: number; readonly height: number; readonly resize: ResizeMode };
  readonly patch_grid: { readonly width: number; readonly height: number };
}): OverlayGeometry {
  return {
    modelWidth: manifest.image.width,
    modelHeight: manifest.image.height,
    grid: manifest.patch_grid,
    resize: manifest.image.resize,
  };
}

/**
 * foxglove.ImageAnnotations over a `sw`×`sh` camera frame: the outline of each kept token's patch
 * (one LINE_LIST annotation, four segments per token, so a frame costs two objects whatever the
 * number of tokens) and a caption. `/vla/model_input` shows the pruned patches dimmed.
 */
export function keptTokenAnnotations(
  positions: ArrayLike<number>,
  count: number,
  geometry: OverlayGeometry,
  sw: number,
  sh: number,
  stamp: FoxgloveTime,
): object {
  const { grid } = geometry;
  const total = grid.width * grid.height;
  const map = modelToSource(geometry.resize, sw, sh, geometry.modelWidth, geometry.modelHeight);
  const pw = geometry.modelWidth / grid.width;
  const ph = geometry.modelHeight / grid.height;
  const clampX = (x: number): number => Math.min(sw, Math.max(0, x));
  const clampY = (y: number): number => Math.min(sh, Math.max(0, y));
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < count; i++) {
    const p = positions[i] as number;
    const gx = p % grid.width;
    const gy = Math.floor(p / grid.width);
    const x0 = clampX((gx * pw - map.offsetX) * map.scaleX);
    const x1 = clampX(((gx + 1) * pw - map.offsetX) * map.scaleX);
    const y0 = clampY((gy * ph - map.offsetY) * map.scaleY);
    const y1 = clampY(((gy + 1) * ph - map.offsetY) * map.scaleY);
    const a = { x: x0, y: y0 };
    const b = { x: x1, y: y0 };
    const c = { x: x1, y: y1 };
    const d = { x: x0, y: y1 };
    points.push(a, b, b, c, c, d, d, a);
  }
  return {
    circles: [],
    points: [
      {
        timestamp: stamp,
        type: 4, // LINE_LIST
        points,
        outline_color: KEPT_COLOUR,
        outline_colors: [],
        fill_color: CLEAR,
        thickness: 1,
      },
    ],
    texts: [
      {
        timestamp: stamp,
        position: { x: 2, y: 2 },
        text: `kept ${count}/${total} tokens`,
        font_size: Math.max(8, Math.round(sh / 14)),
        text_color: TEXT_COLOUR,
        background_color: TEXT_BACKGROUND,
      },
    ],
  };
}

/** foxglove.Log; `level` is foxglove.LogLevel (2 INFO, 3 WARNING, 4 ERROR). */
export function logMessage(level: 2 | 3 | 4, text: string, stamp: FoxgloveTime): object {
  return { timestamp: stamp, level, message: text, name: 'vla-node', file: '', line: 0 };
}

const IDENTITY = { x: 0, y: 0, z: 0, w: 1 } as const;

function entity(
  id: string,
  stamp: FoxgloveTime,
  frameId: string,
  parts: { cubes?: object[]; spheres?: object[]; cylinders?: object[]; texts?: object[] },
): object {
  return {
    timestamp: stamp,
    frame_id: frameId,
    id,
    lifetime: { sec: 0, nsec: 0 },
    frame_locked: false,
    metadata: [],
    arrows: [],
    cubes: parts.cubes ?? [],
    spheres: parts.spheres ?? [],
    cylinders: parts.cylinders ?? [],
    lines: [],
    triangles: [],
    texts: parts.texts ?? [],
    models: [],
  };
}

/**
 * foxglove.SceneUpdate of the tabletop in frame `frameId`: the table, the blocks (cubes in their
 * colours), the effector (a sphere) and the target (a flat disc). Table x is 3D x and table y (down
 * in the image) is 3D −y, so the top view looks like the camera's.
 */
export function sceneUpdate(scene: ObservedScene, stamp: FoxgloveTime, frameId: string): object {
  const pose = (x: number, y: number, z: number): object => ({
    position: { x, y: -y, z },
    orientation: IDENTITY,
  });
  const side = 2 * scene.blockHalfSize;
  const r = scene.effectorRadius;
  return {
    deletions: [],
    entities: [
      entity('table', stamp, frameId, {
        cubes: [
          {
            pose: pose(0.5, 0.5, -0.005),
            size: { x: 1, y: 1, z: 0.01 },
            color: { r: 0.92, g: 0.9, b: 0.85, a: 1 },
          },
        ],
      }),
      entity('blocks', stamp, frameId, {
        cubes: scene.blocks.map((b) => ({
          pose: pose(b.centre.x, b.centre.y, side / 2),
          size: { x: side, y: side, z: side },
          color: { r: b.rgb[0] / 255, g: b.rgb[1] / 255, b: b.rgb[2] / 255, a: 1 },
        })),
      }),
      entity('effector', stamp, frameId, {
        spheres: [
          {
            pose: pose(scene.effector.x, scene.effector.y, r),
            size: { x: 2 * r, y: 2 * r, z: 2 * r },
            color: { r: 0.15, g: 0.15, b: 0.15, a: 1 },
          },
        ],
      }),
      entity('target', stamp, frameId, {
        cylinders: [
          {
            pose: pose(scene.target.x, scene.target.y, 0.002),
            size: { x: 2 * r, y: 2 * r, z: 0.004 },
            bottom_scale: 1,
            top_scale: 1,
            color: { r: 1, g: 0.1, b: 0.6, a: 0.7 },
          },
        ],
      }),
    ],
  };
}

const NUMBERS = { type: 'array', items: { type: 'number' } } as const;

/** JSON schemas of the vla-node channels that have no Foxglove schema (draft-07). */
export const VLA_SCHEMAS = {
  'vla.Instruction': {
    title: 'vla.Instruction',
    description: 'The instruction the policy runs under, with each camera frame.',
    type: 'object',
    properties: { text: { type: 'string' }, stream: { type: 'string' } },
    required: ['text', 'stream'],
  },
  'vla.ActionChunk': {
    title: 'vla.ActionChunk',
    description:
      'An action chunk as it arrived: steps[k].values is the action planned k periods ahead; dims[d].values is dimension d over the horizon (plot it against the index).',
    type: 'object',
    properties: {
      sequence: { type: 'integer' },
      horizon: { type: 'integer' },
      action_dim: { type: 'integer' },
      names: { type: 'array', items: { type: 'string' } },
      steps: {
        type: 'array',
        items: {
          type: 'object',
          properties: { step: { type: 'integer' }, values: NUMBERS },
          required: ['step', 'values'],
        },
      },
      dims: {
        type: 'array',
        items: {
          type: 'object',
          properties: { name: { type: 'string' }, values: NUMBERS },
          required: ['name', 'values'],
        },
      },
      first: NUMBERS,
    },
    required: ['sequence', 'horizon', 'action_dim', 'names', 'steps', 'dims', 'first'],
  },
  'vla.ActionSent': {
    title: 'vla.ActionSent',
    description:
      'The action sent to the robot this control period, and whether the plan or the safety watchdog gave it.',
    type: 'object',
    properties: {
      period: { type: 'integer' },
      source: { type: 'string', enum: ['plan', 'safe'] },
      values: NUMBERS,
      names: { type: 'array', items: { type: 'string' } },
    },
    required: ['period', 'source', 'values', 'names'],
  },
  'vla.Stats': {
    title: 'vla.Stats',
    description:
      'Per chunk: frame → chunk latency and its stages (ms), visual tokens kept, and the live view’s own counters.',
    type: 'object',
    properties: {
      sequence: { type: 'integer' },
      latency_ms: { type: 'number' },
      stages_ms: {
        type: 'object',
        properties: {
          preprocess: { type: 'number' },
          encode: { type: 'number' },
          prune: { type: 'number' },
          policy: { type: 'number' },
          postprocess: { type: 'number' },
        },
      },
      tokens_kept: { type: 'integer' },
      tokens_total: { type: 'integer' },
      keep_ratio: { type: 'number' },
      chunks: { type: 'integer' },
      commands: { type: 'integer' },
      safe_commands: { type: 'integer' },
      viewer_dropped: { type: 'integer' },
    },
    required: ['sequence', 'chunks', 'commands', 'safe_commands', 'viewer_dropped'],
  },
} as const;
