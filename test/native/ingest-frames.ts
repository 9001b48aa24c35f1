/**
 * Frames and plans for the ingest kernel's tests: random frames of any encoding (with row padding
 * and either byte order) and one call of a backend's ingestFrame on a frame's plan.
 */
import { encodingLayout, planFor, type RawFrame, type ResizeMode } from '../../src/ingest/index.js';
import type { referenceKernels } from '../../src/native/index.js';
import { Rng } from '../../src/util/rng.js';

/** The lookup table of a model normalising with mean 0.5 and std 0.25. */
export const LUT = Float32Array.from({ length: 768 }, (_, i) => ((i % 256) / 255 - 0.5) / 0.25);

/** `length` random bytes of `seed` (four per draw: camera-sized frames are millions of bytes). */
export function noise(length: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(rng.next() * 2 ** 32);
  return new Uint8Array(words.buffer, 0, length);
}

/** A random frame of `encoding` with `pad` bytes of row padding. */
export function frameOf(
  encoding: string,
  width: number,
  height: number,
  pad: number,
  seed: number,
) {
  const layout = encodingLayout(encoding);
  if (layout === undefined) throw new Error(encoding);
  const step = width * layout.bytesPerPixel + pad;
  const rows = layout.kind === 'semiplanar420' ? height + height / 2 : height;
  const frame: RawFrame = {
    kind: 'raw',
    encoding,
    width,
    height,
    step,
    isBigEndian: seed % 2 === 0,
    data: noise(step * rows, seed),
  };
  return { layout, frame, step };
}

/** `frame` through `impl`'s ingestFrame to `out`: RGB8, the tensor and the plan used. */
export function run(
  impl: typeof referenceKernels,
  frame: RawFrame,
  step: number,
  out: { width: number; height: number; resize: ResizeMode },
) {
  const layout = encodingLayout(frame.encoding);
  if (layout === undefined) throw new Error(frame.encoding);
  const plan = planFor(
    layout,
    {
      width: frame.width,
      height: frame.height,
      step,
      bigEndian: frame.isBigEndian === true,
    },
    out,
  );
  const rgb = new Uint8Array(out.width * out.height * 3);
  const tensor = new Float32Array(out.width * out.height * 3);
  impl.ingestFrame(frame.data, plan.header, plan.vTaps, plan.hTaps, rgb, LUT, tensor);
  return { rgb, tensor, plan };
}

/**
 * The first index where two arrays' bytes differ, or -1: vitest's deep equality takes about a
 * second per camera-sized tensor, this a millisecond.
 */
export function firstDifference(a: ArrayBufferView, b: ArrayBufferView): number {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) return Math.min(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}
