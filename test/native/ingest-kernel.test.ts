/**
 * The ingestFrame kernel: native against the TypeScript reference bit for bit (every encoding,
 * fit mode and geometry class), against sharp/libvips (what the model was trained on), and the
 * facade's checks of a plan.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { SUPPORTED_ENCODINGS, type RawFrame, type ResizeMode } from '../../src/ingest/index.js';
import { H } from '../../src/native/ingest-layout.js';
import { nativeKernels, referenceKernels } from '../../src/native/index.js';
import { NATIVE_BUILDS, skipWithoutNative } from './builds.js';
import { frameOf, LUT, noise, run } from './ingest-frames.js';

skipWithoutNative('native ingestFrame against the reference');

const MODES: readonly ResizeMode[] = ['stretch', 'crop', 'pad'];

// Sizes that exercise: identity, upscaling, small reductions (taps only), the box shrink plus taps,
// Bayer superpixels (frame >= 2x output) and bilinear demosaic (smaller reductions), odd sizes.
const GEOMETRIES = [
  { src: [16, 12], out: [16, 12] },
  { src: [10, 8], out: [16, 12] },
  { src: [40, 30], out: [32, 24] },
  { src: [48, 40], out: [36, 30] },
  { src: [100, 60], out: [20, 12] },
  { src: [66, 50], out: [9, 7] },
] as const;

for (const [build, native] of NATIVE_BUILDS)
  describe(`native ingestFrame (${build} build) against the reference`, () => {
    it.each(SUPPORTED_ENCODINGS.map((e) => [e]))('%s: bit for bit', async (encoding) => {
      let seed = 1;
      for (const { src, out } of GEOMETRIES) {
        for (const resize of MODES) {
          for (const pad of [seed % 2 === 0 ? 0 : 3]) {
            const { frame, step } = frameOf(encoding, src[0], src[1], pad, seed++);
            const target = { width: out[0], height: out[1], resize };
            const want = run(referenceKernels, frame, step, target);
            const got = run(native, frame, step, target);
            expect(got.rgb).toEqual(want.rgb);
            expect(got.tensor).toEqual(want.tensor);
            const rgb = new Uint8Array(want.rgb.length);
            const tensor = new Float32Array(want.tensor.length);
            const { plan } = want;
            await native.ingestFrameAsync(
              frame.data,
              plan.header,
              plan.vTaps,
              plan.hTaps,
              rgb,
              LUT,
              tensor,
            );
            expect(rgb).toEqual(want.rgb);
            expect(tensor).toEqual(want.tensor);
          }
        }
      }
    });

    it('runs several frames on the thread pool at once, each into its own output', async () => {
      const frames = [1, 2, 3, 4].map((s) => frameOf('rgb8', 64, 48, 0, s));
      const target = { width: 16, height: 12, resize: 'stretch' as const };
      const outs = frames.map(() => new Uint8Array(16 * 12 * 3));
      await Promise.all(
        frames.map(({ frame, step }, i) => {
          const { plan } = run(referenceKernels, frame, step, target);
          return native.ingestFrameAsync(
            frame.data,
            plan.header,
            plan.vTaps,
            plan.hTaps,
            outs[i] as Uint8Array,
            LUT,
            new Float32Array(0),
          );
        }),
      );
      frames.forEach(({ frame, step }, i) => {
        expect(outs[i]).toEqual(run(referenceKernels, frame, step, target).rgb);
      });
    });

    it('ingestFrames: 1 to 5 frames of mixed encodings and fits, split in bands, bit for bit', () => {
      // Output heights that split unevenly, letterboxes whose black rows straddle the bands, taps
      // on both axes and none: every band boundary must give the bytes of one whole-frame call.
      const cases = [
        { encoding: 'rgb8', src: [64, 48], out: [16, 12, 'stretch'] },
        { encoding: 'yuv422', src: [66, 50], out: [9, 7, 'pad'] },
        { encoding: 'bayer_grbg8', src: [100, 60], out: [20, 13, 'crop'] },
        { encoding: 'nv21', src: [40, 30], out: [32, 24, 'pad'] },
        { encoding: 'bgra8', src: [48, 40], out: [36, 31, 'stretch'] },
      ] as const;
      for (let n = 1; n <= cases.length; n++) {
        const jobs = cases.slice(0, n).map(({ encoding, src, out }, i) => {
          const { frame, step } = frameOf(encoding, src[0], src[1], i % 2 === 0 ? 0 : 5, 40 + i);
          const target = { width: out[0], height: out[1], resize: out[2] };
          const want = run(referenceKernels, frame, step, target);
          const rgb = new Uint8Array(want.rgb.length);
          const tensor = new Float32Array(want.tensor.length);
          return { want, rgb, tensor, frame, plan: want.plan };
        });
        native.ingestFrames(
          jobs.map((j) => [
            j.frame.data,
            j.plan.header,
            j.plan.vTaps,
            j.plan.hTaps,
            j.rgb,
            LUT,
            j.tensor,
          ]),
        );
        for (const j of jobs) {
          expect(j.rgb).toEqual(j.want.rgb);
          expect(j.tensor).toEqual(j.want.tensor);
        }
      }
    });
  });

describe('ingestFrame against sharp (libvips lanczos3, what the model was trained on)', () => {
  const cases = [
    { name: '128x128', src: [128, 128], max: 0, mean: 0 },
    { name: '160x120', src: [160, 120], max: 0, mean: 0 },
    { name: '640x480', src: [640, 480], max: 40, mean: 2 },
    { name: '1280x720', src: [1280, 720], max: 40, mean: 5 },
  ] as const;
  // Identical under 2x (no box average: the simulator's 128x128 camera, the training data). Above,
  // the kernel's box takes floor(reduction) where libvips' takes floor(reduction / 2) (GAP in
  // src/ingest/raw-kernel.ts), a softer filter: means within 2 (640x480) and 5 (1280x720) levels, edges up to 40 apart.
  it.each(cases)(
    '$name rgb8 to 96x96 within $max per byte, mean $mean',
    async ({ src, max, mean }) => {
      const [w, h] = src;
      // A smooth random field (noise at 1/16 of the output's resolution enlarged): the filters
      // differ most near the output's Nyquist frequency, which camera content rarely sits at.
      const cw = Math.ceil((w * 6) / 96);
      const ch = Math.ceil((h * 6) / 96);
      const coarse = noise(cw * ch * 3, w);
      const data = await sharp(coarse, { raw: { width: cw, height: ch, channels: 3 } })
        .resize(w, h, { fit: 'fill', kernel: 'cubic' })
        .raw()
        .toBuffer();
      const frame: RawFrame = { kind: 'raw', encoding: 'rgb8', width: w, height: h, data };
      const ours = run(referenceKernels, frame, w * 3, {
        width: 96,
        height: 96,
        resize: 'stretch',
      });
      const theirs = await sharp(data, { raw: { width: w, height: h, channels: 3 } })
        .resize(96, 96, { fit: 'fill', kernel: 'lanczos3' })
        .raw()
        .toBuffer();
      let worst = 0;
      let sum = 0;
      for (let i = 0; i < theirs.length; i++) {
        const d = Math.abs((ours.rgb[i] ?? 0) - (theirs[i] ?? 0));
        worst = Math.max(worst, d);
        sum += d;
      }
      expect(worst).toBeLessThanOrEqual(max);
      expect(sum / theirs.length).toBeLessThanOrEqual(mean);
    },
  );
});

describe('ingestFrame plan checks (both backends)', () => {
  const { frame, step } = frameOf('rgb8', 32, 24, 0, 7);
  const target = { width: 10, height: 7, resize: 'stretch' as const };
  const { plan } = run(referenceKernels, frame, step, target);
  expect(plan.header[H.vTaps]).toBeGreaterThan(0);
  const backends = [['reference', referenceKernels]] as [string, typeof referenceKernels][];
  if (nativeKernels !== undefined) backends.push(['native', nativeKernels]);
  it.each(backends)('%s: a plan that would read or write out of bounds throws', (_n, impl) => {
    const call =
      (header: Int32Array, vTaps = plan.vTaps, src = frame.data) =>
      () => {
        impl.ingestFrame(
          src,
          header,
          vTaps,
          plan.hTaps,
          new Uint8Array(8 * 6 * 3),
          LUT,
          new Float32Array(0),
        );
      };
    const edit = (field: number, value: number): Int32Array => {
      const h = plan.header.slice();
      h[field] = value;
      return h;
    };
    expect(call(edit(H.step, 10))).toThrow(expect.objectContaining({ field: 'header.step' }));
    expect(call(plan.header, plan.vTaps, frame.data.subarray(1))).toThrow(
      expect.objectContaining({ field: 'src' }),
    );
    expect(call(edit(H.cropWidth, 33))).toThrow(
      expect.objectContaining({ field: 'header.cropWidth' }),
    );
    const taps = plan.vTaps.slice();
    taps[0] = 1000;
    expect(call(plan.header, taps)).toThrow(expect.objectContaining({ field: 'vTaps' }));
    expect(call(edit(H.kind, 9))).toThrow(expect.objectContaining({ field: 'header.kind' }));
  });
});

describe('ingestFrames checks (both backends)', () => {
  const { frame, step } = frameOf('rgb8', 32, 24, 0, 9);
  const target = { width: 10, height: 7, resize: 'stretch' as const };
  const { plan } = run(referenceKernels, frame, step, target);
  const job = (rgb: Uint8Array, header = plan.header) =>
    [frame.data, header, plan.vTaps, plan.hTaps, rgb, LUT, new Float32Array(0)] as const;
  const backends = [['reference', referenceKernels]] as [string, typeof referenceKernels][];
  if (nativeKernels !== undefined) backends.push(['native', nativeKernels]);
  it.each(backends)('%s: names the job and field, and refuses shared outputs', (_n, impl) => {
    const bad = plan.header.slice();
    bad[H.step] = 10;
    expect(() => {
      impl.ingestFrames([job(new Uint8Array(210)), job(new Uint8Array(210), bad)]);
    }).toThrow(expect.objectContaining({ field: 'jobs[1].header.step' }));
    const shared = new Uint8Array(420);
    expect(() => {
      impl.ingestFrames([job(shared.subarray(0, 210)), job(shared.subarray(200, 410))]);
    }).toThrow(expect.objectContaining({ field: 'jobs[0].rgb' }));
    expect(() => {
      impl.ingestFrames([[frame.data, plan.header] as unknown as ReturnType<typeof job>]);
    }).toThrow(expect.objectContaining({ field: 'jobs[0]' }));
    const fine = [new Uint8Array(210), new Uint8Array(210)];
    impl.ingestFrames(fine.map((rgb) => job(rgb)));
    expect(fine[1]).toEqual(run(referenceKernels, frame, step, target).rgb);
  });
});
