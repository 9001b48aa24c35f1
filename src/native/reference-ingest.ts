/**
 * The TypeScript reference of the `ingestFrame` kernel (see ./ingest-layout.ts for the plan it
 * follows). Integer arithmetic only, so the native addon reproduces it bit for bit. Scratch
 * buffers live at module level and grow as needed.
 */
import { H, SOURCE_KIND as K, TAP_SHIFT } from './ingest-layout.js';
import type { Kernels } from './kernels.js';

let acc0: Uint32Array = new Uint32Array(0);
let acc1: Uint32Array = new Uint32Array(0);
let rowScratch: Uint8Array = new Uint8Array(0);
let mid: Uint8Array = new Uint8Array(0);
let vOut: Uint8Array = new Uint8Array(0);

const ROUND = 1 << (TAP_SHIFT - 1);

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** BT.601 limited-range YUV to RGB, integer (the usual 8-bit fixed-point form). */
function yuvToRgb(y: number, u: number, v: number, mid: Uint8Array, o: number): void {
  const c = 298 * (y - 16);
  const d = u - 128;
  const e = v - 128;
  mid[o] = clamp255((c + 409 * e + 128) >> 8);
  mid[o + 1] = clamp255((c - 100 * d - 208 * e + 128) >> 8);
  mid[o + 2] = clamp255((c + 516 * d + 128) >> 8);
}

/** Reflect a coordinate into [0, n) keeping its parity (for the Bayer pattern). */
function reflect(i: number, n: number): number {
  if (i < 0) return -i;
  if (i >= n) return 2 * n - 2 - i;
  return i;
}

/** One row of a Bayer mosaic demosaiced bilinearly into packed RGB8 (`out`, width * 3 bytes). */
function demosaicRow(
  src: Uint8Array,
  step: number,
  width: number,
  height: number,
  y: number,
  rPos: number,
  bPos: number,
  out: Uint8Array,
): void {
  const up = reflect(y - 1, height) * step;
  const row = y * step;
  const down = reflect(y + 1, height) * step;
  const py = (y & 1) << 1;
  for (let x = 0; x < width; x++) {
    const l = reflect(x - 1, width);
    const r = reflect(x + 1, width);
    const here = src[row + x] as number;
    const cross =
      (src[up + x] as number) +
      (src[down + x] as number) +
      (src[row + l] as number) +
      (src[row + r] as number);
    const diag =
      (src[up + l] as number) +
      (src[up + r] as number) +
      (src[down + l] as number) +
      (src[down + r] as number);
    const horiz = (src[row + l] as number) + (src[row + r] as number);
    const vert = (src[up + x] as number) + (src[down + x] as number);
    const pos = py | (x & 1);
    let red: number;
    let green: number;
    let blue: number;
    if (pos === rPos) {
      red = here;
      green = (cross + 2) >> 2;
      blue = (diag + 2) >> 2;
    } else if (pos === bPos) {
      blue = here;
      green = (cross + 2) >> 2;
      red = (diag + 2) >> 2;
    } else {
      green = here;
      // A green site shares its row with R or B: that colour is left/right, the other up/down.
      const redInRow = rPos >> 1 === pos >> 1;
      red = ((redInRow ? horiz : vert) + 1) >> 1;
      blue = ((redInRow ? vert : horiz) + 1) >> 1;
    }
    out[3 * x] = red;
    out[3 * x + 1] = green;
    out[3 * x + 2] = blue;
  }
}

/** One row of 16-bit samples to 8-bit (round(v / 257)), `count` samples. */
function narrowRow(
  src: Uint8Array,
  at: number,
  count: number,
  bigEndian: boolean,
  out: Uint8Array,
): void {
  const hi = bigEndian ? 0 : 1;
  const lo = 1 - hi;
  for (let i = 0, p = at; i < count; i++, p += 2) {
    const v = ((src[p + hi] as number) << 8) | (src[p + lo] as number);
    out[i] = Math.floor((v * 2 + 257) / 514);
  }
}

function addRow(acc: Uint32Array, src: Uint8Array, at: number, length: number): void {
  for (let i = 0; i < length; i++) acc[i] = (acc[i] as number) + (src[at + i] as number);
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  return a.length >= n ? a : new Uint32Array(n);
}

function growU8(a: Uint8Array, n: number): Uint8Array {
  return a.length >= n ? a : new Uint8Array(n);
}

/** Step 1: box-average and colour-convert the crop rectangle into `mid` (midWidth x midHeight x 3). */
function boxConvert(src: Uint8Array, h: Int32Array): void {
  const kind = h[H.kind] as number;
  const channels = h[H.channels] as number;
  const a = h[H.a] as number;
  const b = h[H.b] as number;
  const c = h[H.c] as number;
  const width = h[H.srcWidth] as number;
  const height = h[H.srcHeight] as number;
  const step = h[H.step] as number;
  const cropX = h[H.cropX] as number;
  const cropY = h[H.cropY] as number;
  const cropW = h[H.cropWidth] as number;
  const cropH = h[H.cropHeight] as number;
  const kx = h[H.kx] as number;
  const ky = h[H.ky] as number;
  const midW = h[H.midWidth] as number;
  const midH = h[H.midHeight] as number;
  // Bytes per virtual row in each accumulator.
  let rowLen: number;
  if (kind === K.interleaved8) rowLen = width * channels;
  else if (kind === K.interleaved16) rowLen = width * channels;
  else if (kind === K.packed422) rowLen = width * 2;
  else if (kind === K.bayerBilinear) rowLen = width * 3;
  else rowLen = width;
  acc0 = growU32(acc0, rowLen);
  acc1 = growU32(acc1, rowLen);
  rowScratch = growU8(rowScratch, rowLen);
  const A0 = acc0;
  const A1 = acc1;
  for (let my = 0; my < midH; my++) {
    const y0 = cropY + my * ky;
    const y1 = Math.min(y0 + ky, cropY + cropH);
    A0.fill(0, 0, rowLen);
    A1.fill(0, 0, rowLen);
    for (let y = y0; y < y1; y++) {
      if (kind === K.interleaved8 || kind === K.packed422) {
        addRow(A0, src, y * step, rowLen);
      } else if (kind === K.interleaved16) {
        narrowRow(src, y * step, rowLen, (h[H.bigEndian] as number) === 1, rowScratch);
        addRow(A0, rowScratch, 0, rowLen);
      } else if (kind === K.bayerBilinear) {
        demosaicRow(src, step, width, height, y, a, c, rowScratch);
        addRow(A0, rowScratch, 0, rowLen);
      } else if (kind === K.semiplanar420) {
        addRow(A0, src, y * step, rowLen);
        addRow(A1, src, height * step + (y >> 1) * step, rowLen);
      } else {
        addRow(A0, src, 2 * y * step, rowLen);
        addRow(A1, src, (2 * y + 1) * step, rowLen);
      }
    }
    const ny = y1 - y0;
    for (let mx = 0; mx < midW; mx++) {
      const x0 = cropX + mx * kx;
      const x1 = Math.min(x0 + kx, cropX + cropW);
      const n = (x1 - x0) * ny;
      const half = n >> 1;
      const o = (my * midW + mx) * 3;
      if (kind === K.interleaved8 || kind === K.interleaved16 || kind === K.bayerBilinear) {
        // A demosaiced row is RGB already; a, b, c then name Bayer sites, not channels.
        const demosaiced = kind === K.bayerBilinear;
        const ch = demosaiced ? 3 : channels;
        const [oa, ob, oc] = demosaiced ? [0, 1, 2] : [a, b, c];
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        for (let x = x0; x < x1; x++) {
          const p = x * ch;
          s0 += A0[p + oa] as number;
          s1 += A0[p + ob] as number;
          s2 += A0[p + oc] as number;
        }
        mid[o] = Math.floor((s0 + half) / n);
        mid[o + 1] = Math.floor((s1 + half) / n);
        mid[o + 2] = Math.floor((s2 + half) / n);
      } else if (kind === K.packed422 || kind === K.semiplanar420) {
        let sy = 0;
        let su = 0;
        let sv = 0;
        for (let x = x0; x < x1; x++) {
          if (kind === K.packed422) {
            const q = (x >> 1) << 2;
            sy += A0[2 * x + a] as number;
            su += A0[q + b] as number;
            sv += A0[q + c] as number;
          } else {
            const q = (x >> 1) << 1;
            sy += A0[x] as number;
            su += A1[q + b] as number;
            sv += A1[q + c] as number;
          }
        }
        yuvToRgb(
          Math.floor((sy + half) / n),
          Math.floor((su + half) / n),
          Math.floor((sv + half) / n),
          mid,
          o,
        );
      } else {
        // Superpixels: the four sites of each 2x2 cell, summed per position (row * 2 + col).
        let s00 = 0;
        let s01 = 0;
        let s10 = 0;
        let s11 = 0;
        for (let x = x0; x < x1; x++) {
          s00 += A0[2 * x] as number;
          s01 += A0[2 * x + 1] as number;
          s10 += A1[2 * x] as number;
          s11 += A1[2 * x + 1] as number;
        }
        const sums = [s00, s01, s10, s11];
        const red = sums[a] as number;
        const blue = sums[c] as number;
        const green = s00 + s01 + s10 + s11 - red - blue;
        mid[o] = Math.floor((red + half) / n);
        mid[o + 1] = Math.floor((green + n) / (2 * n));
        mid[o + 2] = Math.floor((blue + half) / n);
      }
    }
  }
}

/**
 * The `ingestFrame` kernel (see Kernels.ingestFrame): raw frame bytes to RGB8 at the output size
 * and, when `out` is not empty, the normalised CHW float32 tensor.
 */
export const ingestFrame: Kernels['ingestFrame'] = (src, header, vTaps, hTaps, rgb, lut, out) => {
  const midW = header[H.midWidth] as number;
  const midH = header[H.midHeight] as number;
  const outW = header[H.outWidth] as number;
  const outH = header[H.outHeight] as number;
  const destX = header[H.destX] as number;
  const destY = header[H.destY] as number;
  const destW = header[H.destWidth] as number;
  const destH = header[H.destHeight] as number;
  const nv = header[H.vTaps] as number;
  const nh = header[H.hTaps] as number;
  mid = growU8(mid, midW * midH * 3);
  boxConvert(src, header);
  // Vertical filter: destH rows of midW pixels.
  const rowBytes = midW * 3;
  let vertical = mid;
  if (nv > 0) {
    vOut = growU8(vOut, destH * rowBytes);
    vertical = vOut;
    for (let y = 0; y < destH; y++) {
      const t = y * (nv + 1);
      const start = vTaps[t] as number;
      for (let i = 0; i < rowBytes; i++) {
        let sum = ROUND;
        for (let k = 0; k < nv; k++) {
          sum += (vTaps[t + 1 + k] as number) * (mid[(start + k) * rowBytes + i] as number);
        }
        vertical[y * rowBytes + i] = clamp255(sum >> TAP_SHIFT);
      }
    }
  }
  rgb.fill(0, 0, outW * outH * 3);
  for (let y = 0; y < destH; y++) {
    const from = y * rowBytes;
    const to = ((destY + y) * outW + destX) * 3;
    if (nh === 0) {
      rgb.set(vertical.subarray(from, from + destW * 3), to);
      continue;
    }
    for (let x = 0; x < destW; x++) {
      const t = x * (nh + 1);
      const start = from + (hTaps[t] as number) * 3;
      let s0 = ROUND;
      let s1 = ROUND;
      let s2 = ROUND;
      for (let k = 0; k < nh; k++) {
        const w = hTaps[t + 1 + k] as number;
        const p = start + 3 * k;
        s0 += w * (vertical[p] as number);
        s1 += w * (vertical[p + 1] as number);
        s2 += w * (vertical[p + 2] as number);
      }
      rgb[to + 3 * x] = clamp255(s0 >> TAP_SHIFT);
      rgb[to + 3 * x + 1] = clamp255(s1 >> TAP_SHIFT);
      rgb[to + 3 * x + 2] = clamp255(s2 >> TAP_SHIFT);
    }
  }
  if (out.length === 0) return;
  const plane = outW * outH;
  for (let p = 0, q = 0; p < plane; p++, q += 3) {
    out[p] = lut[rgb[q] as number] as number;
    out[plane + p] = lut[256 + (rgb[q + 1] as number)] as number;
    out[2 * plane + p] = lut[512 + (rgb[q + 2] as number)] as number;
  }
};
