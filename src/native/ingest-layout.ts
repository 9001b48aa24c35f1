/**
 * The layout of an ingest plan: the integers that tell the `ingestFrame` kernel (native and
 * TypeScript alike) how to read a raw frame and resample it. A plan is built once per frame
 * geometry by src/ingest/raw-kernel.ts; the kernel only follows it, so both backends share every
 * coefficient and agree bit for bit.
 *
 * The kernel works on a "virtual" source image: the frame itself, or its 2x2 superpixels for a
 * Bayer mosaic decimated on the way in. Steps:
 *  1. box-average `kx` x `ky` blocks of the crop rectangle of the virtual image (integer sums,
 *     rounded to nearest), converting the colour of each block average to RGB8;
 *  2. a vertical then a horizontal separable filter (libvips' reducev/reduceh arithmetic: 12-bit
 *     fixed-point taps, +2048, >> 12, clamped to 0..255) to the destination rectangle;
 *  3. RGB8 HWC into `rgb` (zero outside the destination rectangle: the `pad` letterbox) and, when
 *     `out` is not empty, the normalised CHW float32 through the 768-entry lookup table.
 */

/**
 * The largest source frame the kernel takes: pixels per side, and bytes per row (a row of the
 * widest 16-bit RGBA frame). Its plan header holds Int32s, and these keep every offset within them.
 */
export const KERNEL_LIMITS = { side: 1 << 20, step: 8 << 20 } as const;

/** What the kernel reads from the source bytes (header[H.kind]). */
export const SOURCE_KIND = {
  /** 8-bit interleaved, `channels` per pixel; R, G, B at byte offsets a, b, c of a pixel. */
  interleaved8: 0,
  /** 16-bit interleaved, scaled to 8-bit as round(v / 257); offsets a, b, c are channel indices. */
  interleaved16: 1,
  /** Packed 4:2:2 (YUYV, UYVY): Y of pixel p at byte 2p + a, U and V at 4 floor(p / 2) + b, + c. */
  packed422: 2,
  /** Semi-planar 4:2:0 (NV12, NV21): Y plane then interleaved chroma rows; U at +b, V at +c. */
  semiplanar420: 3,
  /** Bayer mosaic as 2x2 superpixels; a and c: position (row * 2 + col) of R and B in a 2x2 cell. */
  bayerSuperpixel: 4,
  /** Bayer mosaic demosaiced bilinearly at full resolution; a and c as for bayerSuperpixel. */
  bayerBilinear: 5,
} as const;

/** Indices into the plan header (an Int32Array of {@link HEADER_LENGTH}). */
export const H = {
  kind: 0,
  /** Channels per source pixel (interleaved kinds). */
  channels: 1,
  a: 2,
  b: 3,
  c: 4,
  /** 1 when 16-bit samples are big-endian. */
  bigEndian: 5,
  /** Source frame geometry in pixels and bytes per row. */
  srcWidth: 6,
  srcHeight: 7,
  step: 8,
  /** Crop rectangle in virtual-image pixels. */
  cropX: 9,
  cropY: 10,
  cropWidth: 11,
  cropHeight: 12,
  /** Box-average factors; intermediate size ceil(crop / k). */
  kx: 13,
  ky: 14,
  midWidth: 15,
  midHeight: 16,
  /** Output image size, and the destination rectangle inside it. */
  outWidth: 17,
  outHeight: 18,
  destX: 19,
  destY: 20,
  destWidth: 21,
  destHeight: 22,
  /** Taps per output row / column (0: no filter, the intermediate is copied). */
  vTaps: 23,
  hTaps: 24,
  /** Virtual image size (the frame, or its superpixel grid). */
  virtualWidth: 25,
  virtualHeight: 26,
} as const;

/** Length of the plan header. */
export const HEADER_LENGTH = 27;

/** Fixed-point scale of the filter taps (libvips' VIPS_INTERPOLATE_SHIFT). */
export const TAP_SHIFT = 12;
