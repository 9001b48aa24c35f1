/**
 * Closed-loop episodes of an autoregressive package (`vla-node sim --model models/tiny-vla-ar`):
 * the same episodes, report and success criterion as for the other families, the model run
 * through ArPipeline (pruning before the prefill, `runtime.decoding`, the runtime's safety clamp).
 */
import { syncExecuteSteps } from '../runtime/control-loop.js';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { readArPackage } from '../policy/autoregressive/package.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import type { ArPipeline } from '../policy/autoregressive/pipeline.js';
import { resolveLimits } from '../runtime/safety.js';
import { streamAgent } from '../sim/ar-agent.js';
import { configuredTiming, episodeProgress, type AgentName } from '../sim/configured-run.js';
import { formatReport, type SimReport } from '../sim/report.js';
import { blindAgent, expertAgent, runEpisodes, type Agent } from '../sim/runner.js';
import type { TaskKind } from '../sim/world.js';

/** What an autoregressive run reports beyond the common report: how its chunks were decoded. */
export interface ArRunReport {
  readonly decoding: string;
  /** Tokens fed per decoder call (0: the chunk's whole token count). */
  readonly window: number;
  readonly tokens_per_chunk: number;
  /** Sequential decoder calls after the prefill, per chunk (greedy: tokens - 1). */
  readonly decoder_calls_per_chunk: number;
  /** Share of the guesses fed (Jacobi's, the draft's) that equalled greedy's token. */
  readonly guess_acceptance: number | null;
}

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** Runs `sim.episodes` episodes of the autoregressive package at `model.path`. */
export async function simulateAr(
  config: VlaConfig,
  agentName: AgentName,
  progress: (line: string) => void,
  taskKind?: TaskKind,
): Promise<SimReport & { readonly autoregressive: ArRunReport | null }> {
  const dir = resolvePackagePath(config.model.path);
  const pkg = await readArPackage(dir, { precision: config.model.precision });
  const m = pkg.manifest;
  let pipeline: ArPipeline | undefined;
  let agent: Agent;
  if (agentName === 'model') {
    progress(
      `loading ${m.name} (autoregressive, ${config.model.precision}, decoding ${config.runtime.decoding}) on cpu and warming up...`,
    );
    pipeline = await arPipelineFromConfig(config, dir);
    agent = streamAgent(pipeline, m.control_rate_hz);
  } else {
    agent = agentName === 'expert' ? expertAgent(m.chunk.horizon) : blindAgent(m.chunk.horizon);
  }
  const limits =
    pipeline?.actionLimits ??
    resolveLimits(m, {
      min: config.safety.action_min,
      max: config.safety.action_max,
      maxDeltaPerStep: config.safety.max_delta_per_step,
      allowBeyondModel: config.safety.allow_limits_beyond_model,
    });
  const executeSteps = syncExecuteSteps(config.runtime.execute_steps, m.chunk.horizon);
  const timing = configuredTiming(config, m, limits);
  try {
    const summary = await runEpisodes(agent, {
      episodes: config.sim.episodes,
      seed: config.sim.seed,
      executeSteps,
      maxSteps: config.sim.max_steps,
      cameraWidth: config.sim.camera_width,
      cameraHeight: config.sim.camera_height,
      limits,
      ...(taskKind === undefined ? {} : { taskKind }),
      ...(timing === undefined ? {} : { timing }),
      onEpisode: episodeProgress(config.sim.episodes, progress),
    });
    const total = pipeline?.latency.total.summary();
    const d = pipeline?.decodeTotals;
    const chunks = Math.max(1, d?.chunks ?? 0);
    const t = summary.totals;
    return {
      episodes: summary.episodes,
      successes: summary.successes,
      success_rate: summary.success_rate,
      by_task: summary.by_task,
      mean_steps: round(summary.mean_steps, 2),
      agent: agentName,
      seed: config.sim.seed,
      model: m.name,
      precision: pipeline?.precision ?? null,
      provider: pipeline === undefined ? null : 'cpu',
      latency_ms: total
        ? { p50: total.p50, p95: total.p95, p99: total.p99, max: total.max, mean: total.mean }
        : null,
      stage_ms: pipeline?.latency.stageMeans() ?? null,
      stage_percentiles_ms: null,
      strategy: config.pruning.strategy,
      visual_tokens: pipeline
        ? {
            total: pipeline.totalTokens,
            kept: pipeline.tokenBudget,
            mean_kept: round((d?.keptTokens ?? 0) / chunks, 2),
          }
        : null,
      keep_ratio: pipeline ? round(pipeline.policy.keepRatio, 4) : null,
      latency_at_final_ratio_ms: total ?? null,
      latency_budget_ms: config.runtime.latency_budget_ms,
      execute_steps: executeSteps,
      merge_mode: config.runtime.merge_mode,
      timed: timing !== undefined,
      injected_delay_ms: { mean: config.sim.inject_delay_ms, jitter: config.sim.inject_jitter_ms },
      deadline_misses: t.deadlineMisses,
      safe_hold_steps: t.safeHoldSteps,
      idle_steps: t.idleSteps,
      stale_frames: t.staleFrames,
      inference_errors: t.inferenceErrors,
      smoothness: t.smoothness === undefined ? null : round(t.smoothness, 5),
      autoregressive:
        pipeline === undefined || d === undefined
          ? null
          : {
              decoding: pipeline.decoding.strategy,
              window: pipeline.decoding.window,
              tokens_per_chunk: round(d.tokens / chunks),
              decoder_calls_per_chunk: round(d.decoderCalls / chunks),
              guess_acceptance: d.guessesFed > 0 ? round(d.guessesAccepted / d.guessesFed) : null,
            },
    };
  } finally {
    await pipeline?.release();
  }
}

/** The common report's text plus how the chunks were decoded. */
export function formatArReport(
  r: SimReport & { readonly autoregressive: ArRunReport | null },
): string {
  const a = r.autoregressive;
  return a === null
    ? formatReport(r)
    : `${formatReport(r)}\n  decoding ${a.decoding}${a.window > 0 ? ` (window ${a.window})` : ''}: ${a.decoder_calls_per_chunk} sequential decoder calls per chunk of ${a.tokens_per_chunk} tokens${a.guess_acceptance === null ? '' : `, ${(100 * a.guess_acceptance).toFixed(1)}% of guesses accepted`}`;
}
