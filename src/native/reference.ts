/**
 * The TypeScript reference kernels: the definition the native addon is tested against, and the
 * fallback when the addon is not built. They trust their arguments; call them through the
 * validating facade in ./index.ts. Hot loops allocate nothing: scratch buffers live at module level
 * and grow as needed.
 */
import type { Kernels } from './kernels.js';
import { ingestFrame } from './reference-ingest.js';

let kept = new Uint8Array(0);
let heap = new Int32Array(0);
let norms = new Float64Array(0);
let minDist = new Float64Array(0);
let patchSums = new Float64Array(0);

/** Whether score index `i` ranks above `j`: larger first, NaN last, then lower index first. */
function better(scores: Float32Array, i: number, j: number): boolean {
  const a = scores[i] as number;
  const b = scores[j] as number;
  const aNaN = a !== a;
  const bNaN = b !== b;
  if (aNaN || bNaN) return aNaN === bNaN ? i < j : bNaN;
  if (a !== b) return a > b;
  return i < j;
}

/** Restore the heap (worst-ranked index on top) below position `at`. */
function siftDown(scores: Float32Array, h: Int32Array, size: number, at: number): void {
  let i = at;
  const item = h[i] as number;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= size) break;
    let worst = left;
    const right = left + 1;
    if (right < size && better(scores, h[left] as number, h[right] as number)) worst = right;
    if (!better(scores, item, h[worst] as number)) break;
    h[i] = h[worst] as number;
    i = worst;
  }
  h[i] = item;
}

const topK: Kernels['topK'] = (scores, k, out) => {
  const n = scores.length;
  if (kept.length < n) kept = new Uint8Array(n);
  if (heap.length < k) heap = new Int32Array(k);
  const h = heap;
  for (let i = 0; i < k; i++) h[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(scores, h, k, i);
  for (let i = k; i < n; i++) {
    if (better(scores, i, h[0] as number)) {
      h[0] = i;
      siftDown(scores, h, k, 0);
    }
  }
  kept.fill(0, 0, n);
  for (let i = 0; i < k; i++) kept[h[i] as number] = 1;
  let w = 0;
  for (let i = 0; i < n; i++) if (kept[i] === 1) out[w++] = i;
};

/**
 * The dot product of rows `i` and `j` (offsets in floats) with four double accumulators (element
 * `d` into accumulator `d % 4`, combined as (s0 + s1) + (s2 + s3)), exactly as the addon does:
 * products of two floats are exact in double, so both round every sum identically.
 */
function dot(t: Float32Array, a: number, b: number, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 4 <= dim; d += 4) {
    s0 += (t[a + d] as number) * (t[b + d] as number);
    s1 += (t[a + d + 1] as number) * (t[b + d + 1] as number);
    s2 += (t[a + d + 2] as number) * (t[b + d + 2] as number);
    s3 += (t[a + d + 3] as number) * (t[b + d + 3] as number);
  }
  if (d < dim) s0 += (t[a + d] as number) * (t[b + d] as number);
  if (d + 1 < dim) s1 += (t[a + d + 1] as number) * (t[b + d + 1] as number);
  if (d + 2 < dim) s2 += (t[a + d + 2] as number) * (t[b + d + 2] as number);
  return s0 + s1 + (s2 + s3);
}

/** Cosine distance between rows `i` and `j`; 1 when either row is zero. */
function distance(t: Float32Array, i: number, j: number, dim: number): number {
  const ni = norms[i] as number;
  const nj = norms[j] as number;
  if (ni === 0 || nj === 0) return 1;
  return 1 - dot(t, i * dim, j * dim, dim) / (ni * nj);
}

const maxMinDiversity: Kernels['maxMinDiversity'] = (tokens, n, dim, k, first, out) => {
  if (norms.length < n) {
    norms = new Float64Array(n);
    minDist = new Float64Array(n);
  }
  if (kept.length < n) kept = new Uint8Array(n);
  const selected = kept;
  for (let i = 0; i < n; i++) {
    norms[i] = Math.sqrt(dot(tokens, i * dim, i * dim, dim));
    selected[i] = 0;
  }
  selected[first] = 1;
  let last = first;
  for (let i = 0; i < n; i++) minDist[i] = distance(tokens, last, i, dim);
  for (let count = 1; count < k; count++) {
    let best = n;
    let bestDist = 0;
    for (let i = 0; i < n; i++) {
      if (selected[i] === 1) continue;
      const d = minDist[i] as number;
      if (best === n || (d === d && (bestDist !== bestDist || d > bestDist))) {
        best = i;
        bestDist = d;
      }
    }
    selected[best] = 1;
    last = best;
    if (count + 1 === k) break;
    for (let i = 0; i < n; i++) {
      if (selected[i] === 1) continue;
      const d = distance(tokens, last, i, dim);
      if (d < (minDist[i] as number)) minDist[i] = d;
    }
  }
  let w = 0;
  for (let i = 0; i < n; i++) if (selected[i] === 1) out[w++] = i;
};

const patchDifference: Kernels['patchDifference'] = (a, b, width, height, gridW, gridH, out) => {
  const patches = gridW * gridH;
  if (patchSums.length < patches) patchSums = new Float64Array(patches);
  const sums = patchSums;
  sums.fill(0, 0, patches);
  const patchBytes = (width / gridW) * 3;
  const patchRows = height / gridH;
  const rowBytes = width * 3;
  for (let y = 0; y < height; y++) {
    const base = Math.floor(y / patchRows) * gridW;
    let p = y * rowBytes;
    for (let gx = 0; gx < gridW; gx++) {
      const end = p + patchBytes;
      let s = 0;
      for (; p < end; p++) {
        const d = (a[p] as number) - (b[p] as number);
        s += d < 0 ? -d : d;
      }
      sums[base + gx] = (sums[base + gx] as number) + s;
    }
  }
  const count = patchBytes * patchRows;
  for (let i = 0; i < patches; i++) out[i] = (sums[i] as number) / count;
};

const normalizeRgb: Kernels['normalizeRgb'] = (rgb, lut, out) => {
  const pixels = Math.floor(rgb.length / 3);
  const g = pixels;
  const b = 2 * pixels;
  for (let p = 0, q = 0; p < pixels; p++, q += 3) {
    out[p] = lut[rgb[q] as number] as number;
    out[g + p] = lut[256 + (rgb[q + 1] as number)] as number;
    out[b + p] = lut[512 + (rgb[q + 2] as number)] as number;
  }
};

const gatherRows: Kernels['gatherRows'] = (tokens, dim, idx, count, out) => {
  for (let i = 0; i < count; i++) {
    const from = (idx[i] as number) * dim;
    const to = i * dim;
    for (let d = 0; d < dim; d++) out[to + d] = tokens[from + d] as number;
  }
};

// Buffer's search (memchr for the first byte, then a compare) is fast on any real file; a file
// crowded with the first byte is what the addon's loop is for.
const countBytePairs: Kernels['countBytePairs'] = (bytes, from, first, second, limit) => {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const pair = Buffer.from([first, second]);
  let count = 0;
  // One position on, not two: with first === second, pairs overlap (FF FF FF holds two).
  for (let at = b.indexOf(pair, from); at >= 0 && count <= limit; at = b.indexOf(pair, at + 1)) {
    count++;
  }
  return count;
};

/** The reference kernels, unchecked (see ./index.ts for the validating facade). */
export const reference: Kernels = {
  topK,
  maxMinDiversity,
  patchDifference,
  normalizeRgb,
  gatherRows,
  ingestFrame,
  ingestFrameAsync(src, header, vTaps, hTaps, rgb, lut, out) {
    ingestFrame(src, header, vTaps, hTaps, rgb, lut, out);
    return Promise.resolve();
  },
  ingestFrames(jobs) {
    for (const job of jobs) ingestFrame(...job);
  },
  countBytePairs,
};
