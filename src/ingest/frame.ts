/**
 * Frame types for camera input and the conversion of raw `sensor_msgs/Image` pixels to packed RGB.
 */

import { describe, InputError } from '../errors.js';

/** A raw pixel buffer as carried by `sensor_msgs/Image`. */
export interface RawFrame {
  readonly kind: 'raw';
  readonly width: number;
  readonly height: number;
  /** One of {@link SUPPORTED_ENCODINGS}; 16-bit encodings are scaled to 8-bit. */
  readonly encoding: string;
  /** Bytes per row, at least `width * bytesPerPixel`; rows may be padded. Defaults to packed rows. */
  readonly step?: number;
  /** Byte order of 16-bit encodings (default little-endian). */
  readonly isBigEndian?: boolean;
  readonly data: Uint8Array;
}

/**
 * Compressed bytes as carried by `sensor_msgs/CompressedImage` (JPEG or PNG). `format` is
 * informative only: the bytes decide.
 */
export interface EncodedFrame {
  readonly kind: 'encoded';
  readonly format?: string;
  readonly data: Uint8Array;
}

/** Any camera frame the node accepts. */
export type Frame = RawFrame | EncodedFrame;

/** How a frame is fitted to the model input: `crop` centre-crops to the aspect ratio, `pad`
 * letterboxes with black, `stretch` ignores the aspect ratio. */
export type ResizeMode = 'stretch' | 'crop' | 'pad';

/** The image input a model expects. */
export interface ImageInputSpec {
  /** Model input width in pixels. */
  readonly width: number;
  /** Model input height in pixels. */
  readonly height: number;
  readonly resize: ResizeMode;
  /** Per-channel mean in RGB order, applied as `(x / 255 - mean) / std`. */
  readonly mean: readonly [number, number, number];
  /** Per-channel standard deviation in RGB order (each > 0). */
  readonly std: readonly [number, number, number];
}

interface EncodingLayout {
  /** Channels per pixel in the source. */
  readonly channels: number;
  /** Bytes per channel (1 or 2). */
  readonly depth: 1 | 2;
  /** Source channel index for output R, G and B. */
  readonly order: readonly [number, number, number];
}

const RGB = [0, 1, 2] as const;
const BGR = [2, 1, 0] as const;
const MONO = [0, 0, 0] as const;

const LAYOUTS: ReadonlyMap<string, EncodingLayout> = new Map<string, EncodingLayout>([
  ['rgb8', { channels: 3, depth: 1, order: RGB }],
  ['bgr8', { channels: 3, depth: 1, order: BGR }],
  ['rgba8', { channels: 4, depth: 1, order: RGB }],
  ['bgra8', { channels: 4, depth: 1, order: BGR }],
  ['mono8', { channels: 1, depth: 1, order: MONO }],
  ['mono16', { channels: 1, depth: 2, order: MONO }],
  ['rgb16', { channels: 3, depth: 2, order: RGB }],
  ['bgr16', { channels: 3, depth: 2, order: BGR }],
]);

/** The `sensor_msgs/Image` encodings {@link RawFrame} accepts. */
export const SUPPORTED_ENCODINGS: readonly string[] = Object.freeze([...LAYOUTS.keys()]);

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/** Check a raw frame's geometry and return its layout and row stride; throws {@link InputError}. */
function checkRawFrame(frame: RawFrame): { layout: EncodingLayout; step: number } {
  for (const key of ['width', 'height'] as const) {
    if (!isPositiveInteger(frame[key])) {
      throw new InputError(
        `Expected a positive integer for image.${key} but received ${describe(frame[key])}`,
        { field: `image.${key}` },
      );
    }
  }
  const layout = LAYOUTS.get(frame.encoding);
  if (layout === undefined) {
    throw new InputError(
      `Expected encoding ${SUPPORTED_ENCODINGS.join('|')} for image.encoding but received ${frame.encoding}`,
      { field: 'image.encoding' },
    );
  }
  const rowBytes = frame.width * layout.channels * layout.depth;
  const step = frame.step ?? rowBytes;
  if (!Number.isInteger(step) || step < rowBytes) {
    throw new InputError(
      `Expected an integer image.step >= ${rowBytes} (width ${frame.width} x ${layout.channels * layout.depth} bytes for ${frame.encoding}) but received ${describe(step)}`,
      { field: 'image.step' },
    );
  }
  const needed = step * frame.height;
  if (!(frame.data instanceof Uint8Array) || frame.data.length < needed) {
    throw new InputError(
      `Expected at least ${needed} bytes for image.data (step ${step} x height ${frame.height}) but received ${describe(frame.data)}`,
      { field: 'image.data' },
    );
  }
  return { layout, step };
}

/**
 * Convert a raw frame to packed HWC RGB uint8 at its own size: swaps BGR, drops alpha, expands
 * mono, scales 16-bit to 8-bit (honouring `isBigEndian`) and removes row padding.
 *
 * @throws {InputError} when the geometry, encoding or data length is invalid.
 */
export function rawToRgb(frame: RawFrame): Uint8Array {
  const { layout, step } = checkRawFrame(frame);
  const { width, height, data } = frame;
  const rowOut = width * 3;
  const out = new Uint8Array(width * height * 3);
  if (frame.encoding === 'rgb8') {
    if (step === rowOut) {
      out.set(data.subarray(0, height * rowOut));
      return out;
    }
    for (let y = 0; y < height; y++) {
      out.set(data.subarray(y * step, y * step + rowOut), y * rowOut);
    }
    return out;
  }
  const { channels, depth, order } = layout;
  const pixelBytes = channels * depth;
  // Byte offsets of the high and low byte within a 16-bit sample.
  const hi = frame.isBigEndian === true ? 0 : 1;
  const lo = 1 - hi;
  const sample =
    depth === 1
      ? (q: number): number => data[q] ?? 0
      : (q: number): number => Math.round((((data[q + hi] ?? 0) << 8) | (data[q + lo] ?? 0)) / 257);
  const [r, g, b] = [order[0] * depth, order[1] * depth, order[2] * depth];
  let o = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0, p = y * step; x < width; x++, p += pixelBytes) {
      out[o++] = sample(p + r);
      out[o++] = sample(p + g);
      out[o++] = sample(p + b);
    }
  }
  return out;
}

/**
 * Reduce or expand interleaved pixels with 1 to 4 channels to packed RGB: 1 or 2 channels (grey,
 * grey+alpha) are replicated, a 4th channel is dropped. Returns `data` itself when it has 3.
 */
export function toThreeChannels(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0, p = 0, o = 0; i < pixels; i++, p += channels) {
    if (channels < 3) {
      const v = data[p] ?? 0;
      out[o++] = v;
      out[o++] = v;
      out[o++] = v;
    } else {
      out[o++] = data[p] ?? 0;
      out[o++] = data[p + 1] ?? 0;
      out[o++] = data[p + 2] ?? 0;
    }
  }
  return out;
}
