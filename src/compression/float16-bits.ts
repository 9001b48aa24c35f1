/**
 * Float16 numbers as bits: IEEE 754 binary16 from and to JavaScript numbers, and whole arrays
 * clamped to float16's finite range, for the FP16 converter and its reports.
 */
/** The largest finite float16 value. */
export const FLOAT16_MAX = 65504;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The IEEE 754 binary16 bits of `value` (first rounded to float32) with round-to-nearest-even.
 * Subnormals are kept; values too large for float16 become ±Infinity (use {@link toFloat16} to
 * clamp instead); NaN stays a quiet NaN with its sign.
 *
 * @example
 * toFloat16Bits(1) === 0x3c00; toFloat16Bits(65520) === 0x7c00 // rounds up to Infinity
 */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in float16: the implicit bit joins the mantissa, shifted right.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach Infinity
  return sign | h;
}

/** The number that float16 bits `h` stand for. */
export function fromFloat16Bits(h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Float16 bits of `values`, with the finite values beyond ±65504 clamped to ±65504. */
export interface Float16Conversion {
  readonly bits: Uint16Array;
  /** Finite values whose magnitude exceeds {@link FLOAT16_MAX} (clamped to it). */
  readonly clamped: number;
  /** Non-zero values that became ±0 (below half the smallest float16 subnormal, 2^-25). */
  readonly flushed: number;
}

/** Convert float32 values to float16 bits (round-to-nearest-even, clamped to the finite range). */
export function toFloat16(values: ArrayLike<number>): Float16Conversion {
  const bits = new Uint16Array(values.length);
  let clamped = 0;
  let flushed = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i] as number;
    if (Number.isFinite(v) && Math.abs(v) > FLOAT16_MAX) {
      v = Math.sign(v) * FLOAT16_MAX;
      clamped++;
    }
    const h = toFloat16Bits(v);
    if ((h & 0x7fff) === 0 && v !== 0) flushed++;
    bits[i] = h;
  }
  return { bits, clamped, flushed };
}
