/**
 * What encoded image bytes are, from their signature: the node decodes JPEG and PNG only, whatever
 * a message's `format` says, so that libvips' other loaders (WebP, GIF, TIFF, HEIF/AVIF, SVG, ...)
 * never see bytes from a camera topic, a bag or a bridge request.
 */

/** The encodings the node decodes. */
export type AcceptedFormat = 'jpeg' | 'png';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] as const;

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.length < at + prefix.length) return false;
  return prefix.every((b, i) => bytes[at + i] === b);
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + length));
}

/**
 * The format of encoded image bytes: `jpeg` or `png` for the two the node decodes, the name of a
 * recognised other format (`webp`, `gif`, `tiff`, `heif`, `avif`, `svg`, `bmp`, `jxl`, ...), or
 * `undefined` when the signature is none of these.
 */
export function sniffImageFormat(bytes: Uint8Array): string | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  if (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a') return 'gif';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a]))
    return 'tiff';
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    return brand.startsWith('avi') ? 'avif' : 'heif';
  }
  if (ascii(bytes, 0, 2) === 'BM') return 'bmp';
  if (startsWith(bytes, [0xff, 0x0a]) || ascii(bytes, 4, 4) === 'JXL ') return 'jxl';
  if (ascii(bytes, 0, 4) === '%PDF') return 'pdf';
  // SVG and other XML: text that opens with a tag, possibly after a byte-order mark or spaces.
  const head = new TextDecoder('utf-8', { fatal: false })
    .decode(bytes.subarray(0, 256))
    .replace(/^\uFEFF/, '')
    .trimStart();
  if (head.startsWith('<'))
    return /<svg[\s>]/i.test(head) || head.startsWith('<?xml') ? 'svg' : 'xml';
  return undefined;
}

/** Whether `format` (from {@link sniffImageFormat}) is one the node decodes. */
export function isAcceptedFormat(format: string | undefined): format is AcceptedFormat {
  return format === 'jpeg' || format === 'png';
}

/** An image's width and height in pixels. */
export interface ImageSize {
  readonly width: number;
  readonly height: number;
}

/**
 * A PNG's size from its IHDR chunk (the first chunk, 13 bytes long), when it is there with both
 * sides non-zero.
 */
export function pngSize(bytes: Uint8Array): ImageSize | undefined {
  if (bytes.length < 24 || ascii(bytes, 12, 4) !== 'IHDR') return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 24);
  if (view.getUint32(8) !== 13) return undefined;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  return width > 0 && height > 0 ? { width, height } : undefined;
}
