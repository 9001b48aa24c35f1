/**
 * The one control loop of vla-node, shared by the simulator and the ROS 2 node: every control
 * period it decides whether to ask for the next chunk, merges arriving chunks into the plan, and
 * returns the action the robot receives (the executor's merged, limited, watchdog-checked
 * action). Transports decide how a chunk is computed and how the action is sent; the loop knows
 * neither (it is counted in control steps, with no clock of its own).
 */
import type { VlaConfig } from '../config/index.js';
import { ChunkExecutor, type ExecutorOptions, type MergeMode } from './executor.js';
import type { ActionLimits } from './safety.js';

/** `sync`: the robot holds still while each chunk is computed; otherwise an executor merge mode. */
export type ControlMode = 'sync' | MergeMode;

export interface ControlLoopOptions {
  readonly mode: ControlMode;
  readonly horizon: number;
  readonly actionDim: number;
  /** `sync` only: actions executed from each chunk before the next inference (0 = half the chunk). */
  readonly executeSteps: number;
  /** Executor settings other than the merge mode and the chunk shape. */
  readonly executor: Omit<ExecutorOptions, 'mergeMode' | 'horizon' | 'actionDim'>;
}

/**
 * The executor settings of the parameters (`runtime.*`, `safety.*`), with the action limits the
 * pipeline resolved against the manifest: one reading of them for the simulator, the ROS node and
 * the benchmarks.
 */
export function executorSettings(
  config: Pick<VlaConfig, 'runtime' | 'safety'>,
  limits: ActionLimits,
): ControlLoopOptions['executor'] {
  const r = config.runtime;
  return {
    ensembleDecay: r.ensemble_decay,
    rtcDecaySteps: r.rtc_decay_steps,
    marginSteps: r.margin_steps,
    safeAction: config.safety.safe_action,
    safePose: config.safety.safe_pose,
    limits,
  };
}

/** What the robot receives at one control step. */
export interface ControlTick {
  readonly step: number;
  /** The action (a view, valid until the next tick). */
  readonly action: Float32Array;
  /**
   * `plan`: from the merged plan; `wait`: `sync` mode holding still at the measured position
   * while a chunk is computed; `safe`: the watchdog's safe action (no plan covers the step).
   */
  readonly source: 'plan' | 'wait' | 'safe';
  /**
   * A deadline miss: no chunk covers this step although one should (the executor's accounting:
   * every uncovered period but the one an inference is planned to take). In `sync` mode a wait
   * is booked when its chunk arrives, so its ticks report false and the misses show in
   * {@link ControlLoop.deadlineMisses}.
   */
  readonly miss: boolean;
}

/** Actions executed per chunk in `sync` mode: `executeSteps`, or half the chunk when 0 (at least 1). */
export function syncExecuteSteps(executeSteps: number, horizon: number): number {
  return executeSteps > 0 ? Math.min(executeSteps, horizon) : Math.max(1, Math.floor(horizon / 2));
}

/**
 * @example
 * const loop = new ControlLoop(options);
 * // each control period, step `now`:
 * if (loop.wantsChunk(now, expectedDelaySteps)) startInference(now);
 * // when a chunk computed from the observation of step obsStep arrives at step now:
 * loop.accept(actions, obsStep, now);
 * const { action } = loop.tick(now, measuredPosition, inferenceInFlight);
 */
export class ControlLoop {
  readonly mode: ControlMode;
  readonly #executor: ChunkExecutor;
  readonly #dim: number;
  readonly #executeSteps: number;
  #started = false;
  #consecutive = 0;
  /** `sync`: periods held still since the last accepted chunk, booked when the next arrives. */
  #waitTicks = 0;
  #planVersion = 0;

  constructor(o: ControlLoopOptions) {
    this.mode = o.mode;
    this.#dim = o.actionDim;
    this.#executeSteps = syncExecuteSteps(o.executeSteps, o.horizon);
    this.#executor = new ChunkExecutor({
      ...o.executor,
      mergeMode: o.mode === 'sync' ? 'replace' : o.mode,
      horizon: o.horizon,
      actionDim: o.actionDim,
    });
  }

  /**
   * Whether to start the next inference at step `now`: in `sync` mode when the plan is used up,
   * otherwise when the actions left fall to the expected inference delay plus the margin.
   */
  wantsChunk(now: number, expectedDelaySteps: number): boolean {
    return this.mode === 'sync'
      ? this.#executor.remaining(now) === 0
      : this.#executor.shouldQuery(now, expectedDelaySteps);
  }

  /**
   * Merge a chunk computed from the observation of step `obsStep` that arrived at step `now`.
   * In `sync` mode its first actions (`executeSteps`) run from `now` on. Returns false when the
   * chunk was entirely in the past and the plan did not change.
   */
  accept(actions: Float32Array, obsStep: number, now: number): boolean {
    let merged: boolean;
    if (this.mode === 'sync') {
      // The first period of a wait is the inference time this mode plans for; the rest are misses.
      this.#executor.waited(this.#waitTicks, true);
      this.#waitTicks = 0;
      const steps = Math.min(this.#executeSteps, Math.floor(actions.length / this.#dim));
      merged = this.#executor.accept(actions.subarray(0, steps * this.#dim), now, now);
    } else {
      merged = this.#executor.accept(actions, obsStep, now);
    }
    if (!merged) return false;
    this.#started = true;
    this.#planVersion++;
    return true;
  }

  /**
   * The action for step `now`. `current` is the measured position; `waiting` says that a chunk
   * is being computed (in `sync` mode the robot then holds still at `current`).
   */
  tick(now: number, current: ArrayLike<number>, waiting = false): ControlTick {
    if (this.mode === 'sync' && waiting && this.#executor.remaining(now) === 0) {
      const out = this.#executor.holdStill(current);
      this.#waitTicks++;
      return { step: now, action: out.action, source: 'wait', miss: false };
    }
    const before = this.#executor.deadlineMisses;
    const out = this.#executor.step(now, current);
    const miss = this.#executor.deadlineMisses > before;
    if (miss) {
      this.#consecutive++;
    } else if (out.source === 'plan') {
      this.#consecutive = 0;
    }
    return { step: now, action: out.action, source: out.source, miss };
  }

  /** The merged plan from step `now` on (rows of `actionDim`; a view valid until the next accept). */
  planFrom(now: number): Float32Array {
    return this.#executor.planFrom(now);
  }
  /** Bumped whenever an accepted chunk changed the plan. */
  get planVersion(): number {
    return this.#planVersion;
  }
  /** True once a chunk has been accepted. */
  get started(): boolean {
    return this.#started;
  }
  /** Deadline misses so far; in `sync` mode a wait that has not (yet) ended in a chunk counts whole. */
  get deadlineMisses(): number {
    return this.#executor.deadlineMisses + this.#waitTicks;
  }
  get consecutiveMisses(): number {
    return this.#consecutive;
  }
  get safeHoldSteps(): number {
    return this.#executor.safeHoldSteps;
  }
  /** True while the watchdog holds the robot after a plan ran out. */
  get inSafeHold(): boolean {
    return this.#started && this.#executor.inSafeHold;
  }
  /** Drop the plan (deactivate): the next steps are safe holds until a chunk arrives. */
  reset(): void {
    this.#executor.reset();
    this.#started = false;
    this.#consecutive = 0;
    this.#waitTicks = 0;
  }
  /** Mean absolute change of the action between consecutive control steps. */
  get smoothness(): number {
    return this.#executor.smoothness;
  }
}
