/**
 * Real-time chunking for flow policies (Black, Galliker, Levine 2025, "Real-Time Execution of
 * Action Chunking Flow Policies", arXiv 2506.07339): the next chunk is generated as an inpainting
 * problem. While it is denoised, the part of it that overlaps actions already committed (the
 * first `delay` steps are frozen, the rest of the overlap fades out) is guided towards the
 * previous chunk with the pseudo-inverse guidance (PiGDM) correction of the velocity:
 *
 *   x1_hat = x_t + (1 - t) v(x_t, t)                      (the denoised estimate)
 *   e      = (Y - x1_hat) * W                             (W: the soft mask over the overlap)
 *   v'     = v + min(beta, (1 - t) / t * (t^2 + (1 - t)^2) / (1 - t)^2) * e^T d x1_hat / d x_t
 *
 * with t = 0 at noise and t = 1 at the actions (the convention of the paper and of this package
 * format). The vector-Jacobian product is computed exactly up to forward differences: the
 * expert runs once on a batch of the point and its H·A perturbations (the prefix keys/values have
 * batch 1 and broadcast), so one extra call per step, no autodiff needed in ONNX.
 */

/** The weights over the overlap (the paper's soft mask; schedule `exp` is its choice). */
export type RtcSchedule = 'exp' | 'linear' | 'ones' | 'zeros';

/** What a chunk request carries in real-time chunking mode. */
export interface RtcGuidance {
  /**
   * The previous chunk's actions at the new chunk's steps (horizon × action_dim, manifest units):
   * step i of the new chunk is executed when step i + elapsed of the previous one would have been.
   * Steps the previous chunk does not cover are ignored (weight 0 past `end`).
   */
  readonly target: Float32Array;
  /** Inference delay in control steps: the first `delay` actions are frozen (weight 1). */
  readonly delay: number;
  /** Steps of the overlap the guidance reaches (exclusive end of the mask; horizon − execute steps in the paper). */
  readonly end: number;
  readonly schedule: RtcSchedule;
  /** beta, the guidance weight's clip (the paper uses 5). */
  readonly maxWeight: number;
}

/**
 * The mask over the chunk's steps: 1 before `start`, decaying to 0 at `end` (exclusive), 0 after.
 * `exp` is w·(e^w − 1)/(e − 1) of the linear ramp, as in the paper.
 */
export function prefixWeights(
  start: number,
  end: number,
  total: number,
  schedule: RtcSchedule,
): Float32Array {
  const s = Math.min(start, end);
  const w = new Float32Array(total);
  for (let i = 0; i < total; i++) {
    let v: number;
    if (schedule === 'ones') v = 1;
    else if (schedule === 'zeros') v = i < s ? 1 : 0;
    else {
      v = Math.min(1, Math.max(0, (s - 1 - i) / (end - s + 1) + 1));
      if (schedule === 'exp') v = (v * Math.expm1(v)) / (Math.E - 1);
    }
    w[i] = i >= end ? 0 : v;
  }
  return w;
}

/** The guidance weight at flow time t, clipped at beta (infinite at t = 0). */
export function guidanceWeight(t: number, beta: number): number {
  if (t <= 0) return beta;
  if (t >= 1) return 0;
  const invR2 = (t * t + (1 - t) * (1 - t)) / ((1 - t) * (1 - t));
  return Math.min(beta, ((1 - t) / t) * invR2);
}

/** Evaluate the expert's velocity on `count` chunks stacked in `xs` at flow time `t`. */
export type BatchVelocity = (xs: Float32Array, count: number, t: number) => Promise<Float32Array>;

const EPS = 1e-3;

/**
 * The guided velocity at (x, t). `y` is the target in normalised action units; `actionDim`
 * splits the flat chunk into steps.
 */
export async function guidedVelocity(
  g: RtcGuidance,
  x: Float32Array,
  t: number,
  evaluate: BatchVelocity,
  y: Float32Array,
  actionDim: number,
): Promise<Float32Array> {
  const n = x.length;
  const xs = new Float32Array((n + 1) * n);
  xs.set(x, 0);
  for (let j = 0; j < n; j++) {
    xs.set(x, (j + 1) * n);
    xs[(j + 1) * n + j] = (x[j] as number) + EPS;
  }
  const all = await evaluate(xs, n + 1, t);
  const v = all.slice(0, n);
  const steps = n / actionDim;
  const w = prefixWeights(g.delay, g.end, steps, g.schedule);
  const e = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x1 = (x[i] as number) + (1 - t) * (v[i] as number);
    e[i] = ((y[i] as number) - x1) * (w[Math.floor(i / actionDim)] as number);
  }
  const weight = guidanceWeight(t, g.maxWeight);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    // (e^T J)_j with J = I + (1 - t) dv/dx, dv_i/dx_j by a forward difference.
    let dot = 0;
    for (let i = 0; i < n; i++) {
      const dv = ((all[(j + 1) * n + i] as number) - (v[i] as number)) / EPS;
      dot += (e[i] as number) * dv;
    }
    const corr = (e[j] as number) + (1 - t) * dot;
    out[j] = (v[j] as number) + weight * corr;
  }
  return out;
}
