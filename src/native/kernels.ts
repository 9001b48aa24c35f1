/**
 * The kernel surface shared by the native addon and the TypeScript reference. Both produce
 * identical outputs, bit for bit (the same selections and the same floats);
 * test/native/kernels.test.ts checks it on random inputs.
 *
 * Every kernel writes into an output array the caller owns and allocates nothing per call.
 */
export interface Kernels {
  /**
   * The indices of the `k` largest scores (ties: lower index wins; NaN scores rank lowest), written
   * to `out[0..k)` in ascending index order.
   *
   * @example kernels.topK(saliency, 36, positions);
   */
  topK(scores: Float32Array, k: number, out: Int32Array): void;
  /**
   * Greedy max-min diversity (DivPrune) over the first `n` rows of `dim` floats of `tokens`, by
   * cosine distance (1 - cos; a zero row has distance 1 to everything): start from row `first`,
   * then repeatedly add the row whose minimum distance to the selected set is largest (ties: lower
   * index; NaN distances rank lowest); `k` rows in total, written to `out[0..k)` in ascending
   * index order. `tokens` may be longer than `n * dim` (a reused buffer); the rest is ignored.
   *
   * @example kernels.maxMinDiversity(tokens, 144, 64, 36, first, positions);
   */
  maxMinDiversity(
    tokens: Float32Array,
    n: number,
    dim: number,
    k: number,
    first: number,
    out: Int32Array,
  ): void;
  /**
   * Mean absolute difference per patch between two packed RGB8 images (`width * height * 3`
   * bytes each) on a `gridW` × `gridH` patch grid (`width % gridW === 0`,
   * `height % gridH === 0`), all channels averaged, in [0, 255]; `out[gy * gridW + gx]`.
   *
   * @example kernels.patchDifference(previous, current, 96, 96, 12, 12, change);
   */
  patchDifference(
    a: Uint8Array,
    b: Uint8Array,
    width: number,
    height: number,
    gridW: number,
    gridH: number,
    out: Float32Array,
  ): void;
  /**
   * Packed HWC RGB8 (`pixels * 3` bytes) to planar CHW float32 through a per-channel lookup table
   * (768 floats: channel `c`, value `v` at `lut[c * 256 + v]`): `out[c * pixels + p]`.
   *
   * @example kernels.normalizeRgb(frame.rgb, lut, pixelValues);
   */
  normalizeRgb(rgb: Uint8Array, lut: Float32Array, out: Float32Array): void;
  /**
   * `out[i * dim .. (i + 1) * dim) = tokens[idx[i] * dim .. (idx[i] + 1) * dim)` for `i < count`.
   *
   * @example kernels.gatherRows(tokens, 64, positions, 36, kept);
   */
  gatherRows(
    tokens: Float32Array,
    dim: number,
    idx: Int32Array,
    count: number,
    out: Float32Array,
  ): void;
  /**
   * A raw camera frame (`src`, any encoding the plan describes) to packed HWC RGB8 at the plan's
   * output size in `rgb` (black outside the destination rectangle) and, when `out` is not empty,
   * the normalised CHW float32 tensor through `lut` (as {@link Kernels.normalizeRgb}). `header`,
   * `vTaps` and `hTaps` are a plan from src/ingest/raw-kernel.ts (layout in ./ingest-layout.ts).
   * Integer arithmetic only: both implementations agree bit for bit.
   *
   * @example kernels.ingestFrame(frame.data, plan.header, plan.vTaps, plan.hTaps, rgb, lut, out);
   */
  ingestFrame(...job: IngestJob): void;
  /**
   * {@link Kernels.ingestFrame} off the JavaScript thread (the addon runs it on libuv's thread
   * pool, so several cameras are prepared in parallel; the TypeScript reference runs it inline).
   * Every array must stay untouched until the promise settles.
   */
  ingestFrameAsync(...job: IngestJob): Promise<void>;
  /**
   * {@link Kernels.ingestFrame} for several frames (cameras) in one synchronous call: the addon
   * splits their output rows across the calling thread and a few persistent threads, so three
   * cameras cost far less than three calls (the TypeScript reference runs them in turn). The
   * outputs are the same bytes as one {@link Kernels.ingestFrame} per job.
   *
   * @example kernels.ingestFrames([[left, plan.header, plan.vTaps, plan.hTaps, rgbL, lut, outL]]);
   */
  ingestFrames(jobs: readonly IngestJob[]): void;
  /**
   * How many positions `i` in `[from, bytes.length - 1)` hold `bytes[i] === first` and
   * `bytes[i + 1] === second`, counted up to `limit + 1`: `min(count, limit + 1)`. The addon reads
   * a file at memory speed whatever its contents (a JPEG's start-of-scan markers: see
   * src/ingest/jpeg-scans.ts).
   *
   * @example kernels.countBytePairs(jpeg, headerEnd, 0xff, 0xda, 100);
   */
  countBytePairs(
    bytes: Uint8Array,
    from: number,
    first: number,
    second: number,
    limit: number,
  ): number;
}

/** The arguments of one {@link Kernels.ingestFrame} call, for {@link Kernels.ingestFrames}. */
export type IngestJob = readonly [
  src: Uint8Array,
  header: Int32Array,
  vTaps: Int32Array,
  hTaps: Int32Array,
  rgb: Uint8Array,
  lut: Float32Array,
  out: Float32Array,
];

/** The kernel names, in a fixed order (for reports and tests). */
export const KERNEL_NAMES = [
  'topK',
  'maxMinDiversity',
  'patchDifference',
  'normalizeRgb',
  'gatherRows',
  'ingestFrame',
  'ingestFrameAsync',
  'ingestFrames',
  'countBytePairs',
] as const satisfies readonly (keyof Kernels)[];

/** The kernels of one call on one input, timed call by call (not the thread-pool variant or the
 * several-frame batch, which are timed by `vla-node bench ingest`). */
export const SYNC_KERNEL_NAMES = KERNEL_NAMES.filter(
  (name): name is Exclude<(typeof KERNEL_NAMES)[number], 'ingestFrameAsync' | 'ingestFrames'> =>
    name !== 'ingestFrameAsync' && name !== 'ingestFrames',
);
