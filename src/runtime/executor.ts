import type { SafeAction } from '../config/generated.js';
import { enforceLimits, maxDeltaOf, type ActionLimits } from './safety.js';

/** How a new chunk is merged with the plan being executed. */
export type MergeMode = 'replace' | 'ensemble' | 'rtc';
export const MERGE_MODES: readonly MergeMode[] = ['replace', 'ensemble', 'rtc'];

export interface ExecutorOptions {
  readonly horizon: number;
  readonly actionDim: number;
  readonly mergeMode: MergeMode;
  /** ACT temporal ensembling: weight exp(-decay × i) for the i-th oldest prediction of a step. */
  readonly ensembleDecay: number;
  /** RTC: weight of the old plan over the blended overlap decays as exp(-i / rtcDecaySteps). */
  readonly rtcDecaySteps: number;
  /** Extra steps added to the expected delay when deciding to start the next inference. */
  readonly marginSteps: number;
  /**
   * What the robot is sent when no valid chunk covers the next control step. Position robots:
   * `hold` (the last action sent; before any, the measured state) or `safe_pose` (a configured
   * pose). Velocity robots: `zero` (stop). Every safe action is rate-limited like a planned one.
   */
  readonly safeAction: SafeAction;
  /** The pose `safe_pose` sends, one value per action dimension (clamped to the limits). */
  readonly safePose?: readonly number[];
  readonly limits: ActionLimits;
}

/** One control step's output. */
export interface StepOutput {
  /** The action to apply (a view, valid until the next call). */
  readonly action: Float32Array;
  /** 'plan' when it came from a chunk, 'safe' when the watchdog held the robot. */
  readonly source: 'plan' | 'safe';
}

/**
 * Executes action chunks at the control rate on a step clock, independently of inference.
 *
 * Time is counted in control steps. A chunk computed from the observation of step `s` holds the
 * actions for steps s … s+H-1; when it arrives at step `now` (after the inference delay), the
 * actions for steps before `now` are already past and are dropped, the rest are merged into the
 * plan by the merge mode. `step(now)` returns the plan's action for `now`, or the safe action when
 * no chunk covers it (camera stalled, inference late or failed). Every returned action is finite
 * and inside the limits (including the per-step change from the previous action).
 *
 * A control period not covered by a chunk is a deadline miss, whatever the reason (late, failed or
 * never-arriving inference, stale camera), except the period an inference is planned to take: the
 * first period after start or {@link reset} (asynchronous modes), and the first period of each
 * wait booked with {@link waited} (synchronous mode).
 *
 * @example
 * const ex = new ChunkExecutor(options);
 * ex.accept(chunk.actions, obsStep, nowStep);
 * const { action } = ex.step(nowStep, currentPosition);
 */
export class ChunkExecutor {
  readonly #o: ExecutorOptions;
  /** Planned actions by absolute step: [start, start + length). */
  #plan = new Float32Array(0);
  #planStart = 0;
  #planLength = 0;
  /** For ensembling: every prediction still relevant, newest last. */
  readonly #predictions: { start: number; actions: Float32Array }[] = [];
  readonly #action: Float32Array;
  readonly #previous: Float32Array;
  #hasPrevious = false;
  #safeSteps = 0;
  #misses = 0;
  /** The first step after start or reset, which no chunk can cover yet. */
  #firstStep: number | undefined;
  #inSafeHold = false;
  #smoothSum = 0;
  #smoothCount = 0;

  constructor(options: ExecutorOptions) {
    this.#o = options;
    this.#action = new Float32Array(options.actionDim);
    this.#previous = new Float32Array(options.actionDim);
  }

  /** Steps of the plan left from step `now` on (0 when the plan does not cover `now`). */
  remaining(now: number): number {
    return Math.max(0, this.#planStart + this.#planLength - now);
  }

  /**
   * Whether to start the next inference at step `now`: when the actions left fall to the expected
   * inference delay in steps, ceil(latency × rate), plus the margin.
   */
  shouldQuery(now: number, expectedDelaySteps: number): boolean {
    return this.remaining(now) <= expectedDelaySteps + this.#o.marginSteps;
  }

  /**
   * Merge a chunk computed from the observation of step `obsStep`, arriving at step `now`.
   * Returns false when the chunk lies entirely in the past (the plan is unchanged).
   */
  accept(actions: Float32Array, obsStep: number, now: number): boolean {
    const a = this.#o.actionDim;
    const h = Math.min(this.#o.horizon, Math.floor(actions.length / a));
    const skip = Math.max(0, now - obsStep);
    if (skip >= h) return false;
    const fresh = actions.subarray(skip * a, h * a);
    const freshLength = h - skip;
    const overlap = Math.max(
      0,
      Math.min(this.#planStart + this.#planLength, now + freshLength) - now,
    );
    const next = new Float32Array(freshLength * a);
    switch (this.#o.mergeMode) {
      case 'replace':
        next.set(fresh);
        break;
      case 'rtc': {
        // Actions already committed for the inference delay stay frozen; the rest of the overlap
        // moves from the old plan to the new chunk with an exponentially decaying weight.
        const frozen = Math.min(overlap, skip);
        for (let i = 0; i < freshLength; i++) {
          for (let d = 0; d < a; d++) {
            const n = fresh[i * a + d] as number;
            if (i < overlap) {
              const old = this.#plan[(now + i - this.#planStart) * a + d] as number;
              const w = i < frozen ? 1 : Math.exp(-(i - frozen + 1) / this.#o.rtcDecaySteps);
              next[i * a + d] = w * old + (1 - w) * n;
            } else {
              next[i * a + d] = n;
            }
          }
        }
        break;
      }
      case 'ensemble': {
        this.#predictions.push({ start: obsStep, actions: actions.slice() });
        while (this.#predictions.length > 0 && (this.#predictions[0]?.start ?? 0) + h <= now)
          this.#predictions.shift();
        for (let i = 0; i < freshLength; i++) {
          const t = now + i;
          let wsum = 0;
          for (let d = 0; d < a; d++) next[i * a + d] = 0;
          // ACT: w_i = exp(-m·i) with i = 0 the oldest prediction of step t.
          let age = 0;
          for (const p of this.#predictions) {
            if (t < p.start || t >= p.start + h) continue;
            const w = Math.exp(-this.#o.ensembleDecay * age++);
            wsum += w;
            for (let d = 0; d < a; d++)
              next[i * a + d] =
                (next[i * a + d] as number) + w * (p.actions[(t - p.start) * a + d] as number);
          }
          for (let d = 0; d < a; d++) next[i * a + d] = (next[i * a + d] as number) / wsum;
        }
        break;
      }
    }
    this.#plan = next;
    this.#planStart = now;
    this.#planLength = freshLength;
    return true;
  }

  /** The action for step `now`; `current` is the robot's measured position (used to hold). */
  step(now: number, current: ArrayLike<number>): StepOutput {
    const a = this.#o.actionDim;
    this.#firstStep ??= now;
    const covered = now >= this.#planStart && now < this.#planStart + this.#planLength;
    if (covered) {
      this.#action.set(
        this.#plan.subarray((now - this.#planStart) * a, (now - this.#planStart + 1) * a),
      );
    }
    // A step the plan does not cover, or a non-finite plan, never reaches the robot.
    const source: StepOutput['source'] =
      covered && this.#action.every(Number.isFinite) ? 'plan' : 'safe';
    this.#inSafeHold = source === 'safe';
    if (source === 'safe') {
      this.#safeSteps++;
      if (now > this.#firstStep) this.#misses++;
      this.#safe(current);
    }
    this.#limit();
    this.#record();
    return { action: this.#action, source };
  }

  /**
   * Synchronous execution only: the robot holds still at its measured position `current` while
   * the next chunk is computed. The action is limited like any other and becomes the previous
   * action (so the next one is within `maxDeltaPerStep` of it); it is not a safe hold.
   */
  holdStill(current: ArrayLike<number>): StepOutput {
    const a = this.#o.actionDim;
    for (let d = 0; d < a; d++) {
      const v = current[d] ?? 0;
      this.#action[d] = Number.isFinite(v)
        ? v
        : this.#hasPrevious
          ? (this.#previous[d] as number)
          : 0;
    }
    this.#inSafeHold = false;
    this.#limit();
    this.#record();
    return { action: this.#action, source: 'plan' };
  }

  /** The merged plan from step `now` on (a view, valid until the next accept), one row per step. */
  planFrom(now: number): Float32Array {
    const a = this.#o.actionDim;
    const from = Math.max(0, now - this.#planStart);
    if (from >= this.#planLength) return new Float32Array(0);
    return this.#plan.subarray(from * a, this.#planLength * a);
  }

  #record(): void {
    const a = this.#o.actionDim;
    if (this.#hasPrevious) {
      let change = 0;
      for (let d = 0; d < a; d++)
        change += Math.abs((this.#action[d] as number) - (this.#previous[d] as number));
      this.#smoothSum += change / a;
      this.#smoothCount++;
    }
    this.#previous.set(this.#action);
    this.#hasPrevious = true;
  }

  /** The safe action into #action, before the limits. */
  #safe(current: ArrayLike<number>): void {
    for (let d = 0; d < this.#o.actionDim; d++) {
      switch (this.#o.safeAction) {
        case 'hold':
          this.#action[d] = this.#hasPrevious ? (this.#previous[d] as number) : (current[d] ?? 0);
          break;
        case 'zero':
          this.#action[d] = 0;
          break;
        case 'safe_pose':
          // Without a pose (a caller that skipped the configuration check), hold.
          this.#action[d] =
            this.#o.safePose?.[d] ??
            (this.#hasPrevious ? (this.#previous[d] as number) : (current[d] ?? 0));
          break;
      }
    }
  }

  #limit(): void {
    const limits = this.#o.limits;
    if (this.#hasPrevious) {
      for (let d = 0; d < this.#o.actionDim; d++) {
        const delta = maxDeltaOf(limits, d);
        if (delta <= 0) continue;
        const p = this.#previous[d] as number;
        this.#action[d] = Math.min(p + delta, Math.max(p - delta, this.#action[d] as number));
      }
    }
    enforceLimits(this.#action, this.#o.actionDim, { ...limits, maxDeltaPerStep: 0 });
  }

  /**
   * Book `periods` control periods the robot stood still waiting for a requested chunk without
   * calling {@link step} (the synchronous loop). The first period of a wait that ends with a chunk
   * (`delivered`) is the inference time the mode plans for; every other period is a miss.
   */
  waited(periods: number, delivered: boolean): void {
    this.#misses += Math.max(0, delivered ? periods - 1 : periods);
  }

  /** True while the watchdog is holding the robot (no chunk covers the current step). */
  get inSafeHold(): boolean {
    return this.#inSafeHold;
  }
  /** Control steps on which the safe action was emitted. */
  get safeHoldSteps(): number {
    return this.#safeSteps;
  }
  /**
   * Control periods not covered by a fresh chunk once one could have arrived (see the class
   * description): a never-arriving chunk counts every period after the first.
   */
  get deadlineMisses(): number {
    return this.#misses;
  }
  /** Mean absolute change of the action between consecutive control steps. */
  get smoothness(): number {
    return this.#smoothCount === 0 ? 0 : this.#smoothSum / this.#smoothCount;
  }

  /** Drop the plan (e.g. on deactivate): the next steps are safe holds until a chunk arrives. */
  reset(): void {
    this.#planLength = 0;
    this.#predictions.length = 0;
    this.#firstStep = undefined;
  }
}
