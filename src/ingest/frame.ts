/**
 * Frame types for camera input and the layouts of the raw `sensor_msgs/Image` encodings.
 */

import { describe, InputError } from '../errors.js';
import { KERNEL_LIMITS } from '../native/ingest-layout.js';

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

/** How the ingest kernel reads an encoding (src/native/ingest-layout.ts SOURCE_KIND). */
export type SourceKind = 'interleaved8' | 'interleaved16' | 'packed422' | 'semiplanar420' | 'bayer';

/** The memory layout of one `sensor_msgs/Image` encoding. */
export interface EncodingLayout {
  readonly kind: SourceKind;
  /** Interleaved: channels per pixel. Other kinds: 1. */
  readonly channels: number;
  /** Bytes per pixel of a row (2 for 4:2:2, 1 for the luma rows of 4:2:0 and for Bayer). */
  readonly bytesPerPixel: number;
  /**
   * Interleaved: the source channel of output R, G and B. 4:2:2: byte offsets of Y within a
   * pixel pair's first pixel, and of U and V within the 4-byte pair. 4:2:0: [0, U, V] offsets
   * within a chroma pair. Bayer: the 2x2 positions (row * 2 + col) of R, a green, and B.
   */
  readonly order: readonly [number, number, number];
  /** Width (and, for 4:2:0, height) must be even. */
  readonly evenWidth?: boolean;
  readonly evenHeight?: boolean;
}

const RGB = [0, 1, 2] as const;
const BGR = [2, 1, 0] as const;
const MONO = [0, 0, 0] as const;

const LAYOUTS: ReadonlyMap<string, EncodingLayout> = new Map<string, EncodingLayout>([
  ['rgb8', { kind: 'interleaved8', channels: 3, bytesPerPixel: 3, order: RGB }],
  ['bgr8', { kind: 'interleaved8', channels: 3, bytesPerPixel: 3, order: BGR }],
  ['rgba8', { kind: 'interleaved8', channels: 4, bytesPerPixel: 4, order: RGB }],
  ['bgra8', { kind: 'interleaved8', channels: 4, bytesPerPixel: 4, order: BGR }],
  ['mono8', { kind: 'interleaved8', channels: 1, bytesPerPixel: 1, order: MONO }],
  ['mono16', { kind: 'interleaved16', channels: 1, bytesPerPixel: 2, order: MONO }],
  ['rgb16', { kind: 'interleaved16', channels: 3, bytesPerPixel: 6, order: RGB }],
  ['bgr16', { kind: 'interleaved16', channels: 3, bytesPerPixel: 6, order: BGR }],
  // ROS names: `yuv422` is UYVY (U Y0 V Y1), `yuv422_yuy2` is YUYV (Y0 U Y1 V); `uyvy` and `yuyv`
  // are the ROS 2 aliases. BT.601 limited range, as usb_cam and v4l2_camera publish.
  [
    'yuv422',
    { kind: 'packed422', channels: 1, bytesPerPixel: 2, order: [1, 0, 2], evenWidth: true },
  ],
  ['uyvy', { kind: 'packed422', channels: 1, bytesPerPixel: 2, order: [1, 0, 2], evenWidth: true }],
  [
    'yuv422_yuy2',
    { kind: 'packed422', channels: 1, bytesPerPixel: 2, order: [0, 1, 3], evenWidth: true },
  ],
  ['yuyv', { kind: 'packed422', channels: 1, bytesPerPixel: 2, order: [0, 1, 3], evenWidth: true }],
  // Y plane (height rows of `step`), then height / 2 rows of interleaved chroma of the same step.
  [
    'nv12',
    {
      kind: 'semiplanar420',
      channels: 1,
      bytesPerPixel: 1,
      order: [0, 0, 1],
      evenWidth: true,
      evenHeight: true,
    },
  ],
  [
    'nv21',
    {
      kind: 'semiplanar420',
      channels: 1,
      bytesPerPixel: 1,
      order: [0, 1, 0],
      evenWidth: true,
      evenHeight: true,
    },
  ],
  ['bayer_rggb8', { kind: 'bayer', channels: 1, bytesPerPixel: 1, order: [0, 1, 3] }],
  ['bayer_bggr8', { kind: 'bayer', channels: 1, bytesPerPixel: 1, order: [3, 1, 0] }],
  ['bayer_gbrg8', { kind: 'bayer', channels: 1, bytesPerPixel: 1, order: [2, 0, 1] }],
  ['bayer_grbg8', { kind: 'bayer', channels: 1, bytesPerPixel: 1, order: [1, 0, 2] }],
]);

/** The `sensor_msgs/Image` encodings {@link RawFrame} accepts: the one list every input uses. */
export const SUPPORTED_ENCODINGS: readonly string[] = Object.freeze([...LAYOUTS.keys()]);

/** The layout of a supported encoding, or undefined. */
export function encodingLayout(encoding: string): EncodingLayout | undefined {
  return LAYOUTS.get(encoding);
}

/** Bytes of one row without padding (`width` x bytes per pixel). */
export function encodingRowBytes(layout: EncodingLayout, width: number): number {
  return width * layout.bytesPerPixel;
}

/** Bytes of a whole frame of `height` rows of `step` bytes (4:2:0 adds height / 2 chroma rows). */
export function encodingFrameBytes(layout: EncodingLayout, step: number, height: number): number {
  return layout.kind === 'semiplanar420' ? step * (height + Math.ceil(height / 2)) : step * height;
}

/** Why `width` x `height` does not suit the encoding (odd width of 4:2:2...), or undefined. */
export function encodingSizeProblem(
  encoding: string,
  layout: EncodingLayout,
  width: number,
  height: number,
): string | undefined {
  if (layout.evenWidth === true && width % 2 !== 0) return `${encoding} needs an even width`;
  if (layout.evenHeight === true && height % 2 !== 0) return `${encoding} needs an even height`;
  if (layout.kind === 'bayer' && (width < 2 || height < 2)) {
    return `${encoding} needs at least 2x2 pixels`;
  }
  return undefined;
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/**
 * Check a raw frame's geometry against its encoding and return its layout and row stride.
 *
 * @throws {InputError} naming the field (`image.width`, `image.encoding`, `image.step`,
 *   `image.data`) when the geometry, encoding or data length is invalid.
 */
export function checkRawFrame(frame: RawFrame): { layout: EncodingLayout; step: number } {
  for (const key of ['width', 'height'] as const) {
    if (!isPositiveInteger(frame[key]) || frame[key] > KERNEL_LIMITS.side) {
      throw new InputError(
        `Expected an integer in [1, ${KERNEL_LIMITS.side}] for image.${key} but received ${describe(frame[key])}`,
        { field: `image.${key}` },
      );
    }
  }
  const bigEndian: unknown = frame.isBigEndian;
  if (bigEndian !== undefined && typeof bigEndian !== 'boolean') {
    throw new InputError(
      `Expected true, false or nothing for image.isBigEndian but received ${describe(bigEndian)}`,
      { field: 'image.isBigEndian' },
    );
  }
  const layout = LAYOUTS.get(frame.encoding);
  if (layout === undefined) {
    throw new InputError(
      `Expected encoding ${SUPPORTED_ENCODINGS.join('|')} for image.encoding but received ${describe(frame.encoding)}`,
      { field: 'image.encoding' },
    );
  }
  const size = encodingSizeProblem(frame.encoding, layout, frame.width, frame.height);
  if (size !== undefined) {
    throw new InputError(
      `Expected a frame size that suits ${frame.encoding} for image.width/height (${size}) but received ${frame.width}x${frame.height}`,
      { field: 'image.width' },
    );
  }
  const rowBytes = encodingRowBytes(layout, frame.width);
  const step = frame.step ?? rowBytes;
  if (!Number.isInteger(step) || step < rowBytes || step > KERNEL_LIMITS.step) {
    throw new InputError(
      `Expected an integer image.step in [${rowBytes}, ${KERNEL_LIMITS.step}] (at least width ${frame.width} x ${layout.bytesPerPixel} bytes for ${frame.encoding}) but received ${describe(step)}`,
      { field: 'image.step' },
    );
  }
  const needed = encodingFrameBytes(layout, step, frame.height);
  if (!(frame.data instanceof Uint8Array) || frame.data.length < needed) {
    throw new InputError(
      `Expected a Uint8Array of at least ${needed} bytes for image.data (step ${step} x height ${frame.height}${layout.kind === 'semiplanar420' ? ' plus the chroma rows' : ''}) but received ${describe(frame.data)}`,
      { field: 'image.data' },
    );
  }
  return { layout, step };
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
