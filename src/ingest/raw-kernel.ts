/**
 * Raw camera frames to the model's input through the `ingestFrame` kernel: one pass from the
 * frame's bytes (any supported encoding) to RGB8 at the model's size and the normalised tensor,
 * with no sharp/libvips call. The resampling reproduces libvips' `resize` with the lanczos3 kernel
 * (what sharp did before, and what the shipped model was trained on): a box average by the
 * integer part of the reduction (libvips' default `gap` of 2), then separable lanczos3 taps in
 * 12-bit fixed point, vertical then horizontal (libvips' `gap` is 1 here, see GAP). Bayer mosaics are taken as 2x2 superpixels when
 * the frame is at least twice the output size on both axes, else demosaiced bilinearly.
 */
import { kernels, type IngestJob } from '../native/index.js';
import { H, HEADER_LENGTH, SOURCE_KIND, TAP_SHIFT } from '../native/ingest-layout.js';
import { checkRawFrame, type EncodingLayout, type RawFrame, type ResizeMode } from './frame.js';

/** Geometry and coefficients of one frame geometry to one output (see ingest-layout.ts). */
export interface IngestPlan {
  readonly header: Int32Array;
  readonly vTaps: Int32Array;
  readonly hTaps: Int32Array;
}

/** The output of a plan: size and how the frame is fitted to it. */
export interface PlanTarget {
  readonly width: number;
  readonly height: number;
  readonly resize: ResizeMode;
}

/**
 * libvips' `gap`: the box average takes floor(reduction / gap) and the lanczos3 taps the rest.
 * libvips defaults to 2 (a residual of 2-4x for the taps); 1 leaves a residual of 1-2x, so the
 * box does most of a large reduction with far fewer taps after it: 3-4x less work at 640x480,
 * within a mean of 1.5 levels of libvips' default on photographs. Reductions under 2x (the
 * simulator's 128x128 camera to 96x96, what the model was trained on) take no box average
 * either way and stay identical to libvips.
 */
const GAP = 1;

/** Largest box factor per axis: sums of that many rows of bytes fit the kernel's accumulators. */
const MAX_BOX = 257;

/** libvips' sub-pixel positions per pixel (VIPS_TRANSFORM_SCALE). */
const PHASES = 64;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function lanczos3(x: number): number {
  return x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** C's rint (round half to even), as libvips sizes its masks. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Normalised lanczos3 weights of `n` taps at sub-pixel `x` for a reduction by `shrink`. */
function mask(n: number, shrink: number, x: number): Float64Array {
  const c = new Float64Array(n);
  const half = x + n / 2 - 1;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const l = lanczos3((i - half) / shrink);
    c[i] = l;
    sum += l;
  }
  for (let i = 0; i < n; i++) c[i] = (c[i] as number) / sum;
  return c;
}

interface Axis {
  /** Box factor, intermediate length, taps per output (0: none) and the taps table. */
  readonly k: number;
  readonly mid: number;
  readonly n: number;
  readonly taps: Int32Array;
}

/** One axis from `length` source pixels to `out` pixels, as libvips' reduceh/reducev. */
function axis(length: number, out: number): Axis {
  if (length === out) return { k: 1, mid: length, n: 0, taps: new Int32Array(0) };
  const shrink = length / out;
  const k = shrink >= 1 ? Math.max(1, Math.min(MAX_BOX, Math.floor(length / out / GAP))) : 1;
  const mid = Math.ceil(length / k);
  const residual = shrink / k;
  if (residual === 1 && mid === out) return { k, mid, n: 0, taps: new Int32Array(0) };
  const extra = (out * shrink - length) / k;
  const filterShrink = Math.max(1, residual);
  const points = 2 * rint(3 * filterShrink) + 1;
  const offset = (1 + extra) / 2 - 1;
  const tables: Int32Array[] = [];
  for (let t = 0; t <= PHASES; t++) {
    const f = mask(points, filterShrink, t / PHASES);
    tables.push(Int32Array.from(f, (v) => Math.trunc(v * (1 << TAP_SHIFT))));
  }
  const n = Math.min(points, mid);
  const taps = new Int32Array(out * (n + 1));
  const lead = Math.ceil(points / 2) - 1;
  let X = 0.5 * residual - 0.5 - offset;
  for (let o = 0; o < out; o++, X += residual) {
    const ix = Math.trunc(X);
    const six = Math.trunc(X * PHASES * 2) & (PHASES * 2 - 1);
    const table = tables[(six + 1) >> 1] as Int32Array;
    const first = ix - lead;
    const start = Math.min(Math.max(first, 0), mid - n);
    const t = o * (n + 1);
    taps[t] = start;
    // Taps past an edge repeat the edge pixel (libvips' extend-copy): fold them onto it.
    for (let i = 0; i < points; i++) {
      const j = Math.min(Math.max(first + i, 0), mid - 1);
      taps[t + 1 + j - start] = (taps[t + 1 + j - start] as number) + (table[i] as number);
    }
  }
  return { k, mid, n, taps };
}

/** Source kind and the header's a, b, c for a layout (see SOURCE_KIND). */
function source(layout: EncodingLayout, superpixel: boolean): [number, number, number, number] {
  const [a, b, c] = layout.order;
  switch (layout.kind) {
    case 'interleaved8':
      return [SOURCE_KIND.interleaved8, a, b, c];
    case 'interleaved16':
      return [SOURCE_KIND.interleaved16, a, b, c];
    case 'packed422':
      return [SOURCE_KIND.packed422, a, b, c];
    case 'semiplanar420':
      return [SOURCE_KIND.semiplanar420, a, b, c];
    case 'bayer':
      return [superpixel ? SOURCE_KIND.bayerSuperpixel : SOURCE_KIND.bayerBilinear, a, b, c];
  }
}

/**
 * The plan of one frame geometry to `target`: crop/pad rectangles, box factors and filter taps.
 * `crop` centre-crops the frame to the output's aspect ratio, `pad` letterboxes it centred on
 * black, `stretch` maps the whole frame to the whole output.
 */
export function planFor(
  layout: EncodingLayout,
  geometry: { width: number; height: number; step: number; bigEndian: boolean },
  target: PlanTarget,
): IngestPlan {
  const { width, height } = geometry;
  const superpixel =
    layout.kind === 'bayer' && width >= 2 * target.width && height >= 2 * target.height;
  const vw = superpixel ? width >> 1 : width;
  const vh = superpixel ? height >> 1 : height;
  let [cropX, cropY, cropW, cropH] = [0, 0, vw, vh];
  let [destX, destY, destW, destH] = [0, 0, target.width, target.height];
  const wider = vw * target.height > vh * target.width;
  if (target.resize === 'crop') {
    if (wider) cropW = Math.max(1, Math.round((vh * target.width) / target.height));
    else cropH = Math.max(1, Math.round((vw * target.height) / target.width));
    cropX = (vw - cropW) >> 1;
    cropY = (vh - cropH) >> 1;
  } else if (target.resize === 'pad') {
    if (wider) destH = Math.max(1, Math.round((vh * target.width) / vw));
    else destW = Math.max(1, Math.round((vw * target.height) / vh));
    destX = (target.width - destW) >> 1;
    destY = (target.height - destH) >> 1;
  }
  const h = axis(cropW, destW);
  const v = axis(cropH, destH);
  const header = new Int32Array(HEADER_LENGTH);
  const [kind, a, b, c] = source(layout, superpixel);
  header[H.kind] = kind;
  header[H.channels] = layout.channels;
  header[H.a] = a;
  header[H.b] = b;
  header[H.c] = c;
  header[H.bigEndian] = geometry.bigEndian ? 1 : 0;
  header[H.srcWidth] = width;
  header[H.srcHeight] = height;
  header[H.step] = geometry.step;
  header[H.cropX] = cropX;
  header[H.cropY] = cropY;
  header[H.cropWidth] = cropW;
  header[H.cropHeight] = cropH;
  header[H.kx] = h.k;
  header[H.ky] = v.k;
  header[H.midWidth] = h.mid;
  header[H.midHeight] = v.mid;
  header[H.outWidth] = target.width;
  header[H.outHeight] = target.height;
  header[H.destX] = destX;
  header[H.destY] = destY;
  header[H.destWidth] = destW;
  header[H.destHeight] = destH;
  header[H.vTaps] = v.n;
  header[H.hTaps] = h.n;
  header[H.virtualWidth] = vw;
  header[H.virtualHeight] = vh;
  return { header, vTaps: v.taps, hTaps: h.taps };
}

const EMPTY_LUT = new Float32Array(768);
const EMPTY_OUT = new Float32Array(0);

/** Plans per frame geometry: a camera keeps its geometry, so a handful of entries suffice. */
const PLAN_CACHE_SIZE = 16;

/**
 * Raw frames to RGB8 (and the normalised tensor) at one target size, with the plans of the frame
 * geometries seen so far cached.
 */
export class RawKernel {
  readonly target: PlanTarget;
  readonly #plans = new Map<string, IngestPlan>();

  constructor(target: PlanTarget) {
    this.target = target;
  }

  /** The checked plan of `frame` (cached per encoding, size, step and byte order). */
  plan(frame: RawFrame): IngestPlan {
    const { layout, step } = checkRawFrame(frame);
    const bigEndian = frame.isBigEndian === true;
    const key = `${frame.encoding}/${frame.width}/${frame.height}/${step}/${bigEndian ? 1 : 0}`;
    let plan = this.#plans.get(key);
    if (plan === undefined) {
      plan = planFor(
        layout,
        { width: frame.width, height: frame.height, step, bigEndian },
        this.target,
      );
      if (this.#plans.size >= PLAN_CACHE_SIZE) this.#plans.clear();
      this.#plans.set(key, plan);
    }
    return plan;
  }

  /**
   * `frame` to packed RGB8 of the target size in `rgb` and, when given, the CHW float32 tensor
   * through `lut` (768 entries: channel c, byte v at c * 256 + v) in `out`; synchronous.
   *
   * @throws {InputError} when the frame is malformed.
   */
  run(frame: RawFrame, rgb: Uint8Array, lut?: Float32Array, out?: Float32Array): void {
    const p = this.plan(frame);
    kernels.ingestFrame(
      frame.data,
      p.header,
      p.vTaps,
      p.hTaps,
      rgb,
      lut ?? EMPTY_LUT,
      out ?? EMPTY_OUT,
    );
  }

  /**
   * The arguments of {@link RawKernel.run} as one job of `kernels.ingestFrames` (the frame checked
   * and planned now; its bytes are read when the job runs).
   *
   * @throws {InputError} when the frame is malformed.
   */
  job(frame: RawFrame, rgb: Uint8Array, lut?: Float32Array, out?: Float32Array): IngestJob {
    const p = this.plan(frame);
    return [frame.data, p.header, p.vTaps, p.hTaps, rgb, lut ?? EMPTY_LUT, out ?? EMPTY_OUT];
  }

  /**
   * {@link RawKernel.run} on libuv's thread pool (native addon; the TypeScript fallback runs
   * inline). The frame's bytes are copied first: the caller may reuse its buffer at once.
   */
  async runAsync(
    frame: RawFrame,
    rgb: Uint8Array,
    lut?: Float32Array,
    out?: Float32Array,
  ): Promise<void> {
    const p = this.plan(frame);
    const copy = frame.data.slice();
    await kernels.ingestFrameAsync(
      copy,
      p.header,
      p.vTaps,
      p.hTaps,
      rgb,
      lut ?? EMPTY_LUT,
      out ?? EMPTY_OUT,
    );
  }
}

/**
 * Convert a raw frame to packed HWC RGB8 at its own size: any supported encoding (swaps BGR, drops
 * alpha, expands mono, scales 16-bit to 8-bit, converts YUV, demosaics Bayer bilinearly) with row
 * padding removed.
 *
 * @throws {InputError} when the geometry, encoding or data length is invalid.
 */
export function rawToRgb(frame: RawFrame): Uint8Array {
  checkRawFrame(frame);
  const { width, height } = frame;
  const plan = new RawKernel({ width, height, resize: 'stretch' }).plan(frame);
  const rgb = new Uint8Array(width * height * 3);
  kernels.ingestFrame(frame.data, plan.header, plan.vTaps, plan.hTaps, rgb, EMPTY_LUT, EMPTY_OUT);
  return rgb;
}
