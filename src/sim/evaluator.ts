/**
 * The compression gate's evaluator for models of the built-in tabletop task: held-out frames and
 * closed-loop episodes of the simulator (what `vla-node compress` uses for the shipped models).
 */
import { loadConfig, type VlaConfig } from '../config/index.js';
import { isArPackage } from '../model/ar-manifest.js';
import type { Precision } from '../model/manifest.js';
import { arClosedLoop } from './ar-loop.js';
import { simulate } from './experiment.js';
import { simulatorSamples, type SimSample } from './samples.js';

/** The tabletop's held-out observations and closed loop (structurally a `CompressionEvaluator`). */
export interface TabletopEvaluator {
  heldOut(count: number, seed: number, cameras?: readonly string[]): SimSample[];
  closedLoop(
    dir: string,
    precision: Precision,
    run: { readonly episodes: number; readonly seed: number },
  ): Promise<{ rate: number; stages: { encode: number; policy: number } }>;
}

/**
 * The parameters of the gate's closed loop: the shipped ones, but the package in `dir` at
 * `precision` on the CPU provider, every visual token kept, `run`'s episodes and seed.
 */
export function gateConfig(
  dir: string,
  precision: Precision,
  run: { readonly episodes: number; readonly seed: number },
): Promise<VlaConfig> {
  return loadConfig({
    overrides: {
      'model.path': dir,
      'model.precision': precision,
      'sim.episodes': run.episodes,
      'sim.seed': run.seed,
      'pruning.strategy': 'none',
      'backend.execution_providers': ['cpu'],
    },
  });
}

/**
 * Score a package on the tabletop: held-out frames one every 3 steps of expert-driven episodes,
 * and `sim` episodes on the CPU provider without pruning (the shipped parameters otherwise); an
 * autoregressive package's episodes are decoded greedily by `ArPolicy` (src/sim/ar-loop.ts).
 */
export function tabletopEvaluator(): TabletopEvaluator {
  return {
    heldOut: (count, seed, cameras) => simulatorSamples(count, seed, 3, cameras),
    async closedLoop(dir, precision, run) {
      if (await isArPackage(dir)) {
        // An autoregressive package: greedy decoding, the chunk's time as the policy stage.
        const r = await arClosedLoop(dir, precision, run, await loadConfig());
        return { rate: r.rate, stages: { encode: Number.NaN, policy: r.chunkMs } };
      }
      const config = await gateConfig(dir, precision, run);
      const report = await simulate(config, 'model', () => undefined);
      const p = report.stage_percentiles_ms ?? {};
      return {
        rate: report.success_rate,
        stages: { encode: p.encode?.p50 ?? Number.NaN, policy: p.policy?.p50 ?? Number.NaN },
      };
    },
  };
}
