import sharp from 'sharp';
import type { EncodedFrame, RawFrame } from '../ingest/index.js';
import type { Manifest } from '../model/manifest.js';
import { TabletopSim } from '../sim/tabletop.js';
import { episodeSeed } from '../util/rng.js';

/** JPEG quality of the benchmarks' JPEG frames (a usual camera driver setting). */
export const JPEG_QUALITY = 90;

/** An RGB8 frame as a camera that publishes JPEG would send it. */
export async function jpegFrame(
  rgb: Uint8Array,
  width: number,
  height: number,
): Promise<EncodedFrame> {
  const data = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: JPEG_QUALITY })
    .toBuffer();
  return { kind: 'encoded', format: 'jpeg', data };
}

/** Benchmark inputs: simulator observations, one per scene, rendered at a chosen camera size. */
export interface BenchObservation {
  readonly frame: RawFrame;
  readonly state: Float32Array;
  readonly instruction: string;
}

/**
 * `count` observations of different tabletop scenes (seeded), rendered at `width`×`height`
 * (the model's input size by default, so that no resize is needed).
 */
export function benchObservations(
  manifest: Manifest,
  count: number,
  seed: number,
  size: { readonly width: number; readonly height: number } = manifest.image,
): BenchObservation[] {
  const out: BenchObservation[] = [];
  for (let i = 0; i < count; i++) {
    const sim = new TabletopSim({
      seed: episodeSeed(seed, i),
      cameraWidth: size.width,
      cameraHeight: size.height,
    });
    const obs = sim.observe();
    out.push({
      frame: { ...obs.image, data: obs.image.data.slice() },
      state: obs.state.slice(),
      instruction: obs.instruction,
    });
  }
  return out;
}
