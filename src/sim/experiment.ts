/**
 * Closed-loop experiments on the built-in tabletop: episodes run with the model (through the
 * pipeline) or a scripted agent under a validated configuration, summarised as a report. The
 * `sim` and `start` commands, the benchmarks and the compression gate's tabletop evaluator run
 * them; a live view is passed in, not started here.
 */
import { VlaPipeline } from '../pipeline/pipeline.js';
import { configuredControlRate, configuredLimits, type VlaConfig } from '../config/index.js';
import { modelFromConfig, pipelineOptions } from '../pipeline/from-config.js';
import { observeInference, type RunObserver } from '../pipeline/observer.js';
import { STAGES } from '../runtime/latency.js';
import { round } from '../util/stats.js';
import type { Manifest } from '../model/manifest.js';
import {
  configuredTiming,
  runConfiguredEpisodes,
  scriptedAgent,
  type AgentName,
} from './configured-run.js';
import { simReport, type ModelFigures, type SimReport } from './report.js';
import { pipelineAgent, type Agent } from './runner.js';
import type { TaskKind } from './world.js';

/** A live view watching an experiment (the CLI's Foxglove view is one). */
export interface LiveRun {
  /** Sees every frame and chunk of the run. */
  readonly view: RunObserver;
  /** Where progress lines go while the view is open. */
  readonly io: { progress(line: string): void };
  close(): Promise<void>;
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
    agent = scriptedAgent(agentName, m.chunk.horizon);
    if (live !== undefined) agent = observedAgent(agent, live.view, m.chunk.horizon);
  }
  // The scripted agents have no pipeline: their clocked executor clamps to the same limits resolved
  // from the parameters.
  const timing = configuredTiming(config, m, pipeline?.actionLimits ?? configuredLimits(config, m));
  try {
    const run = await runConfiguredEpisodes(agent, config, m.chunk.horizon, progress, {
      taskKind,
      timing,
      observer: live?.view,
      // A watched run goes at the control rate, so that it can be followed.
      paceHz:
        live !== undefined && config.foxglove.pace_sim
          ? (timing?.controlRateHz ?? configuredControlRate(config, m))
          : undefined,
    });
    return simReport(
      config,
      agentName,
      m.name,
      run,
      pipeline === undefined ? undefined : pipelineFigures(pipeline),
    );
  } finally {
    await pipeline?.release();
  }
}

/** What the encoder + policy pipeline measured over the run. */
function pipelineFigures(pipeline: VlaPipeline): ModelFigures {
  return {
    precision: pipeline.precision,
    provider: pipeline.provider,
    latency: pipeline.latency.total.summary(),
    stage_ms: pipeline.latency.stageMeans(),
    stage_percentiles_ms: stagePercentiles(pipeline),
    visual_tokens: {
      total: pipeline.totalTokens,
      kept: pipeline.tokenBudget,
      mean_kept: round(pipeline.meanKeptTokens, 2),
    },
    keep_ratio: round(pipeline.keepRatio, 4),
    latency_at_final_ratio_ms: pipeline.latencyAtCurrentRatio.summary(),
  };
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
