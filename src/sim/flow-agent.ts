import type { Frame } from '../ingest/index.js';
import type { FlowPolicy, FlowResult } from '../flow/policy.js';
import { InputError } from '../errors.js';
import { episodeSeed } from '../util/rng.js';
import type { RtcGuidance, RtcSchedule } from '../flow/rtc.js';
import type { Agent, PlanGuide } from './runner.js';
import type { TabletopSim } from './tabletop.js';
import type { Observation } from './tabletop.js';

/** Real-time chunking settings of a guided agent (Black et al. 2025; defaults: theirs). */
export interface GuidanceSettings {
  readonly schedule: RtcSchedule;
  /** beta: the clip of the guidance weight (5 in the paper). */
  readonly maxWeight: number;
}

export interface FlowAgentOptions {
  /** Seed of the per-request noise: request r of episode e uses episodeSeed(seed, e · 4096 + r). */
  readonly seed: number;
  /** Denoising steps per chunk (default: the policy's). */
  readonly steps?: number;
  /** Told every inference's result (timings, reused tokens). */
  readonly onResult?: (result: FlowResult) => void;
  /** Real-time chunking by guided inpainting in timed runs (TimingOptions.guided). */
  readonly guidance?: GuidanceSettings;
}

/**
 * The inpainting guidance for a chunk that must continue `guide.plan`: the plan's rows are the
 * target of the new chunk's first steps, the first `delaySteps` frozen, fading to nothing at
 * horizon − executeSteps (the paper's soft mask) or where the plan ends.
 */
export function planGuidance(
  guide: PlanGuide,
  horizon: number,
  actionDim: number,
  settings: GuidanceSettings,
): RtcGuidance {
  const rows = Math.min(horizon, Math.floor(guide.plan.length / actionDim));
  const target = new Float32Array(horizon * actionDim);
  target.set(guide.plan.subarray(0, rows * actionDim));
  const end = Math.min(rows, Math.max(1, horizon - guide.executeSteps));
  return {
    target,
    delay: Math.min(guide.delaySteps, end),
    end,
    schedule: settings.schedule,
    maxWeight: settings.maxWeight,
  };
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
  const { horizon, action_dim: actionDim } = policy.pkg.manifest.chunk;
  let episode = -1;
  let request = 0;
  const run = async (obs: Observation, sim: TabletopSim, guide?: PlanGuide) => {
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
      ...(guide === undefined || options.guidance === undefined || guide.plan.length === 0
        ? {}
        : { guidance: planGuidance(guide, horizon, actionDim, options.guidance) }),
    });
    options.onResult?.(result);
    return result.actions;
  };
  return {
    name: 'model',
    act: (obs, sim) => run(obs, sim),
    ...(options.guidance === undefined
      ? {}
      : {
          actGuided: (obs: Observation, sim: TabletopSim, guide: PlanGuide) => run(obs, sim, guide),
        }),
  };
}
