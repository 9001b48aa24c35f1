import { ConfigError, VlaError } from '../errors.js';

/** Limits every published action must satisfy. */
export interface ActionLimits {
  readonly min: readonly number[];
  readonly max: readonly number[];
  /**
   * Largest change of each dimension between consecutive actions: one value for every dimension
   * or one per dimension; 0 = unlimited (a resolved limit: {@link resolveLimits} derives the
   * default from the manifest).
   */
  readonly maxDeltaPerStep: number | readonly number[];
}

/** Limits as configured (`safety.*`), before {@link resolveLimits} fills them in from the model. */
export interface LimitsRequest {
  /** Lower limits; empty = the manifest's. */
  readonly min: readonly number[];
  /** Upper limits; empty = the manifest's. */
  readonly max: readonly number[];
  /** 0 = derived from the manifest: each dimension's range divided by its control rate. */
  readonly maxDeltaPerStep: number;
  /** Accept limits outside the manifest's (default false: refused). */
  readonly allowBeyondModel?: boolean;
}

/** What {@link resolveLimits} needs of a model manifest. */
export interface ActionSpace {
  readonly name: string;
  readonly control_rate_hz: number;
  readonly chunk: { readonly action_dim: number };
  readonly action: {
    readonly names: readonly string[];
    readonly min: readonly number[];
    readonly max: readonly number[];
  };
}

/**
 * The limits to enforce for a model: configured min/max (or the manifest's when empty), checked
 * (one value per action dimension, finite, min below max, inside the manifest's unless
 * `allowBeyondModel`), and the per-step change limit (0 = each dimension's manifest range per
 * second, i.e. range / control rate per step).
 *
 * @throws {ConfigError} naming the `safety.*` key at fault.
 */
export function resolveLimits(model: ActionSpace, request: LimitsRequest): ActionLimits {
  const dim = model.chunk.action_dim;
  const { min: modelMin, max: modelMax, names } = model.action;
  const min = request.min.length > 0 ? request.min : modelMin;
  const max = request.max.length > 0 ? request.max : modelMax;
  for (const [key, values] of [
    ['action_min', min],
    ['action_max', max],
  ] as const) {
    if (values.length !== dim) {
      throw new ConfigError(
        `Expected ${dim} values (one per action dimension: ${names.join(', ')}) for safety.${key} but received ${values.length}`,
        { field: `safety.${key}` },
      );
    }
  }
  for (let d = 0; d < dim; d++) {
    const lo = min[d] as number;
    const hi = max[d] as number;
    const name = names[d] ?? String(d);
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) {
      throw new ConfigError(
        `Expected safety.action_min[${d}] (${name}) to be finite and below safety.action_max[${d}] (${hi}) but received ${lo}`,
        { field: `safety.action_min[${d}]` },
      );
    }
    if (request.allowBeyondModel === true) continue;
    const mlo = modelMin[d] as number;
    const mhi = modelMax[d] as number;
    if (lo < mlo || hi > mhi) {
      const key = lo < mlo ? 'action_min' : 'action_max';
      throw new ConfigError(
        `Expected safety.${key}[${d}] (${name}) inside the action limits of ${model.name} [${mlo}, ${mhi}] (or safety.allow_limits_beyond_model: true) but received ${lo < mlo ? lo : hi}`,
        { field: `safety.${key}[${d}]` },
      );
    }
  }
  const delta = request.maxDeltaPerStep;
  if (!Number.isFinite(delta) || delta < 0) {
    throw new ConfigError(
      `Expected a finite number >= 0 for safety.max_delta_per_step but received ${delta}`,
      { field: 'safety.max_delta_per_step' },
    );
  }
  return {
    min,
    max,
    maxDeltaPerStep:
      delta > 0
        ? delta
        : Array.from(
            { length: dim },
            (_, d) => ((modelMax[d] as number) - (modelMin[d] as number)) / model.control_rate_hz,
          ),
  };
}

/** The per-step change limit of dimension `d` (0 = unlimited). */
export function maxDeltaOf(limits: ActionLimits, d: number): number {
  const m = limits.maxDeltaPerStep;
  return typeof m === 'number' ? m : (m[d] ?? 0);
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
    const delta = maxDeltaOf(limits, d);
    if (delta > 0 && i >= dim) {
      const prev = chunk[i - dim] as number;
      v = Math.min(prev + delta, Math.max(prev - delta, v));
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
