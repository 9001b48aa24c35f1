/**
 * Camera images on the wire: raw pixels (`sensor_msgs/Image` encodings) or JPEG/PNG bytes, checked
 * against the server's limits before any pixel is touched, and turned into pipeline frames.
 */

import {
  encodingFrameBytes,
  encodingLayout,
  encodingRowBytes,
  encodingSizeProblem,
  SUPPORTED_ENCODINGS,
  type Frame,
} from '../../ingest/index.js';
import { describe } from '../../errors.js';
import { BridgeError } from './errors.js';

/** Encodings of compressed images; the bytes decide which of the two it is. */
export const COMPRESSED_ENCODINGS = ['jpeg', 'png'] as const;
export type CompressedEncoding = (typeof COMPRESSED_ENCODINGS)[number];

/** Raw pixels with their geometry. */
export interface RawWireImage {
  /** A `sensor_msgs/Image` encoding: one of SUPPORTED_ENCODINGS (src/ingest/frame.ts). */
  readonly encoding: string;
  readonly width: number;
  readonly height: number;
  /** Bytes per row (default width × bytes per pixel). */
  readonly step?: number;
  /** Byte order of 16-bit encodings (default false: little-endian). */
  readonly is_bigendian?: boolean;
  readonly data: Uint8Array;
  /** Informative camera name. */
  readonly camera?: string;
}

/** JPEG or PNG bytes. */
export interface CompressedWireImage {
  readonly encoding: CompressedEncoding;
  readonly data: Uint8Array;
  readonly camera?: string;
}

export type WireImage = RawWireImage | CompressedWireImage;

/** Bounds on one image. */
export interface ImageLimits {
  readonly maxImageWidth: number;
  readonly maxImageHeight: number;
  readonly maxImageBytes: number;
}

function invalid(field: string, message: string): BridgeError {
  return new BridgeError('invalid', message, { field });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function integerIn(
  raw: Record<string, unknown>,
  key: string,
  field: string,
  min: number,
  max: number,
): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(
      `${field}.${key}`,
      `Expected an integer in [${min}, ${max}] for ${field}.${key} but received ${describe(v)}`,
    );
  }
  return v;
}

/**
 * Width and height from a PNG's IHDR or a JPEG's first SOF marker, or undefined when the bytes are
 * neither (or the header is cut short).
 */
export function compressedSize(
  bytes: Uint8Array,
):
  { readonly format: 'png' | 'jpeg'; readonly width: number; readonly height: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 24 && PNG.every((b, i) => bytes[i] === b)) {
    // The first chunk must be IHDR: length (4), "IHDR" (4), width (4), height (4), big-endian.
    if (view.getUint32(12) !== 0x49484452) return undefined;
    return { format: 'png', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) return undefined;
    const marker = bytes[pos + 1] ?? 0;
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    pos += 2;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd9 || marker === 0xda) return undefined; // end or scan before any frame
    const length = view.getUint16(pos);
    const isFrame =
      marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (pos + 7 > bytes.length) return undefined;
      return { format: 'jpeg', height: view.getUint16(pos + 3), width: view.getUint16(pos + 5) };
    }
    if (length < 2) return undefined;
    pos += length;
  }
  return undefined;
}

/**
 * Check one image of a request against `limits` (`field` names it, e.g. `images[0]`).
 *
 * @throws {BridgeError} `invalid` naming the field.
 */
export function checkImage(raw: unknown, field: string, limits: ImageLimits): WireImage {
  if (!isRecord(raw)) {
    throw invalid(field, `Expected a map for ${field} but received ${describe(raw)}`);
  }
  const { encoding, data, camera } = raw;
  if (camera !== undefined && (typeof camera !== 'string' || camera.length > 128)) {
    throw invalid(
      `${field}.camera`,
      `Expected a string of at most 128 characters for ${field}.camera but received ${describe(camera)}`,
    );
  }
  const all = [...SUPPORTED_ENCODINGS, ...COMPRESSED_ENCODINGS];
  if (typeof encoding !== 'string' || !all.includes(encoding)) {
    throw invalid(
      `${field}.encoding`,
      `Expected encoding ${all.join('|')} for ${field}.encoding but received ${describe(encoding)}`,
    );
  }
  if (!(data instanceof Uint8Array)) {
    throw invalid(
      `${field}.data`,
      `Expected bin bytes for ${field}.data but received ${describe(data)}`,
    );
  }
  if (data.length > limits.maxImageBytes) {
    throw invalid(
      `${field}.data`,
      `Expected at most ${limits.maxImageBytes} bytes for ${field}.data but received ${data.length}`,
    );
  }
  const cam = typeof camera === 'string' ? { camera } : {};
  if (encoding === 'jpeg' || encoding === 'png') {
    const size = compressedSize(data);
    if (size === undefined) {
      throw invalid(
        `${field}.data`,
        `Expected JPEG or PNG bytes for ${field}.data (encoding ${encoding}) but the ${data.length} bytes have no readable PNG or JPEG header`,
      );
    }
    if (
      size.width < 1 ||
      size.height < 1 ||
      size.width > limits.maxImageWidth ||
      size.height > limits.maxImageHeight
    ) {
      throw invalid(
        `${field}.data`,
        `Expected a ${size.format.toUpperCase()} of at most ${limits.maxImageWidth}x${limits.maxImageHeight} pixels for ${field} but its header says ${size.width}x${size.height}`,
      );
    }
    return { encoding, data, ...cam };
  }
  const width = integerIn(raw, 'width', field, 1, limits.maxImageWidth);
  const height = integerIn(raw, 'height', field, 1, limits.maxImageHeight);
  const layout = encodingLayout(encoding);
  if (layout === undefined) {
    throw invalid(
      `${field}.encoding`,
      `Expected a raw encoding for ${field}.encoding but received ${encoding}`,
    );
  }
  const sizeProblem = encodingSizeProblem(encoding, layout, width, height);
  if (sizeProblem !== undefined) {
    throw invalid(
      `${field}.width`,
      `Expected a size that suits ${encoding} for ${field} (${sizeProblem}) but received ${width}x${height}`,
    );
  }
  const rowBytes = encodingRowBytes(layout, width);
  const step =
    raw.step === undefined
      ? rowBytes
      : integerIn(raw, 'step', field, rowBytes, Math.max(rowBytes, limits.maxImageBytes));
  const frameBytes = encodingFrameBytes(layout, step, height);
  if (data.length < frameBytes) {
    throw invalid(
      `${field}.data`,
      `Expected ${frameBytes} bytes for ${field}.data (${width}x${height} ${encoding}, step ${step}) but received ${data.length}`,
    );
  }
  const big = raw.is_bigendian;
  if (big !== undefined && typeof big !== 'boolean') {
    throw invalid(
      `${field}.is_bigendian`,
      `Expected a boolean for ${field}.is_bigendian but received ${describe(big)}`,
    );
  }
  return {
    encoding,
    width,
    height,
    data,
    ...(raw.step === undefined ? {} : { step }),
    ...(big === undefined ? {} : { is_bigendian: big }),
    ...cam,
  };
}

/** The pipeline frame of a checked wire image (no copy). */
export function imageToFrame(image: WireImage): Frame {
  if (image.encoding === 'jpeg' || image.encoding === 'png') {
    return { kind: 'encoded', format: image.encoding, data: image.data };
  }
  const raw = image as RawWireImage;
  return {
    kind: 'raw',
    encoding: raw.encoding,
    width: raw.width,
    height: raw.height,
    data: raw.data,
    ...(raw.step === undefined ? {} : { step: raw.step }),
    ...(raw.is_bigendian === undefined ? {} : { isBigEndian: raw.is_bigendian }),
  };
}

/** The wire image of a pipeline frame (no copy); compressed bytes are labelled by their header. */
export function frameToImage(frame: Frame, camera?: string): WireImage {
  const cam = camera === undefined ? {} : { camera };
  if (frame.kind === 'encoded') {
    const format = compressedSize(frame.data)?.format ?? (frame.format === 'png' ? 'png' : 'jpeg');
    return { encoding: format, data: frame.data, ...cam };
  }
  return {
    encoding: frame.encoding,
    width: frame.width,
    height: frame.height,
    data: frame.data,
    ...(frame.step === undefined ? {} : { step: frame.step }),
    ...(frame.isBigEndian === undefined ? {} : { is_bigendian: frame.isBigEndian }),
    ...cam,
  };
}

/**
 * The request path of a field the pipeline names: the pipeline sees one frame (`image.data`,
 * `frame.kind`), the protocol the first entry of `images` (`images[0].data`); state, instruction
 * and keep count keep their names.
 */
export function requestField(field: string | undefined): string | undefined {
  if (field === undefined) return undefined;
  const match = /^(?:image|frame)(?=$|[.[])(.*)$/.exec(field);
  return match === null ? field : `images[0]${match[1] ?? ''}`;
}
