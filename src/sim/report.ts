/**
 * The report of a closed-loop experiment (`vla-node sim --json`), the same fields in the same
 * order for every model family: users, `npm run bench` and the README's figures read it, so its
 * layout lives here once. A family adds its own fields after these.
 */
import type { VlaConfig } from '../config/index.js';
import type { LatencySummary } from '../runtime/latency.js';
import { round } from '../util/stats.js';
import type { AgentName, ConfiguredRun } from './configured-run.js';
import type { EpisodesSummary, EpisodeTotals } from './runner.js';

/** The report of a closed-loop run, its keys in the order `--json` prints them. */
export interface SimReport {
  readonly episodes: number;
  readonly successes: number;
  readonly success_rate: number;
  readonly by_task: EpisodesSummary['by_task'];
  readonly mean_steps: number;
  readonly agent: AgentName;
  readonly seed: number;
  readonly model: string;
  readonly precision: string | null;
  readonly provider: string | null;
  readonly latency_ms: { p50: number; p95: number; p99: number; max: number; mean: number } | null;
  readonly stage_ms: Record<string, number> | null;
  /** Percentiles per stage (ms). */
  readonly stage_percentiles_ms: Record<string, { p50: number; p95: number; p99: number }> | null;
  readonly strategy: string;
  readonly visual_tokens: { total: number; kept: number; mean_kept: number } | null;
  /** The keep ratio at the end of the run (the budget controller's when latency_budget_ms > 0). */
  readonly keep_ratio: number | null;
  /** Frame → chunk latency since the keep ratio last changed: what the budget controller settled on. */
  readonly latency_at_final_ratio_ms: LatencySummary | null;
  readonly latency_budget_ms: number;
  readonly execute_steps: number;
  readonly merge_mode: string;
  /** Whether episodes ran on the control-step clock (asynchronous modes, injected delays or stalls). */
  readonly timed: boolean;
  readonly injected_delay_ms: { mean: number; jitter: number };
  /**
   * Control periods, over all episodes, not covered by a fresh chunk whatever the reason (late,
   * failed or never-arriving inference, stale camera), less the one period each inference is
   * planned to take (see ChunkExecutor).
   */
  readonly deadline_misses: number;
  /** Steps on which the watchdog emitted the safe action. */
  readonly safe_hold_steps: number;
  /** Steps the robot stood still: waiting for a chunk (sync) or in safe hold. */
  readonly idle_steps: number;
  readonly stale_frames: number;
  readonly inference_errors: number;
  /** Mean absolute change of the action between consecutive control steps (table units). */
  readonly smoothness: number | null;
}

/**
 * What the model measured over a run, each family in its own way: the report's model fields.
 * Undefined for the scripted agents, which have no model to measure; the report's model fields
 * are then null.
 */
export interface ModelFigures {
  readonly precision: string;
  readonly provider: string;
  /** Frame → chunk latency over the run; undefined when no chunk was inferred. */
  readonly latency: LatencySummary | undefined;
  readonly stage_ms: Record<string, number>;
  readonly stage_percentiles_ms: SimReport['stage_percentiles_ms'];
  readonly visual_tokens: NonNullable<SimReport['visual_tokens']>;
  readonly keep_ratio: number;
  readonly latency_at_final_ratio_ms: LatencySummary | null;
}

/**
 * The report of `run` with agent `agent` on the model `model` (its manifest's name) under
 * `config`; `figures` when the model ran.
 */
export function simReport(
  config: VlaConfig,
  agent: AgentName,
  model: string,
  run: ConfiguredRun,
  figures: ModelFigures | undefined,
): SimReport {
  const s = run.summary;
  const total = figures?.latency;
  return {
    episodes: s.episodes,
    successes: s.successes,
    success_rate: s.success_rate,
    by_task: s.by_task,
    mean_steps: round(s.mean_steps, 2),
    agent,
    seed: config.sim.seed,
    model,
    precision: figures?.precision ?? null,
    provider: figures?.provider ?? null,
    latency_ms: total
      ? { p50: total.p50, p95: total.p95, p99: total.p99, max: total.max, mean: total.mean }
      : null,
    stage_ms: figures?.stage_ms ?? null,
    stage_percentiles_ms: figures?.stage_percentiles_ms ?? null,
    strategy: config.pruning.strategy,
    visual_tokens: figures?.visual_tokens ?? null,
    keep_ratio: figures?.keep_ratio ?? null,
    latency_at_final_ratio_ms: figures?.latency_at_final_ratio_ms ?? null,
    latency_budget_ms: config.runtime.latency_budget_ms,
    execute_steps: run.executeSteps,
    merge_mode: config.runtime.merge_mode,
    timed: run.timed,
    injected_delay_ms: { mean: config.sim.inject_delay_ms, jitter: config.sim.inject_jitter_ms },
    ...timingTotals(s.totals),
  };
}

function timingTotals(
  totals: EpisodeTotals,
): Pick<
  SimReport,
  | 'deadline_misses'
  | 'safe_hold_steps'
  | 'idle_steps'
  | 'stale_frames'
  | 'inference_errors'
  | 'smoothness'
> {
  return {
    deadline_misses: totals.deadlineMisses,
    safe_hold_steps: totals.safeHoldSteps,
    idle_steps: totals.idleSteps,
    stale_frames: totals.staleFrames,
    inference_errors: totals.inferenceErrors,
    smoothness: totals.smoothness === undefined ? null : round(totals.smoothness, 5),
  };
}

/** A readable summary of a report. */
export function formatReport(r: SimReport): string {
  const lines = [
    `${r.agent} on ${r.model}: ${r.successes}/${r.episodes} episodes succeeded (${(100 * r.success_rate).toFixed(1)}%), seed ${r.seed}`,
    // Tasks no episode drew (a short run) say nothing: left out.
    `  by task: ${Object.entries(r.by_task)
      .filter(([, v]) => v.episodes > 0)
      .map(([k, v]) => `${k} ${(100 * v.success_rate).toFixed(1)}% of ${v.episodes}`)
      .join(', ')}`,
  ];
  if (r.latency_ms && r.stage_ms && r.visual_tokens) {
    lines.push(
      `  frame → chunk latency: p50 ${r.latency_ms.p50} ms, p95 ${r.latency_ms.p95} ms, p99 ${r.latency_ms.p99} ms on ${r.provider ?? '?'} (${r.precision ?? '?'})`,
      `  mean per stage (ms): ${Object.entries(r.stage_ms)
        .map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(', ')}`,
      `  visual tokens: ${r.visual_tokens.kept} of ${r.visual_tokens.total} kept`,
    );
  }
  if (r.timed) {
    lines.push(
      `  execution ${r.merge_mode} with ${r.injected_delay_ms.mean} ± ${r.injected_delay_ms.jitter} ms injected delay: ${r.idle_steps} idle steps, ${r.deadline_misses} deadline misses, ${r.safe_hold_steps} safe-hold steps, ${r.stale_frames} stale frames, smoothness ${String(r.smoothness)}`,
    );
  }
  return lines.join('\n');
}
