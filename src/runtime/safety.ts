import { VlaError } from '../errors.js';

/** Limits every published action must satisfy. */
export interface ActionLimits {
  readonly min: readonly number[];
  readonly max: readonly number[];
  /** Largest change between consecutive actions of a chunk; 0 = unlimited. */
  readonly maxDeltaPerStep: number;
}

/** A chunk that must not reach the robot (NaN or infinite values). */
export class UnsafeActionError extends VlaError {
  constructor(message: string, field: string) {
    super('UNSAFE_ACTION', message, { field });
  }
}

/**
 * Make a chunk (horizon × dim, row-major) safe in place: reject it if any value is NaN or
 * infinite, clamp each value to [min, max], and limit the change between consecutive steps.
 * Returns the number of values that were changed by clamping.
 */
export function enforceLimits(chunk: Float32Array, dim: number, limits: ActionLimits): number {
  let clamped = 0;
  for (let i = 0; i < chunk.length; i++) {
    const v = chunk[i] as number;
    if (!Number.isFinite(v)) {
      throw new UnsafeActionError(
        `Expected finite actions but step ${Math.floor(i / dim)} dimension ${i % dim} is ${v}`,
        `actions[${i}]`,
      );
    }
  }
  for (let i = 0; i < chunk.length; i++) {
    const d = i % dim;
    let v = chunk[i] as number;
    const lo = limits.min[d] ?? -Infinity;
    const hi = limits.max[d] ?? Infinity;
    if (limits.maxDeltaPerStep > 0 && i >= dim) {
      const prev = chunk[i - dim] as number;
      v = Math.min(prev + limits.maxDeltaPerStep, Math.max(prev - limits.maxDeltaPerStep, v));
    }
    v = Math.min(hi, Math.max(lo, v));
    if (v !== chunk[i]) {
      chunk[i] = float32Within(v, lo, hi);
      clamped++;
    }
  }
  return clamped;
}

const bits = new DataView(new ArrayBuffer(4));

/** The float32 nearest to `v` that is still inside [lo, hi] (rounding to float32 can step past a limit). */
function float32Within(v: number, lo: number, hi: number): number {
  const f = Math.fround(v);
  if (f <= hi && f >= lo) return f;
  bits.setFloat32(0, f);
  const step = f > hi === f > 0 ? -1 : 1; // towards zero when above a positive limit, and so on
  bits.setInt32(0, bits.getInt32(0) + step);
  return bits.getFloat32(0);
}
