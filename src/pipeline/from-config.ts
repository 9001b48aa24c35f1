/**
 * From the validated configuration to the core's objects: the model package (checked against the
 * parameters) and the pipeline's options. Shared by every front end (CLI commands, the ROS node,
 * the simulator's experiments, library users).
 */
import {
  checkConfigForModel,
  limitsRequest,
  resolvePackagePath,
  type VlaConfig,
} from '../config/index.js';
import { ingestLimits } from '../ingest/index.js';
import { loadModelPackage, type ModelPackage } from '../model/manifest.js';
import type { PipelineOptions } from './pipeline.js';

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
    limits: limitsRequest(config),
    warmupRuns: config.backend.warmup_runs,
    ingest: ingestLimits(config),
    latencyBudgetMs: config.runtime.latency_budget_ms,
  };
}
