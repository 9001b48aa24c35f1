import { expertChunk } from './expert.js';
import { episodeSeed } from './rng.js';
import { TabletopSim, type Observation } from './tabletop.js';
import { distance, TASK_KINDS, type TaskKind } from './world.js';

/** Something that turns an observation into an action chunk (horizon × 2 absolute targets). */
export interface Agent {
  readonly name: string;
  act(obs: Observation, sim: TabletopSim): Promise<Float32Array>;
}

export interface EpisodeOptions {
  readonly episodes: number;
  readonly seed: number;
  /** Actions executed from each chunk before the agent is asked again. */
  readonly executeSteps: number;
  readonly maxSteps: number;
  readonly cameraWidth: number;
  readonly cameraHeight: number;
  readonly taskKind?: TaskKind;
  readonly onEpisode?: (result: EpisodeResult, index: number) => void;
}

export interface EpisodeResult {
  readonly seed: number;
  readonly instruction: string;
  readonly task: TaskKind;
  readonly success: boolean;
  readonly steps: number;
  /** Distance from the goal at the end (table units). */
  readonly finalDistance: number;
}

export interface EpisodesSummary {
  readonly episodes: number;
  readonly successes: number;
  readonly success_rate: number;
  readonly by_task: Record<TaskKind, { readonly episodes: number; readonly success_rate: number }>;
  readonly mean_steps: number;
  readonly results: readonly EpisodeResult[];
}

/**
 * Run closed-loop episodes: observe, ask the agent for a chunk, execute `executeSteps` of it,
 * repeat until success or `maxSteps`. Episode i uses the seed episodeSeed(seed, i), so the same
 * seed gives the same scenes for every agent.
 */
export async function runEpisodes(agent: Agent, options: EpisodeOptions): Promise<EpisodesSummary> {
  const results: EpisodeResult[] = [];
  for (let i = 0; i < options.episodes; i++) {
    const seed = episodeSeed(options.seed, i);
    const sim = new TabletopSim({
      seed,
      cameraWidth: options.cameraWidth,
      cameraHeight: options.cameraHeight,
      maxSteps: options.maxSteps,
      ...(options.taskKind === undefined ? {} : { taskKind: options.taskKind }),
    });
    while (!sim.done) {
      const chunk = await agent.act(sim.observe(), sim);
      const steps = Math.min(options.executeSteps, chunk.length / 2);
      for (let k = 0; k < steps; k++) if (sim.step(chunk.subarray(2 * k, 2 * k + 2))) break;
    }
    const result: EpisodeResult = {
      seed,
      instruction: sim.scene.task.instruction,
      task: sim.scene.task.kind,
      success: sim.success,
      steps: sim.steps,
      finalDistance: distance(sim.effector, sim.scene.task.goal),
    };
    results.push(result);
    options.onEpisode?.(result, i);
  }
  const successes = results.filter((r) => r.success).length;
  const byTask = Object.fromEntries(
    TASK_KINDS.map((kind) => {
      const rs = results.filter((r) => r.task === kind);
      return [
        kind,
        {
          episodes: rs.length,
          success_rate: rs.length === 0 ? 0 : rs.filter((r) => r.success).length / rs.length,
        },
      ];
    }),
  ) as EpisodesSummary['by_task'];
  return {
    episodes: results.length,
    successes,
    success_rate: results.length === 0 ? 0 : successes / results.length,
    by_task: byTask,
    mean_steps: results.reduce((s, r) => s + r.steps, 0) / Math.max(1, results.length),
    results,
  };
}

/** The scripted expert (privileged: knows the goal). */
export function expertAgent(horizon: number): Agent {
  const chunk = new Float32Array(horizon * 2);
  return {
    name: 'expert',
    act: (_obs, sim) => {
      expertChunk(sim.effector, sim.scene.task.goal, horizon, chunk);
      return Promise.resolve(chunk);
    },
  };
}

/**
 * A language-blind baseline: sees every block perfectly but not the instruction, and goes to the
 * nearest block. It bounds what ignoring language can achieve.
 */
export function blindAgent(horizon: number): Agent {
  const chunk = new Float32Array(horizon * 2);
  return {
    name: 'blind',
    act: (_obs, sim) => {
      const here = sim.effector;
      const nearest = sim.scene.blocks.reduce((a, b) =>
        distance(b.centre, here) < distance(a.centre, here) ? b : a,
      );
      expertChunk(here, nearest.centre, horizon, chunk);
      return Promise.resolve(chunk);
    },
  };
}

/** The minimal surface of the pipeline an agent needs (keeps the simulator free of the backend). */
export interface ChunkSource {
  infer(obs: {
    frame: Observation['image'];
    instruction: string;
    state: ArrayLike<number>;
  }): Promise<{ readonly actions: Float32Array }>;
}

/** An agent backed by the VLA pipeline: camera frame, instruction and state in, action chunk out. */
export function pipelineAgent(pipeline: ChunkSource): Agent {
  return {
    name: 'model',
    act: async (obs) =>
      (await pipeline.infer({ frame: obs.image, instruction: obs.instruction, state: obs.state }))
        .actions,
  };
}
