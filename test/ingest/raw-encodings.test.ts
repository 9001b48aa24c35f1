/**
 * The YUV and Bayer encodings on real frames: two photographs (../shared/fixtures/real-images)
 * scaled to 64x48 and converted by ffmpeg, an independent converter, into every layout
 * (test/fixtures/ingest/make.sh regenerates them). The node's colours are checked against ffmpeg's
 * own conversion of the same bytes back to RGB, and against the photograph itself.
 *
 * Tolerances (mean absolute difference per channel byte, 0-255):
 * - YUV 4:2:2 and 4:2:0 at full size, against ffmpeg: mean < 2.5 and 99% of bytes within 12.
 *   Both use BT.601 limited range; they differ in rounding and in chroma upsampling (ffmpeg
 *   interpolates chroma, the node repeats it).
 * - Bayer at full size (bilinear demosaic): mean < 3.5 against ffmpeg's bilinear demosaic (they
 *   differ at the borders), and no further from the photograph than ffmpeg's demosaic is.
 * - Downscaled 2x (32x24: YUV averaged per block, Bayer as 2x2 superpixels) against the same
 *   resize of ffmpeg's RGB: mean < 2 for YUV, < 10 for Bayer (a superpixel samples R, G and B at
 *   different sites; ffmpeg interpolates them to the same site).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FrameIngest, rawToRgb, type RawFrame } from '../../src/ingest/index.js';

const DIR = new URL('../fixtures/ingest/', import.meta.url);
const PHOTOS = ['concert', 'Channel_digital_image_CMYK_color_no_profile'] as const;
const W = 64;
const H = 48;

/** ffmpeg pix_fmt -> the ROS encoding of the same bytes. */
const FORMATS = [
  { pixFmt: 'uyvy422', encodings: ['yuv422', 'uyvy'], yuv: true },
  { pixFmt: 'yuyv422', encodings: ['yuv422_yuy2', 'yuyv'], yuv: true },
  { pixFmt: 'nv12', encodings: ['nv12'], yuv: true },
  { pixFmt: 'nv21', encodings: ['nv21'], yuv: true },
  { pixFmt: 'bayer_rggb8', encodings: ['bayer_rggb8'], yuv: false },
  { pixFmt: 'bayer_bggr8', encodings: ['bayer_bggr8'], yuv: false },
  { pixFmt: 'bayer_gbrg8', encodings: ['bayer_gbrg8'], yuv: false },
  { pixFmt: 'bayer_grbg8', encodings: ['bayer_grbg8'], yuv: false },
] as const;

function read(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, DIR)));
}

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

function quantile(a: Uint8Array, b: Uint8Array, q: number): number {
  const d = Array.from(a, (v, i) => Math.abs(v - (b[i] ?? 0))).sort((x, y) => x - y);
  return d[Math.floor(d.length * q)] ?? 0;
}

const small = new FrameIngest({
  width: 32,
  height: 24,
  resize: 'stretch',
  mean: [0, 0, 0],
  std: [1, 1, 1],
});

describe.each(PHOTOS)('%s at 64x48', (photo) => {
  const truth = read(`${photo}.rgb24`);
  it.each(FORMATS)('$pixFmt matches ffmpeg', async ({ pixFmt, encodings, yuv }) => {
    const data = read(`${photo}.${pixFmt}`);
    const ffmpeg = read(`${photo}.${pixFmt}.rgb24`);
    for (const encoding of encodings) {
      const frame: RawFrame = { kind: 'raw', encoding, width: W, height: H, data };
      const ours = rawToRgb(frame);
      const smallOurs = await small.toRgb(frame);
      const smallFfmpeg = await small.toRgb({
        kind: 'raw',
        encoding: 'rgb8',
        width: W,
        height: H,
        data: ffmpeg,
      });
      if (yuv) {
        expect(meanAbs(ours, ffmpeg)).toBeLessThan(2.5);
        expect(quantile(ours, ffmpeg, 0.99)).toBeLessThanOrEqual(12);
        expect(meanAbs(smallOurs, smallFfmpeg)).toBeLessThan(2);
      } else {
        expect(meanAbs(ours, ffmpeg)).toBeLessThan(3.5);
        expect(meanAbs(ours, truth)).toBeLessThanOrEqual(meanAbs(ffmpeg, truth));
        expect(meanAbs(smallOurs, smallFfmpeg)).toBeLessThan(10);
      }
    }
  });

  it('a wrong Bayer order or chroma order is far off (the checks can fail)', () => {
    const data = read(`${photo}.bayer_rggb8`);
    const ffmpeg = read(`${photo}.bayer_rggb8.rgb24`);
    const swapped = rawToRgb({ kind: 'raw', encoding: 'bayer_bggr8', width: W, height: H, data });
    expect(meanAbs(swapped, ffmpeg)).toBeGreaterThan(5);
    const yuyv = read(`${photo}.yuyv422`);
    const asUyvy = rawToRgb({ kind: 'raw', encoding: 'yuv422', width: W, height: H, data: yuyv });
    expect(meanAbs(asUyvy, read(`${photo}.yuyv422.rgb24`))).toBeGreaterThan(5);
  });
});

describe('geometry checks of the new encodings', () => {
  it('rejects odd widths of 4:2:2, odd heights of 4:2:0 and short 4:2:0 data', () => {
    const bad: RawFrame[] = [
      { kind: 'raw', encoding: 'yuv422', width: 3, height: 2, data: new Uint8Array(12) },
      { kind: 'raw', encoding: 'nv12', width: 4, height: 3, data: new Uint8Array(24) },
      { kind: 'raw', encoding: 'nv21', width: 4, height: 4, data: new Uint8Array(16) },
      { kind: 'raw', encoding: 'bayer_rggb8', width: 1, height: 4, data: new Uint8Array(4) },
    ];
    const fields = ['image.width', 'image.width', 'image.data', 'image.width'];
    bad.forEach((frame, i) => {
      expect(() => rawToRgb(frame)).toThrow(
        expect.objectContaining({ name: 'InputError', field: fields[i] }),
      );
    });
  });
});

describe('several cameras at once', () => {
  /** The first photograph in each encoding, as a camera would send it. */
  const photoFrames = (encodings: readonly string[]): RawFrame[] =>
    encodings.map((encoding) => ({
      kind: 'raw',
      encoding,
      width: W,
      height: H,
      data: read(`${PHOTOS[0]}.${encoding === 'yuv422' ? 'uyvy422' : encoding}`),
    }));

  it('toRgbMany gives what toRgb gives per frame, and a bad frame fails alone', async () => {
    const frames = photoFrames(['yuv422', 'nv12', 'bayer_rggb8']);
    const want = await Promise.all(frames.map((f) => small.toRgb(f)));
    const got = await small.toRgbMany(frames);
    expect(got.map((r) => (r.status === 'fulfilled' ? r.value : undefined))).toEqual(want);
    const bad: RawFrame = { ...frames[1], encoding: 'yuv422', width: 63 } as RawFrame;
    const mixed = await small.toRgbMany([bad, frames[0] as RawFrame, bad]);
    expect(mixed.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    expect(mixed[1]).toEqual({ status: 'fulfilled', value: want[0] });
  });

  it('rawToRgbMany converts before it returns, one frame or several, a bad frame failing alone', async () => {
    const frames = photoFrames(['yuv422', 'nv12']);
    const want = await Promise.all(frames.map((f) => small.toRgb(f)));
    // Synchronous: the results are there without awaiting anything.
    expect(small.rawToRgbMany([frames[0] as RawFrame])).toEqual([
      { status: 'fulfilled', value: want[0] },
    ]);
    const bad = { ...frames[0], data: new Uint8Array(10) } as RawFrame;
    const got = small.rawToRgbMany([frames[1] as RawFrame, bad, frames[0] as RawFrame]);
    expect(got.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(got[0]).toEqual({ status: 'fulfilled', value: want[1] });
    expect(got[2]).toEqual({ status: 'fulfilled', value: want[0] });
    const failed = got[1] as PromiseRejectedResult;
    expect(failed.reason).toMatchObject({ name: 'InputError', field: 'image.data' });
  });

  it('rawToRgbMany writes into the buffers it is given and refuses one of the wrong size', async () => {
    const frames = photoFrames(['yuv422', 'nv12']);
    const want = await Promise.all(frames.map((f) => small.toRgb(f)));
    const bytes = small.spec.width * small.spec.height * 3;
    const mine = new Uint8Array(bytes).fill(7);
    // The first frame into the given buffer (every byte written), the second into a fresh one.
    const got = small.rawToRgbMany(frames, [mine]);
    expect(got.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const [first, second] = got as PromiseFulfilledResult<Uint8Array>[];
    expect(first?.value).toBe(mine);
    expect(mine).toEqual(want[0]);
    expect(second?.value).not.toBe(mine);
    expect(second?.value).toEqual(want[1]);
    // Converting again into the same buffer leaves nothing of the frame before.
    small.rawToRgbMany([frames[1] as RawFrame], [mine]);
    expect(mine).toEqual(want[1]);
    for (const wrong of [new Uint8Array(bytes - 1), new Float32Array(bytes)]) {
      expect(() => small.rawToRgbMany(frames, [mine, wrong as unknown as Uint8Array])).toThrow(
        expect.objectContaining({ name: 'InputError', field: 'into[1]' }),
      );
    }
  });

  it('rawToRgbMany writes the normalised tensor in the same pass, alone or with other frames', async () => {
    const frames = photoFrames(['yuv422', 'nv12', 'bayer_rggb8']);
    const plane = small.spec.width * small.spec.height;
    const normalised = (rgb: Uint8Array): Float32Array => {
      const out = new Float32Array(plane * 3);
      small.normalise(rgb, out);
      return out;
    };
    const want = (await Promise.all(frames.map((f) => small.toRgb(f)))).map(normalised);
    // One frame (the single-frame call), then three (the threaded call) with a gap in the list.
    const one = new Float32Array(plane * 3).fill(Number.NaN);
    small.rawToRgbMany([frames[2] as RawFrame], [], [one]);
    expect(one).toEqual(want[2]);
    const tensors = [0, 1, 2].map(() => new Float32Array(plane * 3).fill(Number.NaN));
    const got = small.rawToRgbMany(frames, [], [tensors[0], undefined, tensors[2]]);
    expect(got.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(tensors[0]).toEqual(want[0]);
    expect(Number.isNaN(tensors[1]?.[0])).toBe(true);
    expect(tensors[2]).toEqual(want[2]);
    for (const wrong of [new Float32Array(plane * 3 - 1), new Uint8Array(plane * 3)]) {
      expect(() => small.rawToRgbMany(frames, [], [wrong as unknown as Float32Array])).toThrow(
        expect.objectContaining({ name: 'InputError', field: 'tensors[0]' }),
      );
    }
  });
});
