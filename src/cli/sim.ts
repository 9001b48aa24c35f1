import { VlaPipeline } from '../pipeline/pipeline.js';
import { STAGES } from '../runtime/latency.js';
import {
  blindAgent,
  expertAgent,
  pipelineAgent,
  runEpisodes,
  type Agent,
  type EpisodesSummary,
} from '../sim/runner.js';
import { TASK_KINDS, type TaskKind } from '../sim/world.js';
import { ConfigError } from '../errors.js';
import type { VlaConfig } from '../config/index.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

const AGENTS = ['model', 'expert', 'blind'] as const;
type AgentName = (typeof AGENTS)[number];

/** Flags of `sim` that set a parameter, flag → dotted key. */
const FLAG_KEYS = {
  episodes: 'sim.episodes',
  seed: 'sim.seed',
  precision: 'model.precision',
  model: 'model.path',
  strategy: 'pruning.strategy',
  'keep-ratio': 'pruning.keep_ratio',
  'keep-count': 'pruning.keep_count',
  'execute-steps': 'runtime.execute_steps',
  providers: 'backend.execution_providers',
} as const;

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
  readonly visual_tokens: { total: number; kept: number } | null;
  readonly execute_steps: number;
}

/** Run closed-loop episodes with `agent` under `config`; progress lines go to `progress`. */
export async function simulate(
  config: VlaConfig,
  agentName: AgentName,
  progress: (line: string) => void,
  taskKind?: TaskKind,
): Promise<SimReport> {
  const model = await modelFromConfig(config);
  const m = model.manifest;
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
    agent = pipelineAgent(pipeline);
  } else {
    agent = agentName === 'expert' ? expertAgent(m.chunk.horizon) : blindAgent(m.chunk.horizon);
  }
  const executeSteps =
    config.runtime.execute_steps > 0
      ? config.runtime.execute_steps
      : Math.max(1, Math.floor(m.chunk.horizon / 2));
  let done = 0;
  let ok = 0;
  try {
    const summary = await runEpisodes(agent, {
      episodes: config.sim.episodes,
      seed: config.sim.seed,
      executeSteps,
      maxSteps: config.sim.max_steps,
      cameraWidth: config.sim.camera_width,
      cameraHeight: config.sim.camera_height,
      ...(taskKind === undefined ? {} : { taskKind }),
      onEpisode: (r) => {
        done++;
        if (r.success) ok++;
        progress(
          `episode ${done}/${config.sim.episodes} ${r.success ? 'success' : 'FAIL   '} ${r.steps} steps  "${r.instruction}"  (success so far ${ok}/${done})`,
        );
      },
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
      visual_tokens: pipeline ? { total: pipeline.totalTokens, kept: pipeline.tokenBudget } : null,
      execute_steps: executeSteps,
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
  return lines.join('\n');
}

function agentOf(values: OptionValues): AgentName {
  const a = values.agent ?? 'model';
  if (!AGENTS.includes(a as AgentName)) {
    throw new ConfigError(
      `Expected --agent ${AGENTS.join('|')} but received ${JSON.stringify(a)}`,
      { field: 'agent' },
    );
  }
  return a as AgentName;
}

function taskOf(values: OptionValues): TaskKind | undefined {
  const t = values.task;
  if (t === undefined) return undefined;
  if (!TASK_KINDS.includes(t as TaskKind)) {
    throw new ConfigError(
      `Expected --task ${TASK_KINDS.join('|')} but received ${JSON.stringify(t)}`,
      { field: 'task' },
    );
  }
  return t as TaskKind;
}

export async function runSim(values: OptionValues, io: CommandIo): Promise<number> {
  const config = await configFromArgs(values, FLAG_KEYS);
  const report = await simulate(
    config,
    agentOf(values),
    (line) => {
      io.progress(line);
    },
    taskOf(values),
  );
  io.result(report, formatReport(report));
  return 0;
}

export const simCommand: CommandSpec = {
  name: 'sim',
  summary:
    'run closed-loop episodes of the built-in tabletop simulator with the model (or a baseline agent)',
  options: {
    episodes: { type: 'string', help: 'number of episodes (sim.episodes)' },
    seed: { type: 'string', help: 'seed of the episode sequence (sim.seed)' },
    precision: { type: 'string', help: 'fp32|fp16|int8|auto (model.precision)' },
    model: { type: 'string', help: 'model package folder (model.path)' },
    strategy: { type: 'string', help: 'visual-token pruning strategy (pruning.strategy)' },
    'keep-ratio': { type: 'string', help: 'fraction of visual tokens kept (pruning.keep_ratio)' },
    'keep-count': {
      type: 'string',
      help: 'number of visual tokens kept, overrides the ratio (pruning.keep_count)',
    },
    'execute-steps': {
      type: 'string',
      help: 'actions executed per chunk before re-querying (runtime.execute_steps)',
    },
    providers: {
      type: 'string',
      help: 'execution providers in order, e.g. "[cuda, cpu]" (backend.execution_providers)',
    },
    agent: {
      type: 'string',
      default: 'model',
      help: 'model|expert|blind (blind: nearest block, ignores language)',
    },
    task: { type: 'string', help: 'only this task form: reach|relation' },
    ...CONFIG_OPTIONS,
  },
  run: runSim,
};
