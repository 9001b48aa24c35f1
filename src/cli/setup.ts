import {
  checkConfigForModel,
  loadConfig,
  parseOverride,
  resolvePackagePath,
  type VlaConfig,
} from '../config/index.js';
import { ingestLimits } from '../ingest/index.js';
import { loadModelPackage, type ModelPackage } from '../model/manifest.js';
import type { PipelineOptions } from '../pipeline/pipeline.js';
import type { OptionSpec, OptionValues } from './command.js';

/** Options every command that loads the configuration shares. */
export const CONFIG_OPTIONS = {
  params: { type: 'string', help: 'parameter file (default: config/vla_node.param.yaml)' },
  set: {
    type: 'string',
    multiple: true,
    help: 'override one parameter, e.g. --set pruning.keep_ratio=0.5',
  },
} as const satisfies Record<string, OptionSpec>;

/** Flags that set a model, backend or pruning parameter, flag → dotted key (shared by commands). */
export const MODEL_FLAG_KEYS = {
  precision: 'model.precision',
  model: 'model.path',
  strategy: 'pruning.strategy',
  'keep-ratio': 'pruning.keep_ratio',
  'keep-count': 'pruning.keep_count',
  providers: 'backend.execution_providers',
  'latency-budget-ms': 'runtime.latency_budget_ms',
} as const;

export const MODEL_OPTIONS = {
  precision: { type: 'string', help: 'fp32|fp16|int8|auto (model.precision)' },
  model: { type: 'string', help: 'model package folder (model.path)' },
  strategy: { type: 'string', help: 'visual-token pruning strategy (pruning.strategy)' },
  'keep-ratio': { type: 'string', help: 'fraction of visual tokens kept (pruning.keep_ratio)' },
  'keep-count': {
    type: 'string',
    help: 'number of visual tokens kept, overrides the ratio (pruning.keep_count)',
  },
  providers: {
    type: 'string',
    help: 'execution providers in order, e.g. "[cuda, cpu]" (backend.execution_providers)',
  },
  'latency-budget-ms': {
    type: 'string',
    help: 'p95 latency budget; adapts the keep ratio (runtime.latency_budget_ms)',
  },
} as const satisfies Record<string, OptionSpec>;

/**
 * Load the parameter file with `--set` overrides plus the command's own flags (mapped to dotted
 * keys by `flags`: flag name → key; a flag left out keeps the file's value).
 */
export async function configFromArgs(
  values: OptionValues,
  flags: Readonly<Record<string, string>> = {},
): Promise<Readonly<VlaConfig>> {
  const overrides: Record<string, unknown> = {};
  const sets = values.set;
  for (const text of Array.isArray(sets) ? sets : []) {
    const [key, value] = parseOverride(text);
    overrides[key] = value;
  }
  for (const [flag, key] of Object.entries(flags)) {
    const v = values[flag];
    if (typeof v === 'string') overrides[key] = parseOverride(`${key}=${v}`)[1];
  }
  const params = values.params;
  return loadConfig({ ...(typeof params === 'string' ? { file: params } : {}), overrides });
}

/**
 * Load `model.path` and check the configuration against its manifest (limits, safe pose,
 * execute_steps): the one place where parameters meet the model.
 *
 * @throws {ConfigError} (from checkConfigForModel) for parameters that do not fit the model.
 */
export async function modelFromConfig(config: VlaConfig): Promise<ModelPackage> {
  const model = await loadModelPackage(resolvePackagePath(config.model.path));
  checkConfigForModel(config, model.manifest);
  return model;
}

/** The pipeline's options from the validated configuration. */
export function pipelineOptions(config: VlaConfig, log: (m: string) => void): PipelineOptions {
  return {
    precision: config.model.precision,
    backend: {
      executionProviders: config.backend.execution_providers,
      intraOpThreads: config.backend.intra_op_threads,
      interOpThreads: config.backend.inter_op_threads,
      graphOptimization: config.backend.graph_optimization,
      tensorrtCachePath: config.backend.tensorrt_cache_path,
      telemetry: config.backend.telemetry,
      log,
    },
    pruning: {
      strategy: config.pruning.strategy,
      keepRatio: config.pruning.keep_ratio,
      keepCount: config.pruning.keep_count,
      seed: config.pruning.seed,
      minKeepRatio: config.pruning.min_keep_ratio,
    },
    limits: {
      min: config.safety.action_min,
      max: config.safety.action_max,
      maxDeltaPerStep: config.safety.max_delta_per_step,
      allowBeyondModel: config.safety.allow_limits_beyond_model,
    },
    warmupRuns: config.backend.warmup_runs,
    ingest: ingestLimits(config),
    latencyBudgetMs: config.runtime.latency_budget_ms,
  };
}
