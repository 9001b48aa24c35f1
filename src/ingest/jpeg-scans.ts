/**
 * How many scans a JPEG holds, counted before libjpeg sees it. libjpeg entropy-decodes every scan
 * of a progressive JPEG over the whole image inside one call that nothing can interrupt, and it
 * accepts a repeated scan without a warning: a 2.8 MB 4096×4096 file with 100,000 repeats of a
 * 27-byte scan held a libuv thread for 146 s, and a 32 MiB one would hold it for about half an hour
 * (sharp 0.35, libvips 8.18). No libvips or sharp setting limits scans, so the node does.
 */

/**
 * Most scans the node decodes in one JPEG. Encoders write 1 (baseline: every camera driver's
 * MJPEG and OpenCV's `imencode`), 10 (libjpeg's progressive script for colour), 18 (CMYK) or up to
 * 14 (mozjpeg's scan optimisation); libjpeg-turbo's own fuzzers stop at 100.
 */
export const MAX_JPEG_SCANS = 100;

const SOS = Buffer.from([0xff, 0xda]);

/**
 * The scans of a JPEG, counted up to `limit + 1` (an upper bound: it never undercounts). The header's
 * segments are skipped by their lengths up to the first start-of-scan marker, as libjpeg reads
 * them, so a thumbnail inside an APP1 segment does not count; from there every `FF DA` pair counts
 * (byte stuffing keeps that pair out of entropy-coded data).
 */
export function countJpegScans(bytes: Uint8Array, limit = MAX_JPEG_SCANS): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let at = 2;
  // Only where libjpeg would skip too; anything unexpected ends the walk early, which can only add
  // to the count.
  while (at + 3 < b.length && b[at] === 0xff) {
    const marker = b[at + 1] as number;
    if (marker === 0xda) break;
    if (marker === 0xff) {
      // Fill bytes before a marker.
      at++;
    } else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      // Markers without a length (TEM, RSTn, SOI).
      at += 2;
    } else {
      const length = b.readUInt16BE(at + 2);
      if (marker === 0x00 || marker === 0xd9 || length < 2) break;
      at += 2 + length;
    }
  }
  let scans = 0;
  for (let sos = b.indexOf(SOS, at); sos >= 0 && scans <= limit; sos = b.indexOf(SOS, sos + 2))
    scans++;
  return scans;
}
