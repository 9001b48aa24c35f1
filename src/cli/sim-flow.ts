import { syncExecuteSteps } from '../runtime/control-loop.js';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { DEFAULT_FLOW_CACHES } from '../flow/from-config.js';
import { FlowPolicy, type FlowCacheOptions, type FlowResult } from '../flow/policy.js';
import { loadFlowPackage, type FlowPackage } from '../model/flow-manifest.js';
import { LatencyHistogram } from '../runtime/latency.js';
import { resolveLimits, type ActionLimits } from '../runtime/safety.js';
import { flowAgent, type GuidanceSettings } from '../sim/flow-agent.js';
import {
  blindAgent,
  expertAgent,
  runEpisodes,
  type Agent,
  type EpisodesSummary,
  type TimingOptions,
} from '../sim/runner.js';
import type { TaskKind } from '../sim/world.js';
import { configuredTiming, episodeProgress } from '../sim/configured-run.js';
import type { SimReport } from '../sim/report.js';
import { gateConfig, tabletopEvaluator, type TabletopEvaluator } from '../sim/evaluator.js';

/** Settings of a flow run beyond the parameter file (the flow family's own knobs). */
export interface FlowRunOptions {
  /** Denoising steps (default: the manifest's). */
  readonly steps?: number;
  readonly caches?: FlowCacheOptions;
  /** Seed of the per-request noise (default: sim.seed). */
  readonly noiseSeed?: number;
  /** Copy the keys/values before every expert step (the baseline `bench flow` measures against). */
  readonly copyKvPerStep?: boolean;
  /**
   * Real-time chunking by guided inpainting (timed runs; the executor then replaces the plan with
   * each chunk, which already continues it).
   */
  readonly guidance?: GuidanceSettings;
}

export { DEFAULT_FLOW_CACHES };

/** Resolve the run's action limits from the parameters and the flow manifest. */
export function flowLimits(config: VlaConfig, pkg: FlowPackage): ActionLimits {
  return resolveLimits(pkg.manifest, {
    min: config.safety.action_min,
    max: config.safety.action_max,
    maxDeltaPerStep: config.safety.max_delta_per_step,
    allowBeyondModel: config.safety.allow_limits_beyond_model,
  });
}

/** Open a flow policy with the parameters' pruning and thread settings. */
export async function flowPolicyFromConfig(
  config: VlaConfig,
  pkg: FlowPackage,
  run: FlowRunOptions = {},
): Promise<FlowPolicy> {
  const limits = flowLimits(config, pkg);
  return FlowPolicy.create(pkg, {
    precision: config.model.precision,
    ...(run.steps === undefined ? {} : { steps: run.steps }),
    pruning: {
      strategy: config.pruning.strategy,
      keepRatio: config.pruning.keep_ratio,
      keepCount: config.pruning.keep_count,
      seed: config.pruning.seed,
    },
    caches: run.caches ?? DEFAULT_FLOW_CACHES,
    ...(run.copyKvPerStep === true ? { copyKvPerStep: true } : {}),
    latencyBudget: {
      budgetMs: config.runtime.latency_budget_ms,
      minKeepRatio: config.pruning.min_keep_ratio,
      minSteps: config.runtime.min_denoising_steps,
    },
    limits,
    intraOpThreads: config.backend.intra_op_threads,
  });
}

/** The clocked execution settings of the parameters, or undefined for the synchronous loop. */
export function flowTiming(
  config: VlaConfig,
  pkg: FlowPackage,
  limits: ActionLimits,
): TimingOptions | undefined {
  return configuredTiming(config, pkg.manifest, limits);
}

/** What a flow run measured besides success. */
export interface FlowRunStats {
  readonly latency: LatencyHistogram;
  readonly stages: Record<keyof FlowResult['timings'], number>;
  inferences: number;
  keptTokens: number;
  reusedTokens: number;
}

/**
 * Closed-loop episodes of a flow package (`vla-node sim --model models/tiny-vla-flow`): the same
 * episodes, report and success criterion as for the encoder + policy family.
 */
export async function simulateFlow(
  config: VlaConfig,
  agentName: 'model' | 'expert' | 'blind',
  progress: (line: string) => void,
  taskKind?: TaskKind,
  run: FlowRunOptions = {},
): Promise<
  SimReport & { readonly flow: Record<string, unknown> | null; readonly boundary_jump: number }
> {
  const pkg = await loadFlowPackage(resolvePackagePath(config.model.path));
  const m = pkg.manifest;
  const limits = flowLimits(config, pkg);
  let policy: FlowPolicy | undefined;
  const stats: FlowRunStats = {
    latency: new LatencyHistogram(),
    stages: { ingest: 0, encode: 0, prune: 0, instruction: 0, prefix: 0, denoise: 0, total: 0 },
    inferences: 0,
    keptTokens: 0,
    reusedTokens: 0,
  };
  let agent: Agent;
  if (agentName === 'model') {
    progress(`loading ${m.name} (flow, ${m.cameras.map((c) => c.name).join(' + ')}) on cpu...`);
    policy = await flowPolicyFromConfig(config, pkg, run);
    agent = flowAgent(policy, {
      seed: run.noiseSeed ?? config.sim.seed,
      ...(run.steps === undefined ? {} : { steps: run.steps }),
      ...(run.guidance === undefined ? {} : { guidance: run.guidance }),
      onResult: (r) => {
        stats.latency.record(r.timings.total);
        for (const k of Object.keys(stats.stages) as (keyof FlowResult['timings'])[]) {
          stats.stages[k] += r.timings[k];
        }
        stats.inferences++;
        stats.keptTokens += r.keptTokens;
        stats.reusedTokens += r.reusedTokens;
      },
    });
  } else {
    agent = agentName === 'expert' ? expertAgent(m.chunk.horizon) : blindAgent(m.chunk.horizon);
  }
  const executeSteps = syncExecuteSteps(config.runtime.execute_steps, m.chunk.horizon);
  const clocked = flowTiming(config, pkg, limits);
  const timing =
    clocked === undefined || run.guidance === undefined ? clocked : { ...clocked, guided: true };
  try {
    const summary: EpisodesSummary = await runEpisodes(agent, {
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
    const total = stats.inferences > 0 ? stats.latency.summary() : undefined;
    const mean = (v: number): number =>
      Math.round((v / Math.max(1, stats.inferences)) * 1000) / 1000;
    const t = summary.totals;
    return {
      episodes: summary.episodes,
      successes: summary.successes,
      success_rate: summary.success_rate,
      by_task: summary.by_task,
      mean_steps: Math.round(summary.mean_steps * 100) / 100,
      agent: agentName,
      seed: config.sim.seed,
      model: m.name,
      precision: policy?.variant.precision ?? null,
      provider: policy === undefined ? null : 'cpu',
      latency_ms: total
        ? { p50: total.p50, p95: total.p95, p99: total.p99, max: total.max, mean: total.mean }
        : null,
      stage_ms:
        policy === undefined
          ? null
          : Object.fromEntries(Object.entries(stats.stages).map(([k, v]) => [k, mean(v)])),
      stage_percentiles_ms: null,
      strategy: config.pruning.strategy,
      visual_tokens: policy
        ? {
            total: policy.totalTokens,
            kept: policy.tokenBudget * m.cameras.length,
            mean_kept: mean(stats.keptTokens),
          }
        : null,
      keep_ratio: policy ? (policy.effort?.keepRatio ?? config.pruning.keep_ratio) : null,
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
      smoothness: t.smoothness === undefined ? null : Math.round(t.smoothness * 1e5) / 1e5,
      boundary_jump: Math.round(t.boundaryJump * 1e5) / 1e5,
      flow:
        policy === undefined
          ? null
          : {
              cameras: m.cameras.map((c) => c.name),
              steps: policy.steps,
              // Where the latency-budget controller ended (the configured values without a budget).
              final_steps: policy.effort?.steps ?? policy.steps,
              caches: run.caches ?? DEFAULT_FLOW_CACHES,
              mean_reused_tokens: mean(stats.reusedTokens),
              guidance: run.guidance ?? null,
            },
    };
  } finally {
    await policy?.release();
  }
}

/**
 * The compression gate's evaluator for flow packages on the tabletop: held-out observations of
 * every camera the package names, and the closed loop of `vla-node sim` (both cameras, no pruning,
 * the CPU provider). The closed loop's `policy` stage is instruction + prefix + denoising (means).
 */
export function flowTabletopEvaluator(): TabletopEvaluator {
  const tabletop = tabletopEvaluator();
  return {
    heldOut: (count, seed, cameras) => tabletop.heldOut(count, seed, cameras),
    async closedLoop(dir, precision, run) {
      const report = await simulateFlow(
        await gateConfig(dir, precision, run),
        'model',
        () => undefined,
      );
      const s = report.stage_ms ?? {};
      return {
        rate: report.success_rate,
        stages: {
          encode: s.encode ?? Number.NaN,
          policy:
            (s.instruction ?? Number.NaN) + (s.prefix ?? Number.NaN) + (s.denoise ?? Number.NaN),
        },
      };
    },
  };
}
