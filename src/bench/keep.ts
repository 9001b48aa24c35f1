import type { ModelPackage } from '../model/manifest.js';
import { VlaPipeline, type PipelineOptions } from '../pipeline/pipeline.js';
import type { PruningStrategy } from '../pruning/pruner.js';
import type { BenchObservation } from './frames.js';

/** Latency at one keep ratio (open loop, on benchmark observations). */
export interface KeepRatioLatency {
  readonly keep_ratio: number;
  readonly tokens_kept: number;
  readonly end_to_end_ms: { readonly p50: number; readonly p95: number };
  readonly policy_ms: { readonly p50: number; readonly p95: number };
}

/**
 * Frame → chunk latency of the node for each keep ratio with `strategy`, on `observations`
 * (open loop: for models whose success cannot be measured, such as random weights).
 */
export async function measureKeepRatios(
  model: ModelPackage,
  options: PipelineOptions,
  observations: readonly BenchObservation[],
  ratios: readonly number[],
  strategy: PruningStrategy,
): Promise<KeepRatioLatency[]> {
  const out: KeepRatioLatency[] = [];
  for (const ratio of ratios) {
    const pipeline = await VlaPipeline.create(model, {
      ...options,
      pruning: {
        ...options.pruning,
        strategy: ratio === 1 ? 'none' : strategy,
        keepRatio: ratio,
        keepCount: 0,
      },
      latencyBudgetMs: 0,
    });
    try {
      for (const o of observations)
        await pipeline.infer({ frame: o.frame, instruction: o.instruction, state: o.state });
      const total = pipeline.latency.total.summary();
      const policy = pipeline.latency.stages.policy.summary();
      out.push({
        keep_ratio: ratio,
        tokens_kept: pipeline.tokenBudget,
        end_to_end_ms: { p50: total.p50, p95: total.p95 },
        policy_ms: { p50: policy.p50, p95: policy.p95 },
      });
    } finally {
      await pipeline.release();
    }
  }
  return out;
}
