/**
 * The camera encodings the ingest accepts (src/ingest/frame.ts, the one list) reach the pipeline
 * through every input: ROS Image messages (and so bags on replay) and bridge raw images.
 */
import { describe, expect, it } from 'vitest';
import { rawToRgb, SUPPORTED_ENCODINGS, type RawFrame } from '../../src/ingest/index.js';
import { imageProblem } from '../../src/transports/ros/input.js';
import type { RosImage } from '../../src/transports/ros/messages.js';
import { checkImage, imageToFrame } from '../../src/transports/zmq/image.js';

const LIMITS = { maxImageWidth: 4096, maxImageHeight: 4096, maxImageBytes: 1 << 24 };

/** A 4x4 frame of `encoding` with its minimal step and length. */
function bytesOf(encoding: string): { step: number; data: Uint8Array } {
  const perPixel = /16$/.test(encoding) ? (encoding === 'mono16' ? 2 : 6) : undefined;
  const table: Record<string, number> = { rgb8: 3, bgr8: 3, rgba8: 4, bgra8: 4, mono8: 1 };
  const bpp = perPixel ?? table[encoding] ?? (/yuv422|uyvy|yuyv/.test(encoding) ? 2 : 1);
  const step = 4 * bpp;
  const rows = encoding.startsWith('nv') ? 6 : 4;
  return { step, data: new Uint8Array(step * rows).fill(128) };
}

describe.each(SUPPORTED_ENCODINGS.map((e) => [e]))('%s', (encoding) => {
  const { step, data } = bytesOf(encoding);
  it('is accepted from ROS and converts', () => {
    const m: RosImage = {
      header: { stamp: { sec: 0, nanosec: 0 }, frame_id: 'cam' },
      height: 4,
      width: 4,
      encoding,
      is_bigendian: 0,
      step,
      data,
    };
    expect(imageProblem(m)).toBeUndefined();
    expect(imageProblem({ ...m, data: data.subarray(1) })?.kind).toBe('image size');
    const frame: RawFrame = { kind: 'raw', encoding, width: 4, height: 4, step, data };
    expect(rawToRgb(frame)).toHaveLength(48);
  });
  it('is accepted from the bridge', () => {
    const wire = checkImage({ encoding, width: 4, height: 4, data }, 'images[0]', LIMITS);
    expect(imageToFrame(wire)).toMatchObject({ kind: 'raw', encoding, width: 4, height: 4 });
    expect(() =>
      checkImage({ encoding, width: 4, height: 4, data: data.subarray(1) }, 'images[0]', LIMITS),
    ).toThrow(expect.objectContaining({ field: 'images[0].data' }));
  });
});

describe('4:2:x geometry on the inputs', () => {
  it('ROS and the bridge reject an odd width of yuv422 and an odd height of nv12', () => {
    const m: RosImage = {
      header: { stamp: { sec: 0, nanosec: 0 }, frame_id: 'cam' },
      height: 2,
      width: 3,
      encoding: 'yuv422',
      is_bigendian: 0,
      step: 6,
      data: new Uint8Array(12),
    };
    expect(imageProblem(m)).toMatchObject({ kind: 'image size' });
    expect(() =>
      checkImage(
        { encoding: 'nv12', width: 4, height: 3, data: new Uint8Array(24) },
        'images[0]',
        LIMITS,
      ),
    ).toThrow(expect.objectContaining({ field: 'images[0].width' }));
  });
});
