/**
 * `vla-node bench ingest`'s measurement: every figure present and positive, and the benchmark's
 * YUV and Bayer frames are what the node reads back as the scene's colours.
 */
import { describe, expect, it } from 'vitest';
import {
  cameraFrame,
  cameraIngestMarkdown,
  INGEST_ENCODINGS,
  measureCameraIngest,
  measureIngest,
  rgbToRggb,
  rgbToUyvy,
} from '../../src/bench/ingest.js';
import { FrameIngest, rawToRgb } from '../../src/ingest/index.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { testPipelineOptions, TINY_VLA } from '../helpers.js';

describe('bench ingest', () => {
  it('reports preprocess figures for every size and encoding, and the camera ratio', async () => {
    const { manifest } = await loadModelPackage(TINY_VLA);
    const r = await measureIngest(manifest, manifest.image, 2, 3);
    for (const size of ['640x480', '1280x720']) {
      for (const e of INGEST_ENCODINGS) expect(r.preprocess_p50_ms[size]?.[e]).toBeGreaterThan(0);
      expect(r.sharp_rgb8_p50_ms[size]).toBeGreaterThan(0);
    }
    expect(r.cameras.one_p50_ms).toBeGreaterThan(0);
    expect(r.cameras.two_p50_ms).toBeGreaterThan(0);
    // The ratio is the median of each repeat's own three / one (timed back to back).
    expect(r.cameras.ratio_repeats).toHaveLength(3);
    for (const x of r.cameras.ratio_repeats) expect(x).toBeGreaterThan(0);
    expect(r.cameras.ratio).toBe([...r.cameras.ratio_repeats].sort((a, b) => a - b)[1]);
  }, 120_000);

  it('the report of bench ingest and npm run bench: end to end on camera frames, its Markdown', async () => {
    const model = await loadModelPackage(TINY_VLA);
    const r = await measureCameraIngest(model, testPipelineOptions(), {
      runs: 2,
      repeats: 1,
      frames: 2,
    });
    expect(r.model).toBe('tiny-vla');
    expect(r.kernels).toMatch(/^(native \((baseline|avx2|avx512) build\)|typescript)$/);
    expect(r.end_to_end_640x480.ratio_p50.median).toBeGreaterThan(0);
    const md = cameraIngestMarkdown(r).join('\n');
    expect(md).toContain(`| 640x480 | ${r.ingest.preprocess_p50_ms['640x480']?.rgb8} ms |`);
    expect(md).toContain(`**${r.ingest.cameras.ratio}x**`);
    expect(md).toContain(`**${r.end_to_end_640x480.ratio_p50.median}x**`);
  }, 120_000);

  it('makes YUV and Bayer frames that convert back to the scene', async () => {
    const { manifest } = await loadModelPackage(TINY_VLA);
    const rgb = await cameraFrame(manifest, 'rgb8', 64, 48, 3);
    if (rgb.kind !== 'raw') throw new Error('expected a raw frame');
    const spec = {
      width: 32,
      height: 24,
      resize: 'stretch' as const,
      mean: [0, 0, 0],
      std: [1, 1, 1],
    };
    const ingest = new FrameIngest(spec as never);
    const want = await ingest.toRgb(rgb);
    for (const [encoding, data] of [
      ['yuv422', rgbToUyvy(rgb.data, 64, 48)],
      ['bayer_rggb8', rgbToRggb(rgb.data, 64, 48)],
    ] as const) {
      const got = await ingest.toRgb({ kind: 'raw', encoding, width: 64, height: 48, data });
      let sum = 0;
      for (let i = 0; i < got.length; i++) sum += Math.abs((got[i] ?? 0) - (want[i] ?? 0));
      expect(sum / got.length).toBeLessThan(4);
    }
    expect(rawToRgb({ ...rgb, encoding: 'rgb8' })).toEqual(rgb.data);
  });
});
