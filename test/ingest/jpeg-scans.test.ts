/**
 * The JPEG scan limit: a progressive JPEG that repeats one tiny scan many times is a valid file
 * that libjpeg decodes in full, once per scan, inside one call nothing can interrupt. The bombs
 * here are built the way such files are made: a real photograph encoded progressively, then one
 * AC scan of the luma component repeated (libjpeg accepts the repeat without a warning).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { FrameIngest } from '../../src/ingest/index.js';
import { countJpegScans, MAX_HEADER_STEPS, MAX_JPEG_SCANS } from '../../src/ingest/jpeg-scans.js';
import { inputRefusal } from '../helpers.js';

const FIXTURES = new URL('../../../shared/fixtures/real-images/', import.meta.url);
const haveFixtures = existsSync(FIXTURES);
if (!haveFixtures) {
  console.warn(
    `Skipping the JPEG scan tests on real photographs: fixture folder ${fileURLToPath(FIXTURES)} does not exist`,
  );
}

const SPEC = { width: 96, height: 96, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1] } as const;
const ingest = new FrameIngest(SPEC);

/** The luma component's id and its block count in a non-interleaved scan, from a progressive SOF. */
function lumaBlocks(jpeg: Buffer): { id: number; blocks: number } {
  for (let i = 2; i + 12 < jpeg.length;) {
    const marker = jpeg[i + 1];
    if (marker === 0xc2) {
      const height = jpeg.readUInt16BE(i + 5);
      const width = jpeg.readUInt16BE(i + 7);
      const components = jpeg[i + 9] as number;
      let hMax = 1;
      let vMax = 1;
      for (let c = 0; c < components; c++) {
        const s = jpeg[i + 11 + 3 * c] as number;
        hMax = Math.max(hMax, s >> 4);
        vMax = Math.max(vMax, s & 15);
      }
      const s0 = jpeg[i + 11] as number;
      const w = Math.ceil((width * (s0 >> 4)) / hMax);
      const h = Math.ceil((height * (s0 & 15)) / vMax);
      return { id: jpeg[i + 10] as number, blocks: Math.ceil(w / 8) * Math.ceil(h / 8) };
    }
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  throw new Error('not a progressive JPEG');
}

/**
 * `progressive` with `extra` more scans before its end: a Huffman table whose one code is EOB14,
 * then `extra` copies of a first AC scan (coefficient 1) of the luma component whose data is
 * end-of-band runs over every block.
 */
function withRepeatedScans(progressive: Buffer, extra: number): Buffer {
  const { id, blocks } = lumaBlocks(progressive);
  const runs = Math.ceil(blocks / 32767);
  const each = Math.ceil(blocks / runs);
  const bits: number[] = [];
  for (let r = 0; r < runs; r++) {
    bits.push(0);
    const more = Math.max(0, each - 16384);
    for (let k = 13; k >= 0; k--) bits.push((more >> k) & 1);
  }
  while (bits.length % 8 !== 0) bits.push(1);
  const data: number[] = [];
  for (let i = 0; i < bits.length; i += 8) {
    const byte = bits.slice(i, i + 8).reduce((v, bit) => (v << 1) | bit, 0);
    data.push(byte);
    if (byte === 0xff) data.push(0);
  }
  const table = Buffer.concat([
    Buffer.from([0xff, 0xc4, 0, 20, 0x13, 1]),
    Buffer.alloc(15),
    Buffer.from([0xe0]),
  ]);
  const scan = Buffer.concat([
    Buffer.from([0xff, 0xda, 0, 8, 1, id, 0x03, 1, 1, 0]),
    Buffer.from(data),
  ]);
  const end = progressive.length - 2;
  return Buffer.concat([
    progressive.subarray(0, end),
    table,
    ...Array.from({ length: extra }, () => scan),
    progressive.subarray(end),
  ]);
}

describe('countJpegScans', () => {
  it('counts the scans after the header, not the FF DA bytes inside its segments', () => {
    // SOI, an APP1 whose payload holds two FF DA pairs (as an EXIF thumbnail does), a restart
    // marker, then three scans.
    const app1 = [0xff, 0xe1, 0, 8, 0xff, 0xda, 0xff, 0xda, 0, 0];
    const scan = [0xff, 0xda, 0, 2, 0x12, 0x34];
    const bytes = Uint8Array.from([0xff, 0xd8, ...app1, 0xff, 0xd0, ...scan, ...scan, ...scan]);
    expect(countJpegScans(bytes)).toBe(3);
    // Counting stops past the limit.
    expect(countJpegScans(bytes, 1)).toBe(2);
    // A segment length that makes no sense ends the walk there: the count can only grow.
    const broken = Uint8Array.from([0xff, 0xd8, 0xff, 0xe1, 0, 1, 0xff, 0xda, ...scan]);
    expect(countJpegScans(broken)).toBe(2);
  });

  it('counts files crowded with FF bytes in full: fill bytes, FF 00 pairs, thousands of segments', () => {
    const scan = [0xff, 0xda, 0, 2, 0x12, 0x34];
    // A long run of fill bytes before the first scan (the walk stops early; the rest is counted).
    const fill = new Uint8Array(2 + 100_000 + 2 * scan.length).fill(0xff);
    fill.set([0xff, 0xd8], 0);
    fill.set([...scan, ...scan], 2 + 100_000);
    expect(countJpegScans(fill)).toBe(2);
    // Comment segments that each hold an FF DA pair are skipped, thousands of them, as libjpeg
    // skips them; past MAX_HEADER_STEPS the walk stops and the rest counts as it is (an overcount,
    // never an undercount).
    const comments = (n: number) =>
      Uint8Array.from([
        0xff,
        0xd8,
        ...Array.from({ length: n }, () => [0xff, 0xfe, 0, 4, 0xff, 0xda]).flat(),
        ...scan,
      ]);
    expect(countJpegScans(comments(2000))).toBe(1);
    expect(countJpegScans(comments(MAX_HEADER_STEPS + 200))).toBe(MAX_JPEG_SCANS + 1);
    // Entropy-coded data of FF 00 pairs (stuffed bytes) around more scans than the limit.
    const stuffed = new Uint8Array(1 << 20);
    for (let i = 0; i < stuffed.length; i += 2) stuffed[i] = 0xff;
    stuffed.set([0xff, 0xd8], 0);
    for (let k = 0; k <= MAX_JPEG_SCANS; k++) stuffed.set(scan, 1000 + k * 9000);
    expect(countJpegScans(stuffed)).toBe(MAX_JPEG_SCANS + 1);
  });
});

describe.skipIf(!haveFixtures)('the JPEG scan limit on a real photograph', () => {
  let progressive: Buffer;

  beforeAll(async () => {
    progressive = await sharp(fileURLToPath(new URL('concert.jpg', FIXTURES)))
      .resize(640, 480, { fit: 'fill' })
      .jpeg({ quality: 85, progressive: true })
      .toBuffer();
  });

  it('counts what encoders write: baseline 1, progressive 10, a thumbnail not counted', async () => {
    const photo = readFileSync(new URL('concert.jpg', FIXTURES));
    const baseline = await sharp(photo).jpeg({ quality: 90 }).toBuffer();
    expect(countJpegScans(baseline)).toBe(1);
    expect(countJpegScans(progressive)).toBe(10);
    // 320x240.jpg carries an EXIF thumbnail (a JPEG with its own scan) in APP1.
    const withThumbnail = readFileSync(new URL('320x240.jpg', FIXTURES));
    expect(withThumbnail.indexOf(Buffer.from([0xff, 0xda]))).toBeLessThan(
      withThumbnail.lastIndexOf(Buffer.from([0xff, 0xda])),
    );
    expect(countJpegScans(withThumbnail)).toBe(1);
  });

  it('decodes a JPEG of up to 100 scans, repeated ones included, and refuses one of more by name', async () => {
    const atLimit = withRepeatedScans(progressive, MAX_JPEG_SCANS - 10);
    expect(countJpegScans(atLimit)).toBe(MAX_JPEG_SCANS);
    const reference = await ingest.toRgb({ kind: 'encoded', data: progressive });
    // The repeated scans are valid: the same picture.
    expect(await ingest.toRgb({ kind: 'encoded', data: atLimit })).toEqual(reference);
    const bomb = withRepeatedScans(progressive, 200);
    const error = await inputRefusal(ingest.toRgb({ kind: 'encoded', data: bomb, format: 'jpeg' }));
    expect(error.field).toBe('image.data');
    expect(error.message).toMatch(/^Expected at most 100 scans in the JPEG of image\.data/);
    // Served on.
    expect(await ingest.toRgb({ kind: 'encoded', data: progressive })).toEqual(reference);
  });

  it('still decodes the most scans an encoder writes (progressive CMYK: 18)', async () => {
    const cmyk = await sharp(progressive)
      .toColourspace('cmyk')
      .jpeg({ progressive: true })
      .toBuffer();
    expect(countJpegScans(cmyk)).toBe(18);
    expect((await ingest.toRgb({ kind: 'encoded', data: cmyk })).length).toBe(96 * 96 * 3);
  });
});
