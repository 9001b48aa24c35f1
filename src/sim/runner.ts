import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from '../runtime/latency.js';
import type { CommandSource, ObservedScene, RunObserver } from '../pipeline/observer.js';
import { ControlLoop, type ControlTick } from '../runtime/control-loop.js';
import type { ExecutorOptions, MergeMode } from '../runtime/executor.js';
import type { ActionLimits } from '../runtime/safety.js';
import { expertChunk } from './expert.js';
import { episodeSeed, Rng } from '../util/rng.js';
import { TabletopSim, type Observation } from './tabletop.js';
import { EpisodeTally, type EpisodesSummary } from './tally.js';
import { COLOURS, distance, WORLD, type TaskKind } from './world.js';

/** Something that turns an observation into an action chunk (horizon × 2 absolute targets). */
export interface Agent {
  readonly name: string;
  act(obs: Observation, sim: TabletopSim): Promise<Float32Array>;
  /**
   * Real-time chunking by guided inpainting (flow policies): the chunk is denoised towards the
   * actions already planned. Used instead of `act` in timed runs with `timing.guided`.
   */
  actGuided?(obs: Observation, sim: TabletopSim, guide: PlanGuide): Promise<Float32Array>;
}

/** What a guided chunk request knows of the plan it must continue. */
export interface PlanGuide {
  /** The current plan from the observation's step on (rows of 2), possibly shorter than a chunk. */
  readonly plan: Float32Array;
  /** Expected inference delay in control steps: these actions will run before the chunk arrives. */
  readonly delaySteps: number;
  /** Actions executed from each chunk before the next request (the paper's s). */
  readonly executeSteps: number;
}

export interface EpisodeOptions {
  readonly episodes: number;
  readonly seed: number;
  /** Actions executed from each chunk before the agent is asked again. */
  readonly executeSteps: number;
  readonly maxSteps: number;
  readonly cameraWidth: number;
  readonly cameraHeight: number;
  readonly taskKind?: TaskKind | undefined;
  /** Run on a control-step clock with inference delays (absent: synchronous, no delay). */
  readonly timing?: TimingOptions | undefined;
  /** Limits of the actions sent without `timing` (with it: `timing.executor.limits`); none if absent. */
  readonly limits?: ActionLimits | undefined;
  readonly onEpisode?: (result: EpisodeResult, index: number) => void;
  /** Keep every result in the summary (default false: a long run stays in constant memory). */
  readonly keepResults?: boolean;
  /** Timed runs only: every action sent to the robot, and whether it was the watchdog's. */
  readonly onAction?: (action: Float32Array, source: 'plan' | 'safe') => void;
  /**
   * Told every action sent (in sync mode a hold while waiting for a chunk counts as `safe`) and
   * the scene after it: a live view.
   */
  readonly observer?: Pick<RunObserver, 'onCommand' | 'onScene'> | undefined;
  /** Run each control step in wall-clock time at this rate, to be watched; absent: at once. */
  readonly paceHz?: number | undefined;
}

/**
 * Timed execution: the episode runs on a clock of control steps; each inference takes its real
 * duration plus an injected delay (uniform jitter, seeded), rounded up to whole steps.
 */
export interface TimingOptions {
  /** `sync`: the robot holds still while it waits for each chunk; otherwise the executor's merge mode, with inference running while the robot moves. */
  readonly mode: 'sync' | MergeMode;
  readonly controlRateHz: number;
  /** Actions per chunk the agent returns. */
  readonly horizon: number;
  readonly injectDelayMs: number;
  readonly injectJitterMs: number;
  /** Per control step, the probability that the camera stalls (keeps delivering its last frame). */
  readonly stallProbability: number;
  readonly stallSteps: number;
  /** Frames older than this are rejected (no inference on them). */
  readonly maxFrameAgeMs: number;
  /** Executor settings other than the merge mode and the chunk shape. */
  readonly executor: Omit<ExecutorOptions, 'mergeMode' | 'horizon' | 'actionDim'>;
  /**
   * Ask agents that can (Agent.actGuided) for chunks inpainted to continue the plan (real-time
   * chunking as Black et al. 2025 do it); use with mode `replace`, the chunk already agrees.
   */
  readonly guided?: boolean;
}

export interface EpisodeResult {
  readonly seed: number;
  readonly instruction: string;
  readonly task: TaskKind;
  readonly success: boolean;
  readonly steps: number;
  /** Distance from the goal at the end (table units). */
  readonly finalDistance: number;
  /** Timed runs only: steps the robot held still (waiting for a chunk or safe hold). */
  readonly idleSteps?: number;
  /** Timed runs only: control periods not covered by a fresh chunk (ChunkExecutor.deadlineMisses). */
  readonly deadlineMisses?: number;
  readonly safeHoldSteps?: number;
  readonly staleFrames?: number;
  /** Timed runs only: inferences that failed (no chunk). */
  readonly inferenceErrors?: number;
  /** Timed runs only: mean absolute change of the action between control steps. */
  readonly smoothness?: number;
  /** Timed runs only: the largest change of the action (max over dimensions) on a step where a new chunk took over. */
  readonly boundaryJump?: number;
}

export type { EpisodesSummary, EpisodeTotals } from './tally.js';

/**
 * Run closed-loop episodes: observe, ask the agent for a chunk, execute `executeSteps` of it,
 * repeat until success or `maxSteps`. Episode i uses the seed episodeSeed(seed, i), so the same
 * seed gives the same scenes for every agent.
 */
export async function runEpisodes(agent: Agent, options: EpisodeOptions): Promise<EpisodesSummary> {
  const tally = new EpisodeTally(options.keepResults === true);
  // Measured inference delays (real + injected) of this run: the re-query point uses their p95.
  const delays = new LatencyHistogram();
  for (let i = 0; i < options.episodes; i++) {
    const seed = episodeSeed(options.seed, i);
    const sim = new TabletopSim({
      seed,
      cameraWidth: options.cameraWidth,
      cameraHeight: options.cameraHeight,
      maxSteps: options.maxSteps,
      ...(options.taskKind === undefined ? {} : { taskKind: options.taskKind }),
    });
    const step = stepper(sim, options);
    const timed =
      options.timing === undefined
        ? {}
        : await runTimed(agent, sim, options, options.timing, seed, delays, step);
    if (options.timing === undefined) await runUntimed(agent, sim, options, step);
    const result: EpisodeResult = {
      seed,
      instruction: sim.scene.task.instruction,
      task: sim.scene.task.kind,
      success: sim.success,
      steps: sim.steps,
      finalDistance: distance(sim.effector, sim.scene.task.goal),
      ...timed,
    };
    tally.add(result);
    options.onEpisode?.(result, i);
  }
  return tally.summary();
}

/** Applies one action to the simulator; resolves to whether the episode is over. */
type Step = (action: ArrayLike<number>, source: CommandSource) => boolean | Promise<boolean>;

/**
 * `sim.step` plus what the options ask for around it: the observer hears the action and sees the
 * scene, and a paced run waits for the next control period (on a schedule, so a slow step is made
 * up by the next ones rather than adding up).
 */
function stepper(sim: TabletopSim, options: EpisodeOptions): Step {
  const observer = options.observer;
  const pace = options.paceHz;
  if (observer === undefined && pace === undefined) return (action) => sim.step(action);
  // One scene object per episode; the effector is read when the observer reads it.
  const scene: ObservedScene = {
    get effector() {
      return sim.effector;
    },
    target: sim.scene.task.goal,
    blocks: sim.scene.blocks.map((b) => ({
      colour: b.colour,
      rgb: COLOURS[b.colour],
      centre: b.centre,
    })),
    blockHalfSize: WORLD.blockHalfSize,
    effectorRadius: WORLD.effectorRadius,
  };
  observer?.onScene?.(scene);
  const periodMs = pace === undefined ? 0 : 1000 / pace;
  let next = performance.now();
  return async (action, source) => {
    observer?.onCommand?.(action, source);
    const over = sim.step(action);
    observer?.onScene?.(scene);
    if (pace !== undefined) {
      next += periodMs;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else next = performance.now();
    }
    return over;
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

/**
 * The plain synchronous loop: no delay, a fresh chunk whenever the last one's `executeSteps`
 * actions are used up. It runs on the same control loop as the timed runs and the ROS node.
 */
async function runUntimed(
  agent: Agent,
  sim: TabletopSim,
  options: EpisodeOptions,
  step: Step,
): Promise<void> {
  let loop: ControlLoop | undefined;
  for (let t = 0; !sim.done; t++) {
    const current = [sim.effector.x, sim.effector.y];
    if (loop === undefined || loop.wantsChunk(t, 0)) {
      const chunk = await agent.act(sim.observe(), sim);
      loop ??= new ControlLoop({
        mode: 'sync',
        horizon: Math.floor(chunk.length / 2),
        actionDim: 2,
        executeSteps: options.executeSteps,
        executor: {
          ensembleDecay: 0,
          rtcDecaySteps: 1,
          marginSteps: 0,
          safeAction: 'hold',
          limits: options.limits ?? { min: [], max: [], maxDeltaPerStep: 0 },
        },
      });
      loop.accept(chunk, t, t);
    }
    const tick = loop.tick(t, current);
    await step(tick.action, tick.source === 'plan' ? 'plan' : 'safe');
  }
}

async function runTimed(
  agent: Agent,
  sim: TabletopSim,
  options: EpisodeOptions,
  timing: TimingOptions,
  seed: number,
  observedDelays: LatencyHistogram,
  step: Step,
): Promise<Partial<EpisodeResult>> {
  const periodMs = 1000 / timing.controlRateHz;
  const rng = new Rng(seed ^ 0x3c6ef372);
  const loop = new ControlLoop({
    mode: timing.mode,
    horizon: timing.horizon,
    actionDim: 2,
    executeSteps: options.executeSteps,
    executor: timing.executor,
  });
  // The largest change, where a new chunk takes over, from the last action sent to the merged
  // plan's action for that step (before the safety limiter, which would hide the jump).
  let boundaryJump = 0;
  const previous = new Float32Array(2).fill(Number.NaN);
  const tookOver = (now: number): void => {
    const plan = loop.planFrom(now);
    if (plan.length < 2 || !Number.isFinite(previous[0])) return;
    for (let d = 0; d < 2; d++) {
      const jump = Math.abs((plan[d] as number) - (previous[d] as number));
      if (jump > boundaryJump) boundaryJump = jump;
    }
  };
  const apply = async (tick: ControlTick): Promise<boolean> => {
    if (tick.source !== 'plan') idle++;
    previous.set(tick.action.subarray(0, 2));
    options.onAction?.(tick.action, tick.source === 'safe' ? 'safe' : 'plan');
    return step(tick.action, tick.source === 'plan' ? 'plan' : 'safe');
  };
  let inflight: { chunk: Float32Array | undefined; obsStep: number; arrival: number } | undefined;
  let frozen: { obs: ReturnType<TabletopSim['observe']>; capturedAt: number } | undefined;
  let stallLeft = 0;
  let idle = 0;
  let stale = 0;
  let errors = 0;
  const delaySteps = async (
    obs: ReturnType<TabletopSim['observe']>,
    guide?: PlanGuide,
  ): Promise<{ chunk: Float32Array | undefined; steps: number }> => {
    const t0 = performance.now();
    let chunk: Float32Array | undefined;
    try {
      chunk = (
        guide !== undefined && agent.actGuided !== undefined
          ? await agent.actGuided(obs, sim, guide)
          : await agent.act(obs, sim)
      ).slice();
    } catch {
      // A failed inference (bad frame, runtime error, rejected NaN chunk) yields no chunk: the
      // executor keeps to its plan or holds, and the next query retries.
      errors++;
    }
    const real = performance.now() - t0;
    const injected = Math.max(
      0,
      timing.injectDelayMs + (rng.next() * 2 - 1) * timing.injectJitterMs,
    );
    observedDelays.record(real + injected);
    return { chunk, steps: Math.max(1, Math.ceil((real + injected) / periodMs)) };
  };
  for (let t = 0; !sim.done; t++) {
    // The camera: a fresh frame each step unless it is stalled.
    if (stallLeft === 0 && rng.next() < timing.stallProbability) stallLeft = timing.stallSteps;
    let capture: { obs: ReturnType<TabletopSim['observe']>; capturedAt: number };
    if (stallLeft > 0 && frozen !== undefined) {
      stallLeft--;
      capture = frozen;
    } else {
      capture = { obs: sim.observe(), capturedAt: t };
      // observe() reuses its image buffer: keep a copy for a stalled camera to repeat.
      frozen = {
        obs: {
          ...capture.obs,
          image: { ...capture.obs.image, data: capture.obs.image.data.slice() },
        },
        capturedAt: t,
      };
      if (stallLeft > 0) stallLeft--;
    }
    const fresh = (t - capture.capturedAt) * periodMs <= timing.maxFrameAgeMs;
    if (timing.mode === 'sync') {
      if (loop.wantsChunk(t, 0)) {
        if (!fresh) {
          stale++;
          await apply(loop.tick(t, [sim.effector.x, sim.effector.y], true));
          continue;
        }
        const { chunk, steps } = await delaySteps(capture.obs);
        // The robot holds still while it waits, then runs the chunk from its first action.
        let over = false;
        for (let k = 0; k < steps && !over; k++) {
          over = await apply(loop.tick(t + k, [sim.effector.x, sim.effector.y], true));
        }
        if (over) break;
        t += steps;
        if (chunk === undefined) continue;
        if (loop.accept(chunk, t, t)) tookOver(t);
      }
    } else {
      if (inflight !== undefined && t >= inflight.arrival) {
        if (inflight.chunk !== undefined && loop.accept(inflight.chunk, inflight.obsStep, t)) {
          tookOver(t);
        }
        inflight = undefined;
      }
      const expected = Math.ceil(
        (observedDelays.count === 0 ? periodMs : observedDelays.summary().p95) / periodMs,
      );
      if (inflight === undefined && loop.wantsChunk(t, expected)) {
        if (fresh) {
          const guide =
            timing.guided === true && loop.started
              ? {
                  plan: loop.planFrom(capture.capturedAt).slice(),
                  delaySteps: expected + (t - capture.capturedAt),
                  executeSteps: options.executeSteps,
                }
              : undefined;
          const { chunk, steps } = await delaySteps(capture.obs, guide);
          inflight = { chunk, obsStep: capture.capturedAt, arrival: t + steps };
        } else {
          stale++;
        }
      }
    }
    await apply(loop.tick(t, [sim.effector.x, sim.effector.y]));
  }
  return {
    idleSteps: idle,
    deadlineMisses: loop.deadlineMisses,
    safeHoldSteps: loop.safeHoldSteps,
    staleFrames: stale,
    inferenceErrors: errors,
    smoothness: loop.smoothness,
    boundaryJump,
  };
}
