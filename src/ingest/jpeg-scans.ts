/**
 * How many scans a JPEG holds, counted before libjpeg sees it. libjpeg entropy-decodes every scan
 * of a progressive JPEG over the whole image inside one call that nothing can interrupt, and it
 * accepts a repeated scan without a warning: a 2.8 MB 4096×4096 file with 100,000 repeats of a
 * 27-byte scan held a libuv thread for 146 s, and a 32 MiB one would hold it for about half an hour
 * (sharp 0.35, libvips 8.18). No libvips or sharp setting limits scans, so the node does.
 */
import { kernels } from '../native/index.js';
import type { ImageSize } from './format.js';

/**
 * Most scans the node decodes in one JPEG. Encoders write 1 (baseline: every camera driver's
 * MJPEG and OpenCV's `imencode`), 10 (libjpeg's progressive script for colour), 18 (CMYK) or up to
 * 14 (mozjpeg's scan optimisation); libjpeg-turbo's own fuzzers stop at 100.
 */
export const MAX_JPEG_SCANS = 100;

/**
 * Most steps of the header walk (segments and fill bytes) before the rest of the file is counted
 * as it is, which can only add to the count. A header has a few dozen segments (an ICC profile
 * split over APP2 segments: a few hundred); a file of millions of 4-byte comments or fill bytes
 * would otherwise be walked one step at a time on the JavaScript thread (a 32 MiB run of fill
 * bytes: 65 ms; 65,536 steps: under 1 ms).
 */
export const MAX_HEADER_STEPS = 65_536;

/** What the header walk of {@link readJpegHeader} found. */
export interface JpegHeader {
  /** Where the scans start (the first start-of-scan marker), or where the walk stopped. */
  readonly scansFrom: number;
  /** The frame's size from the first start-of-frame segment, when that one states both sides. */
  readonly size: ImageSize | undefined;
}

/** Start-of-frame markers (every coding process; not DHT C4, JPG C8 or DAC CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/**
 * The header segments of a JPEG, skipped by their lengths up to the first start-of-scan marker,
 * as libjpeg reads them (so a thumbnail inside an APP1 segment is not read), noting the size the
 * first start-of-frame segment gives. Anything unexpected ends the walk early.
 */
export function readJpegHeader(bytes: Uint8Array): JpegHeader {
  let at = 2;
  let size: JpegHeader['size'];
  let sawFrame = false;
  for (
    let step = 0;
    step < MAX_HEADER_STEPS && at + 3 < bytes.length && bytes[at] === 0xff;
    step++
  ) {
    const marker = bytes[at + 1] as number;
    if (marker === 0xda) break;
    if (marker === 0xff) {
      // Fill bytes before a marker.
      at++;
    } else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      // Markers without a length (TEM, RSTn, SOI).
      at += 2;
    } else {
      const length = ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number);
      if (marker === 0x00 || marker === 0xd9 || length < 2) break;
      // The first start-of-frame segment only, as libjpeg reads it: precision (1 byte), then the
      // height and the width (2 bytes each, big-endian). One too short or with a side of 0 gives
      // no size (libvips reads the header then), never a later segment's.
      if (!sawFrame && isStartOfFrame(marker)) {
        sawFrame = true;
        if (length >= 8 && at + 9 <= bytes.length) {
          const height = ((bytes[at + 5] as number) << 8) | (bytes[at + 6] as number);
          const width = ((bytes[at + 7] as number) << 8) | (bytes[at + 8] as number);
          if (width > 0 && height > 0) size = { width, height };
        }
      }
      at += 2 + length;
    }
  }
  return { scansFrom: Math.min(at, bytes.length), size };
}

/**
 * The scans of a JPEG, counted up to `limit + 1` (an upper bound: it never undercounts): from
 * where the header walk stopped (`header`, {@link readJpegHeader}'s), every `FF DA` pair counts
 * (byte stuffing keeps that pair out of entropy-coded data), by the native kernel, which reads
 * bytes crowded with `FF` as fast as any (native/README.md, "Speed"). A walk that stopped early
 * can only add to the count.
 */
export function countJpegScans(
  bytes: Uint8Array,
  limit = MAX_JPEG_SCANS,
  header: JpegHeader = readJpegHeader(bytes),
): number {
  return kernels.countBytePairs(bytes, header.scansFrom, 0xff, 0xda, limit);
}
