/**
 * Closed-loop experiments on the built-in tabletop: episodes run with the model (through the
 * pipeline) or a scripted agent under a validated configuration, summarised as a report. The
 * `sim` and `start` commands, the benchmarks and the compression gate's tabletop evaluator run
 * them; a live view is passed in, not started here.
 */
import { VlaPipeline } from '../pipeline/pipeline.js';
import { modelFromConfig, pipelineOptions } from '../pipeline/from-config.js';
import { observeInference, type RunObserver } from '../pipeline/observer.js';
import { executorSettings, syncExecuteSteps } from '../runtime/control-loop.js';
import { STAGES, type LatencySummary } from '../runtime/latency.js';
import { resolveLimits, type ActionLimits } from '../runtime/safety.js';
import type { Manifest } from '../model/manifest.js';
import type { VlaConfig } from '../config/index.js';
import {
  blindAgent,
  expertAgent,
  pipelineAgent,
  runEpisodes,
  type Agent,
  type EpisodeResult,
  type EpisodesSummary,
  type EpisodeTotals,
  type TimingOptions,
} from './runner.js';
import type { TaskKind } from './world.js';

/** The agents an experiment can run: the model, the scripted expert, or the blind baseline. */
export const AGENTS = ['model', 'expert', 'blind'] as const;
export type AgentName = (typeof AGENTS)[number];

/** A live view watching an experiment (the CLI's Foxglove view is one). */
export interface LiveRun {
  /** Sees every frame and chunk of the run. */
  readonly view: RunObserver;
  /** Where progress lines go while the view is open. */
  readonly io: { progress(line: string): void };
  close(): Promise<void>;
}

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
 * Clocked execution in `mode` at the parameters' control rate (the manifest's when 0), with none of
 * the simulator's injected faults: the base of {@link timingFromConfig}, and what the live-view
 * benchmark and picture run.
 */
export function clockedTiming(
  config: VlaConfig,
  manifest: Pick<Manifest, 'control_rate_hz' | 'chunk'>,
  limits: ActionLimits,
  mode: TimingOptions['mode'],
): TimingOptions {
  const r = config.runtime;
  return {
    mode,
    controlRateHz: r.control_rate_hz > 0 ? r.control_rate_hz : manifest.control_rate_hz,
    horizon: manifest.chunk.horizon,
    injectDelayMs: 0,
    injectJitterMs: 0,
    stallProbability: 0,
    stallSteps: 0,
    maxFrameAgeMs: r.max_frame_age_ms,
    executor: executorSettings(config, limits),
  };
}

/**
 * The progress line of each episode of a run of `episodes`: its outcome, steps and instruction,
 * and the success so far.
 */
export function episodeProgress(
  episodes: number,
  progress: (line: string) => void,
): (result: EpisodeResult) => void {
  let done = 0;
  let ok = 0;
  return (r) => {
    done++;
    if (r.success) ok++;
    progress(
      `episode ${done}/${episodes} ${r.success ? 'success' : 'FAIL   '} ${r.steps} steps  "${r.instruction}"  (success so far ${ok}/${done})`,
    );
  };
}

/**
 * The clocked execution settings of the parameters (merge mode, injected delay, jitter and camera
 * stalls) for a model of `manifest`'s rate and horizon, or undefined for the plain synchronous
 * loop. Both model families' experiments run on it.
 */
export function configuredTiming(
  config: VlaConfig,
  manifest: Pick<Manifest, 'control_rate_hz' | 'chunk'>,
  limits: ActionLimits,
): TimingOptions | undefined {
  const r = config.runtime;
  const s = config.sim;
  if (
    r.merge_mode === 'sync' &&
    s.inject_delay_ms === 0 &&
    s.inject_jitter_ms === 0 &&
    s.camera_stall_probability === 0
  )
    return undefined;
  return {
    ...clockedTiming(config, manifest, limits, r.merge_mode),
    injectDelayMs: s.inject_delay_ms,
    injectJitterMs: s.inject_jitter_ms,
    stallProbability: s.camera_stall_probability,
    stallSteps: s.camera_stall_steps,
  };
}

/** {@link configuredTiming} with the pipeline's limits, or for the scripted agents the same
 * resolved from the parameters. */
function timingFromConfig(
  config: VlaConfig,
  manifest: Manifest,
  limits: ActionLimits | undefined,
): TimingOptions | undefined {
  const resolved =
    limits ??
    resolveLimits(manifest, {
      min: config.safety.action_min,
      max: config.safety.action_max,
      maxDeltaPerStep: config.safety.max_delta_per_step,
      allowBeyondModel: config.safety.allow_limits_beyond_model,
    });
  return configuredTiming(config, manifest, resolved);
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
    smoothness: totals.smoothness === undefined ? null : Math.round(totals.smoothness * 1e5) / 1e5,
  };
}

/** A scripted agent that shows its frames and chunks to `observer`. */
function observedAgent(agent: Agent, observer: RunObserver, horizon: number): Agent {
  let sequence = 0;
  return {
    name: agent.name,
    act: async (obs, sim) => {
      observer.onFrame?.(obs.image, obs.instruction, 'camera');
      const actions = await agent.act(obs, sim);
      observer.onChunk?.(
        { actions, horizon, actionDim: actions.length / horizon, sequence: sequence++ },
        obs.image,
      );
      return actions;
    },
  };
}

/**
 * Run closed-loop episodes with `agent` under `config`; progress lines go to `progress`. With
 * `live`, a live view is started once the model's manifest is known, sees the run, and is closed
 * at the end.
 */
export async function simulate(
  config: VlaConfig,
  agentName: AgentName,
  progress: (line: string) => void,
  taskKind?: TaskKind,
  live?: (manifest: Manifest, overlay: boolean) => Promise<LiveRun | undefined>,
): Promise<SimReport> {
  const model = await modelFromConfig(config);
  const m = model.manifest;
  const view = await live?.(m, agentName === 'model');
  try {
    return await simulateWith(
      config,
      agentName,
      view === undefined
        ? progress
        : (line) => {
            view.io.progress(line);
          },
      m,
      model,
      view,
      taskKind,
    );
  } finally {
    await view?.close();
  }
}

async function simulateWith(
  config: VlaConfig,
  agentName: AgentName,
  progress: (line: string) => void,
  m: Manifest,
  model: Awaited<ReturnType<typeof modelFromConfig>>,
  live: LiveRun | undefined,
  taskKind: TaskKind | undefined,
): Promise<SimReport> {
  let pipeline: VlaPipeline | undefined;
  let agent: Agent;
  if (agentName === 'model') {
    progress(
      `loading ${m.name} (${config.model.precision}) on ${config.backend.execution_providers.join(' → ')} and warming up...`,
    );
    pipeline = await VlaPipeline.create(model, pipelineOptions(config, progress));
    progress(
      `ready on ${pipeline.provider}: ${pipeline.tokenBudget}/${pipeline.totalTokens} visual tokens per frame (${config.pruning.strategy}), ${pipeline.kernels} kernels`,
    );
    agent = pipelineAgent(
      live === undefined ? pipeline : { infer: observeInference(pipeline, live.view).infer },
    );
  } else {
    agent = agentName === 'expert' ? expertAgent(m.chunk.horizon) : blindAgent(m.chunk.horizon);
    if (live !== undefined) agent = observedAgent(agent, live.view, m.chunk.horizon);
  }
  const executeSteps = syncExecuteSteps(config.runtime.execute_steps, m.chunk.horizon);
  const timing = timingFromConfig(config, m, pipeline?.actionLimits);
  try {
    const summary = await runEpisodes(agent, {
      episodes: config.sim.episodes,
      seed: config.sim.seed,
      executeSteps,
      maxSteps: config.sim.max_steps,
      cameraWidth: config.sim.camera_width,
      cameraHeight: config.sim.camera_height,
      ...(taskKind === undefined ? {} : { taskKind }),
      ...(timing === undefined ? {} : { timing }),
      ...(live === undefined
        ? {}
        : {
            observer: live.view,
            ...(config.foxglove.pace_sim
              ? {
                  paceHz:
                    timing?.controlRateHz ??
                    (config.runtime.control_rate_hz > 0
                      ? config.runtime.control_rate_hz
                      : m.control_rate_hz),
                }
              : {}),
          }),
      onEpisode: episodeProgress(config.sim.episodes, progress),
    });
    const total = pipeline?.latency.total.summary();
    return {
      episodes: summary.episodes,
      successes: summary.successes,
      success_rate: summary.success_rate,
      by_task: summary.by_task,
      mean_steps: Math.round(summary.mean_steps * 100) / 100,
      agent: agentName,
      seed: config.sim.seed,
      model: m.name,
      precision: pipeline?.precision ?? null,
      provider: pipeline?.provider ?? null,
      latency_ms: total
        ? { p50: total.p50, p95: total.p95, p99: total.p99, max: total.max, mean: total.mean }
        : null,
      stage_ms: pipeline?.latency.stageMeans() ?? null,
      stage_percentiles_ms: pipeline ? stagePercentiles(pipeline) : null,
      strategy: config.pruning.strategy,
      visual_tokens: pipeline
        ? {
            total: pipeline.totalTokens,
            kept: pipeline.tokenBudget,
            mean_kept: Math.round(pipeline.meanKeptTokens * 100) / 100,
          }
        : null,
      keep_ratio: pipeline ? Math.round(pipeline.keepRatio * 1e4) / 1e4 : null,
      latency_at_final_ratio_ms: pipeline ? pipeline.latencyAtCurrentRatio.summary() : null,
      latency_budget_ms: config.runtime.latency_budget_ms,
      execute_steps: executeSteps,
      merge_mode: config.runtime.merge_mode,
      timed: timing !== undefined,
      injected_delay_ms: { mean: config.sim.inject_delay_ms, jitter: config.sim.inject_jitter_ms },
      ...timingTotals(summary.totals),
    };
  } finally {
    await pipeline?.release();
  }
}

function stagePercentiles(
  pipeline: VlaPipeline,
): Record<string, { p50: number; p95: number; p99: number }> {
  return Object.fromEntries(
    STAGES.map((stage) => {
      const { p50, p95, p99 } = pipeline.latency.stages[stage].summary();
      return [stage, { p50, p95, p99 }];
    }),
  );
}

/** A readable summary of a report. */
export function formatReport(r: SimReport): string {
  const lines = [
    `${r.agent} on ${r.model}: ${r.successes}/${r.episodes} episodes succeeded (${(100 * r.success_rate).toFixed(1)}%), seed ${r.seed}`,
    `  by task: ${Object.entries(r.by_task)
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
