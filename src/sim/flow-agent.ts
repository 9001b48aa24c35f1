import type { Frame } from '../ingest/index.js';
import type { FlowPolicy, FlowResult } from '../flow/policy.js';
import { InputError } from '../errors.js';
import { episodeSeed } from '../util/rng.js';
import type { Agent } from './runner.js';
import type { TabletopSim } from './tabletop.js';
import type { Observation } from './tabletop.js';

export interface FlowAgentOptions {
  /** Seed of the per-request noise: request r of episode e uses episodeSeed(seed, e · 4096 + r). */
  readonly seed: number;
  /** Denoising steps per chunk (default: the policy's). */
  readonly steps?: number;
  /** Told every inference's result (timings, reused tokens). */
  readonly onResult?: (result: FlowResult) => void;
}

/** The simulator's frame for each camera the model names: `table` (the tabletop view) or `wrist`. */
export function simCameraFrames(
  names: readonly string[],
  obs: Observation,
  sim: TabletopSim,
): Frame[] {
  return names.map((name, i) => {
    if (name === 'table') return obs.image;
    if (name === 'wrist') return sim.wristImage();
    throw new InputError(
      `Expected the model's cameras to be table|wrist (what the simulator renders) but received ${JSON.stringify(name)}`,
      { field: `manifest.cameras[${i}].name` },
    );
  });
}

/**
 * A simulator agent running a flow-matching policy on both of the simulator's cameras. The noise
 * of each request is seeded from the episode and the request's index, so a run is reproducible;
 * caches of earlier frames are dropped at each new episode (the instruction's keys/values are kept:
 * they depend on the instruction only).
 */
export function flowAgent(policy: FlowPolicy, options: FlowAgentOptions): Agent {
  const names = policy.pkg.manifest.cameras.map((c) => c.name);
  let episode = -1;
  let request = 0;
  return {
    name: 'model',
    act: async (obs, sim) => {
      if (obs.step === 0 && request > 0) {
        policy.resetFrames();
        request = 0;
      }
      if (request === 0) episode++;
      const result = await policy.infer({
        images: simCameraFrames(names, obs, sim),
        instruction: obs.instruction,
        state: obs.state,
        seed: episodeSeed(options.seed, episode * 4096 + request++),
        ...(options.steps === undefined ? {} : { steps: options.steps }),
      });
      options.onResult?.(result);
      return result.actions;
    },
  };
}
