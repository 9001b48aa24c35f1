/**
 * Closed-loop episodes of an autoregressive package (`vla-node sim --model models/tiny-vla-ar`):
 * the same episodes, report and success criterion as for the other families, the model run
 * through ArPipeline (pruning before the prefill, `runtime.decoding`, the runtime's safety clamp).
 */
import { configuredLimits, resolvePackagePath, type VlaConfig } from '../config/index.js';
import { readArPackage } from '../policy/autoregressive/package.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import type { ArPipeline } from '../policy/autoregressive/pipeline.js';
import { streamAgent } from '../sim/ar-agent.js';
import {
  configuredTiming,
  runConfiguredEpisodes,
  scriptedAgent,
  type AgentName,
} from '../sim/configured-run.js';
import { formatReport, simReport, type SimReport } from '../sim/report.js';
import type { Agent } from '../sim/runner.js';
import type { TaskKind } from '../sim/world.js';
import { round } from '../util/stats.js';

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
    agent = streamAgent(pipeline);
  } else {
    agent = scriptedAgent(agentName, m.chunk.horizon);
  }
  const limits = pipeline?.actionLimits ?? configuredLimits(config, m);
  const timing = configuredTiming(config, m, limits);
  try {
    const run = await runConfiguredEpisodes(agent, config, m.chunk.horizon, progress, {
      limits,
      taskKind,
      timing,
    });
    const total = pipeline?.latency.total.summary();
    const d = pipeline?.decodeTotals;
    const chunks = Math.max(1, d?.chunks ?? 0);
    return {
      ...simReport(
        config,
        agentName,
        m.name,
        run,
        pipeline === undefined
          ? undefined
          : {
              precision: pipeline.precision,
              provider: 'cpu',
              latency: total,
              stage_ms: pipeline.latency.stageMeans(),
              stage_percentiles_ms: null,
              visual_tokens: {
                total: pipeline.totalTokens,
                kept: pipeline.tokenBudget,
                mean_kept: round((d?.keptTokens ?? 0) / chunks, 2),
              },
              keep_ratio: round(pipeline.policy.keepRatio, 4),
              latency_at_final_ratio_ms: total ?? null,
            },
      ),
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
