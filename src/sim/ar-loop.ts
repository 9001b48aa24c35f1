/**
 * Closed-loop episodes of an autoregressive package on the tabletop, decoded greedily (every exact
 * strategy gives the same chunks): what the compression gate scores a variant of this family by.
 */
import { syncExecuteSteps } from '../runtime/control-loop.js';
import { performance } from 'node:perf_hooks';
import type { VlaConfig } from '../config/index.js';
import { FrameIngest } from '../ingest/ingest.js';
import type { Precision } from '../model/manifest.js';
import { ArPolicy } from '../policy/autoregressive/policy.js';
import { median } from '../util/stats.js';
import { runEpisodes, type Agent } from './runner.js';

/** Success rate and the p50 time per chunk (encoder, prefill and decoding), ms. */
export interface ArClosedLoop {
  readonly rate: number;
  readonly chunkMs: number;
}

/**
 * Runs `run.episodes` episodes of the package in `dir` at `precision`, with the simulator settings
 * of `config` (`sim.*`; `runtime.execute_steps`, 0 = half the horizon, as `sim` does).
 */
export async function arClosedLoop(
  dir: string,
  precision: Precision,
  run: { readonly episodes: number; readonly seed: number },
  config: Readonly<VlaConfig>,
): Promise<ArClosedLoop> {
  const policy = await ArPolicy.load(
    dir,
    { intraOpNumThreads: 1, interOpNumThreads: 1 },
    { precision },
  );
  try {
    const { image, normalisation, horizon } = policy.pkg;
    const ingest = new FrameIngest({ width: image.width, height: image.height, ...normalisation });
    const pixels = new Float32Array(3 * image.width * image.height);
    const times: number[] = [];
    const agent: Agent = {
      name: `${policy.pkg.name} ${precision}`,
      act: async (obs) => {
        const rgb = await ingest.toRgb(obs.image);
        ingest.normalise(rgb, pixels);
        const start = performance.now();
        const r = await policy.act(
          { pixels, rgb, instruction: obs.instruction, state: obs.state },
          { strategy: 'greedy' },
        );
        times.push(performance.now() - start);
        return r.actions;
      },
    };
    const summary = await runEpisodes(agent, {
      episodes: run.episodes,
      seed: run.seed,
      executeSteps: syncExecuteSteps(config.runtime.execute_steps, horizon),
      maxSteps: config.sim.max_steps,
      cameraWidth: config.sim.camera_width,
      cameraHeight: config.sim.camera_height,
    });
    return { rate: summary.success_rate, chunkMs: median(times) };
  } finally {
    await policy.close();
  }
}
