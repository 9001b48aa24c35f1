import { TASK_KINDS, type TaskKind } from './world.js';
import type { EpisodeResult } from './runner.js';

/** Sums of the timed-run counters over all episodes (0 for untimed runs). */
export interface EpisodeTotals {
  readonly idleSteps: number;
  readonly deadlineMisses: number;
  readonly safeHoldSteps: number;
  readonly staleFrames: number;
  readonly inferenceErrors: number;
  /** Mean over the timed episodes of their smoothness; undefined when none was timed. */
  readonly smoothness: number | undefined;
  /** The largest action change at a chunk boundary over all timed episodes (0 when none). */
  readonly boundaryJump: number;
}

/** What a run of episodes gives. */
export interface EpisodesSummary {
  readonly episodes: number;
  readonly successes: number;
  readonly success_rate: number;
  readonly by_task: Record<TaskKind, { readonly episodes: number; readonly success_rate: number }>;
  readonly mean_steps: number;
  readonly totals: EpisodeTotals;
  /**
   * Every episode's result when the run was asked to keep them (`keepResults`), else empty: a
   * long run must not grow with its episode count (`onEpisode` sees each result either way).
   */
  readonly results: readonly EpisodeResult[];
}

/**
 * Running totals of a run of episodes, in constant memory: counts per task and sums of the
 * counters, not the list of results (unless asked to keep it).
 */
export class EpisodeTally {
  readonly #keep: EpisodeResult[] | undefined;
  readonly #byTask = new Map<TaskKind, { episodes: number; successes: number }>(
    TASK_KINDS.map((k) => [k, { episodes: 0, successes: 0 }]),
  );
  #episodes = 0;
  #successes = 0;
  #steps = 0;
  #timed = 0;
  #smoothSum = 0;
  #idle = 0;
  #misses = 0;
  #safe = 0;
  #stale = 0;
  #errors = 0;
  #jump = 0;

  constructor(keepResults: boolean) {
    this.#keep = keepResults ? [] : undefined;
  }

  add(r: EpisodeResult): void {
    this.#episodes++;
    this.#steps += r.steps;
    const task = this.#byTask.get(r.task);
    if (task !== undefined) task.episodes++;
    if (r.success) {
      this.#successes++;
      if (task !== undefined) task.successes++;
    }
    this.#idle += r.idleSteps ?? 0;
    this.#misses += r.deadlineMisses ?? 0;
    this.#safe += r.safeHoldSteps ?? 0;
    this.#stale += r.staleFrames ?? 0;
    this.#errors += r.inferenceErrors ?? 0;
    this.#jump = Math.max(this.#jump, r.boundaryJump ?? 0);
    if (r.smoothness !== undefined) {
      this.#timed++;
      this.#smoothSum += r.smoothness;
    }
    this.#keep?.push(r);
  }

  summary(): EpisodesSummary {
    const n = this.#episodes;
    return {
      episodes: n,
      successes: this.#successes,
      success_rate: n === 0 ? 0 : this.#successes / n,
      by_task: Object.fromEntries(
        [...this.#byTask].map(([kind, t]) => [
          kind,
          { episodes: t.episodes, success_rate: t.episodes === 0 ? 0 : t.successes / t.episodes },
        ]),
      ) as EpisodesSummary['by_task'],
      mean_steps: this.#steps / Math.max(1, n),
      totals: {
        idleSteps: this.#idle,
        deadlineMisses: this.#misses,
        safeHoldSteps: this.#safe,
        staleFrames: this.#stale,
        inferenceErrors: this.#errors,
        smoothness: this.#timed === 0 ? undefined : this.#smoothSum / this.#timed,
        boundaryJump: this.#jump,
      },
      results: this.#keep ?? [],
    };
  }
}
