/**
 * The ingestFrame kernel at camera sizes, bit for bit against the TypeScript reference in every
 * build: the sizes where the AVX-512 build takes its vector paths (the box mean by permutes, the
 * horizontal taps along each row, the column sums in registers), their partial blocks, and plans
 * that do not fit them and must take the portable paths instead.
 */
import { describe, expect, it } from 'vitest';
import {
  encodingLayout,
  SUPPORTED_ENCODINGS,
  type RawFrame,
  type ResizeMode,
} from '../../src/ingest/index.js';
import { H } from '../../src/native/ingest-layout.js';
import { referenceKernels } from '../../src/native/index.js';
import { NATIVE_BUILDS, skipWithoutNative } from './builds.js';
import { firstDifference, frameOf, LUT, run } from './ingest-frames.js';

skipWithoutNative('native ingestFrame at camera sizes against the reference');

const MODES: readonly ResizeMode[] = ['stretch', 'crop', 'pad'];

// 640x480 to the shipped model's 96x96 (box 6x5 then 7 horizontal taps), an odd size with partial
// blocks everywhere, an enlargement (taps only), and 1280x720 (vertical taps too).
const CAMERAS = [
  { src: [640, 480], out: [96, 96] },
  { src: [333, 247], out: [67, 45] },
  { src: [120, 90], out: [200, 150] },
] as const;

/** The reference's results per case, computed once for every build. */
const references = new Map<
  string,
  { frame: RawFrame; step: number; want: ReturnType<typeof run> }
>();

/** A frame of `encoding` (widths, and heights for 4:2:0, made even where the encoding needs it)
 * through `native` and the reference, compared. */
function expectSame(
  native: typeof referenceKernels,
  encoding: string,
  src: readonly [number, number],
  out: readonly [number, number],
  resize: ResizeMode,
  seed: number,
): void {
  const kind = encodingLayout(encoding)?.kind;
  const even = (v: number, needed: boolean): number => (needed ? v + (v % 2) : v);
  const width = even(src[0], kind === 'packed422' || kind === 'semiplanar420');
  const height = even(src[1], kind === 'semiplanar420');
  const key = `${encoding}/${width}x${height}/${out.join('x')}/${resize}/${seed}`;
  const cached = references.get(key);
  const { frame, step } = cached ?? frameOf(encoding, width, height, seed % 3 === 0 ? 4 : 0, seed);
  const target = { width: out[0], height: out[1], resize };
  const want = cached?.want ?? run(referenceKernels, frame, step, target);
  references.set(key, { frame, step, want });
  const got = run(native, frame, step, target);
  expect(firstDifference(got.rgb, want.rgb), `${key}: first differing byte`).toBe(-1);
  expect(firstDifference(got.tensor, want.tensor), `${key}: tensor`).toBe(-1);
}

for (const [build, native] of NATIVE_BUILDS)
  describe(`native ingestFrame (${build} build) at camera sizes`, () => {
    it.each(SUPPORTED_ENCODINGS.map((e) => [e]))('%s: bit for bit', (encoding) => {
      let seed = 100;
      for (const { src, out } of CAMERAS) {
        for (const resize of MODES) expectSame(native, encoding, src, out, resize, seed++);
      }
    });

    it('1280x720 (vertical and horizontal taps) in the common encodings: bit for bit', () => {
      let seed = 200;
      for (const encoding of ['rgb8', 'bgra8', 'yuv422', 'bayer_rggb8', 'nv12']) {
        for (const resize of MODES) {
          expectSame(native, encoding, [1280, 720], [96, 96], resize, seed++);
        }
      }
    });

    it('boxes too wide for the vector box (many permute windows, sums past 16 bits)', () => {
      // rgba8 boxes of 16 pixels span 11 permute windows; 1024 x 512 to 8 x 2 sums boxes of
      // 128 x 256 pixels (over 65535), which take the scalar loop.
      expectSame(native, 'rgba8', [640, 10], [40, 10], 'stretch', 300);
      expectSame(native, 'rgb8', [1024, 512], [8, 2], 'stretch', 301);
      expectSame(native, 'mono8', [700, 30], [7, 30], 'pad', 302);
    });

    it('box means the 16-bit reciprocal cannot divide take the float quotient', () => {
      // Boxes of 10 x 20 (n = 200) and 2 x 93 pixels (n = 186): no 16-bit multiplier is exact for
      // every sum of theirs; 960 x 161 adds a last box of one row (n = 10, the 16-bit path).
      expectSame(native, 'rgb8', [960, 160], [96, 8], 'stretch', 310);
      expectSame(native, 'rgb8', [192, 372], [96, 4], 'stretch', 311);
      expectSame(native, 'rgb8', [960, 161], [96, 8], 'stretch', 312);
    });

    it('horizontal taps that do not fit the row path take the transposed pass', () => {
      const { frame, step } = frameOf('rgb8', 640, 96, 0, 400);
      const target = { width: 300, height: 96, resize: 'stretch' as const };
      const base = run(referenceKernels, frame, step, target).plan;
      const nh = base.header[H.hTaps] as number;
      const midW = base.header[H.midWidth] as number;
      expect(nh).toBeGreaterThan(0);
      // Starts scattered over the row (a block of 16 outputs spans more than 128 pixels), and
      // weights outside 16 bits that still sum to 4096.
      const scattered = base.hTaps.slice();
      for (let x = 0; x < 300; x++) scattered[x * (nh + 1)] = (x * 97) % (midW - nh + 1);
      const wide = base.hTaps.slice();
      wide[1] = 40000;
      wide[2] = 4096 - 40000 - wide.slice(3, 1 + nh).reduce((a, b) => a + b, 0);
      for (const hTaps of [scattered, wide]) {
        const want = new Uint8Array(300 * 96 * 3);
        const got = new Uint8Array(300 * 96 * 3);
        const t = new Float32Array(0);
        referenceKernels.ingestFrame(frame.data, base.header, base.vTaps, hTaps, want, LUT, t);
        native.ingestFrame(frame.data, base.header, base.vTaps, hTaps, got, LUT, t);
        expect(firstDifference(got, want)).toBe(-1);
      }
    });

    it('ingestFrames: three 640x480 cameras split in bands, bit for bit', () => {
      const target = { width: 96, height: 96, resize: 'stretch' as const };
      const jobs = ['rgb8', 'yuv422', 'bayer_rggb8'].map((encoding, i) => {
        const { frame, step } = frameOf(encoding, 640, 480, 0, 500 + i);
        const want = run(referenceKernels, frame, step, target);
        return {
          frame,
          want,
          rgb: new Uint8Array(96 * 96 * 3),
          tensor: new Float32Array(96 * 96 * 3),
        };
      });
      native.ingestFrames(
        jobs.map((j) => [
          j.frame.data,
          j.want.plan.header,
          j.want.plan.vTaps,
          j.want.plan.hTaps,
          j.rgb,
          LUT,
          j.tensor,
        ]),
      );
      for (const j of jobs) {
        expect(firstDifference(j.rgb, j.want.rgb)).toBe(-1);
        expect(firstDifference(j.tensor, j.want.tensor)).toBe(-1);
      }
    });
  });
