/**
 * Closed-loop episodes of a flow-matching package (`vla-node sim --model models/tiny-vla-flow`) and
 * the compression gate's tabletop evaluator for such packages: the same episodes, report and
 * success criterion as for the other families, the model run through FlowPolicy (both cameras,
 * the family's caches, denoising steps and real-time chunking guidance).
 */
import { configuredLimits, resolvePackagePath, type VlaConfig } from '../config/index.js';
import { DEFAULT_FLOW_CACHES } from '../flow/from-config.js';
import { FlowPolicy, type FlowCacheOptions, type FlowResult } from '../flow/policy.js';
import { loadFlowPackage, type FlowPackage } from '../model/flow-manifest.js';
import { LatencyHistogram } from '../runtime/latency.js';
import { flowAgent, type GuidanceSettings } from '../sim/flow-agent.js';
import type { Agent } from '../sim/runner.js';
import type { TaskKind } from '../sim/world.js';
import {
  configuredTiming,
  runConfiguredEpisodes,
  scriptedAgent,
  type AgentName,
} from '../sim/configured-run.js';
import { simReport, type SimReport } from '../sim/report.js';
import { gateConfig, tabletopEvaluator, type TabletopEvaluator } from '../sim/evaluator.js';
import { round } from '../util/stats.js';

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

/** Open a flow policy with the parameters' pruning and thread settings. */
export async function flowPolicyFromConfig(
  config: VlaConfig,
  pkg: FlowPackage,
  run: FlowRunOptions = {},
): Promise<FlowPolicy> {
  const limits = configuredLimits(config, pkg.manifest);
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
  agentName: AgentName,
  progress: (line: string) => void,
  taskKind?: TaskKind,
  run: FlowRunOptions = {},
): Promise<
  SimReport & { readonly flow: Record<string, unknown> | null; readonly boundary_jump: number }
> {
  const pkg = await loadFlowPackage(resolvePackagePath(config.model.path));
  const m = pkg.manifest;
  const limits = configuredLimits(config, m);
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
    agent = scriptedAgent(agentName, m.chunk.horizon);
  }
  const clocked = configuredTiming(config, m, limits);
  const timing =
    clocked === undefined || run.guidance === undefined ? clocked : { ...clocked, guided: true };
  try {
    const outcome = await runConfiguredEpisodes(agent, config, m.chunk.horizon, progress, {
      limits,
      taskKind,
      timing,
    });
    const total = stats.inferences > 0 ? stats.latency.summary() : undefined;
    const mean = (v: number): number => round(v / Math.max(1, stats.inferences));
    return {
      ...simReport(
        config,
        agentName,
        m.name,
        outcome,
        policy === undefined
          ? undefined
          : {
              precision: policy.variant.precision,
              provider: 'cpu',
              latency: total,
              stage_ms: Object.fromEntries(
                Object.entries(stats.stages).map(([k, v]) => [k, mean(v)]),
              ),
              stage_percentiles_ms: null,
              visual_tokens: {
                total: policy.totalTokens,
                kept: policy.tokenBudget * m.cameras.length,
                mean_kept: mean(stats.keptTokens),
              },
              keep_ratio: policy.effort?.keepRatio ?? config.pruning.keep_ratio,
              latency_at_final_ratio_ms: total ?? null,
            },
      ),
      boundary_jump: round(outcome.summary.totals.boundaryJump, 5),
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
