import { describe, expect, it } from 'vitest';
import {
  keptTokenAnnotations,
  modelToSource,
  timeOf,
} from '../../../src/transports/foxglove/index.js';

describe('modelToSource: model input pixels back onto the camera frame', () => {
  // A 200×100 frame fitted to a 100×100 model input.
  it.each([
    // stretch: each axis scaled on its own.
    ['stretch', { x: 0, y: 0 }, { x: 0, y: 0 }],
    ['stretch', { x: 100, y: 100 }, { x: 200, y: 100 }],
    // crop (cover): scaled by 1, the centre 100 columns (50..150) kept.
    ['crop', { x: 0, y: 0 }, { x: 50, y: 0 }],
    ['crop', { x: 100, y: 100 }, { x: 150, y: 100 }],
    // pad (contain): scaled by 1/2, letterboxed rows 25..75 of the model input.
    ['pad', { x: 0, y: 25 }, { x: 0, y: 0 }],
    ['pad', { x: 100, y: 75 }, { x: 200, y: 100 }],
  ] as const)('%s maps model %j to source %j', (resize, model, source) => {
    const m = modelToSource(resize, 200, 100, 100, 100);
    expect((model.x - m.offsetX) * m.scaleX).toBeCloseTo(source.x, 9);
    expect((model.y - m.offsetY) * m.scaleY).toBeCloseTo(source.y, 9);
  });
});

describe('keptTokenAnnotations', () => {
  it('outlines each kept patch with four segments, clamped to the frame (pad leaves the letterbox out)', () => {
    const geometry = {
      modelWidth: 100,
      modelHeight: 100,
      grid: { width: 2, height: 2 },
      resize: 'pad' as const,
    };
    // Patch 0 is the top-left quarter of the model input: half letterbox, half frame.
    const a = keptTokenAnnotations(
      Int32Array.of(0),
      1,
      geometry,
      200,
      100,
      timeOf(1_500_000_000n),
    ) as {
      points: { points: { x: number; y: number }[]; timestamp: unknown }[];
      texts: { text: string }[];
    };
    const pts = a.points[0]?.points ?? [];
    expect(pts).toHaveLength(8);
    expect(Math.min(...pts.map((p) => p.y))).toBe(0);
    expect(Math.max(...pts.map((p) => p.y))).toBe(50);
    expect(Math.max(...pts.map((p) => p.x))).toBe(100);
    expect(a.points[0]?.timestamp).toEqual({ sec: 1, nsec: 500_000_000 });
    expect(a.texts[0]?.text).toBe('kept 1/4 tokens');
  });
});
