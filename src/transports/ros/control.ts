/**
 * The node's control loop on ROS: a timer on the node's ROS clock (so with use_sim_time the
 * control period follows /clock) runs {@link ControlLoop}, the loop the simulator runs, starts an
 * inference when the loop wants a chunk, and publishes what the robot receives: the command of
 * every period and the merged plan whenever a chunk changes it.
 */
import type { VlaConfig } from '../../config/index.js';
import type { Frame } from '../../ingest/index.js';
import type { ActionChunk, Observation } from '../../pipeline/pipeline.js';
import type { CameraFrame } from '../../pipeline/types.js';
import type { RunObserver } from '../../pipeline/observer.js';
import { keptOverlay } from '../../pruning/overlay.js';
import { ControlLoop, executorSettings } from '../../runtime/control-loop.js';
import type { ActionLimits } from '../../runtime/safety.js';
import type { RosLifecycleNode, RosLogger, RosTimer } from './api.js';
import type { NodePublishers } from './entities.js';
import {
  chunkMultiArray,
  commandMultiArray,
  jointTrajectory,
  msFromTime,
  rgbImage,
  timeFromMs,
  type RosHeader,
} from './messages.js';
import type { NodePipeline } from './node-pipeline.js';

/** A camera frame waiting in the node's latest-frame slot, with its header. */
export interface SlotFrame {
  readonly frame: Frame;
  readonly header: RosHeader;
  /** Every camera's frame of the inference, in the model's camera order (a model that sees several). */
  readonly cameras?: readonly CameraFrame[];
}

/** What the control loop reads from the node's inputs. */
export interface ControlInputs {
  /**
   * The latest frame of the model camera (the trigger camera of a several-camera model, with the
   * other cameras' latest frames), if each is fresh enough (taken out of the slot).
   */
  takeFrame(): SlotFrame | undefined;
  instruction(): string | undefined;
  /** The joint state in the manifest's order. */
  state(): Float64Array;
  /** The inputs that have not come yet: an instruction, joint states, camera frames. */
  missingInputs(): readonly string[];
  /** The model camera's name. */
  camera(): string;
}

/** What a control session runs with (fixed from activate to deactivate). */
export interface ControlSession {
  readonly pipeline: NodePipeline;
  readonly config: Readonly<VlaConfig>;
  readonly rate: number;
  readonly jointNames: readonly string[];
  readonly pub: NodePublishers;
}

/** The counters of the control loop, kept across activations. */
export interface ControlCounters {
  chunksPublished: number;
  chunksRejected: number;
  inferenceErrors: number;
  deadlineMisses: number;
  lastProcessingMs: number;
  keptTokenRatio: number;
}

/** The control loop of the node, started at activate (once the model is ready) and stopped at deactivate. */
export class RosControl {
  readonly counters: ControlCounters = {
    chunksPublished: 0,
    chunksRejected: 0,
    inferenceErrors: 0,
    deadlineMisses: 0,
    lastProcessingMs: 0,
    keptTokenRatio: 1,
  };
  /** The last inference failure (cleared by the next chunk). */
  lastError: string | undefined;
  readonly #node: RosLifecycleNode;
  readonly #inputs: ControlInputs;
  readonly #observer: RunObserver | undefined;
  readonly #log: () => RosLogger;
  #session: ControlSession | undefined;
  #loop: ControlLoop | undefined;
  #timer: RosTimer | undefined;
  #step = 0;
  #inflight: Promise<void> | undefined;
  #expectedDelaySteps = 1;
  /** Bumped by stop: results of older inferences are dropped. */
  #generation = 0;

  constructor(
    node: RosLifecycleNode,
    inputs: ControlInputs,
    log: () => RosLogger,
    observer?: RunObserver,
  ) {
    this.#node = node;
    this.#inputs = inputs;
    this.#log = log;
    this.#observer = observer;
  }

  /** The loop of the current or last session (its counters stay readable while holding). */
  get loop(): ControlLoop | undefined {
    return this.#loop;
  }
  /** The configuration of the running session, if one runs. */
  get config(): Readonly<VlaConfig> | undefined {
    return this.#session?.config;
  }
  /** Resolves when the inference in flight (if any) has finished and its chunk was handled. */
  async idle(): Promise<void> {
    await this.#inflight;
  }

  /** Start the control timer for a session (activate, or the model becoming ready while active). */
  start(session: ControlSession): void {
    const m = session.pipeline.model.manifest;
    const r = session.config.runtime;
    this.#loop = new ControlLoop({
      mode: r.merge_mode,
      horizon: m.chunk.horizon,
      actionDim: m.chunk.action_dim,
      executeSteps: r.execute_steps,
      executor: executorSettings(session.config, session.pipeline.actionLimits),
    });
    this.#session = session;
    this.#step = 0;
    // On the node's ROS clock: with use_sim_time the control period follows /clock.
    this.#timer = this.#node.createTimer(BigInt(Math.round(1e9 / session.rate)), () => {
      this.#onControl();
    });
  }

  /** Stop the timer (deactivate, cleanup): the robot holds; a chunk still in flight is dropped. */
  stop(): void {
    this.#generation++;
    if (this.#timer !== undefined) this.#node.destroyTimer(this.#timer);
    this.#timer = undefined;
    this.#session = undefined;
    this.#loop?.reset();
  }

  /** Forget the last session's loop (cleanup: a new model comes with a new loop). */
  forget(): void {
    this.#loop = undefined;
  }

  /** One control period: maybe start an inference, then send the loop's action. */
  #onControl(): void {
    const session = this.#session;
    const loop = this.#loop;
    if (session === undefined || loop === undefined) return;
    const now = this.#step++;
    const inputsIn = this.#inputs.missingInputs().length === 0;
    if (
      inputsIn &&
      loop.wantsChunk(now, this.#expectedDelaySteps) &&
      this.#inflight === undefined
    ) {
      const taken = this.#inputs.takeFrame();
      if (taken !== undefined) this.#infer(session, taken, now);
    }
    // Until every input has come, no chunk was due and no period is a miss: the loop's first
    // step (from which it counts misses) is the first period an inference could start.
    if (!loop.started && !inputsIn) return;
    const tick = loop.tick(now, this.#inputs.state(), this.#inflight !== undefined);
    if (tick.miss) this.counters.deadlineMisses++;
    // Before the first chunk the robot has nothing to follow: commands start with the first plan.
    if (loop.started) {
      session.pub.command.publish(commandMultiArray(tick.action));
      this.#observer?.onCommand?.(tick.action, tick.source === 'plan' ? 'plan' : 'safe');
    }
  }

  #infer(session: ControlSession, input: SlotFrame, obsStep: number): void {
    const generation = this.#generation;
    const camera = this.#inputs.camera();
    const observation: Observation = {
      frame: input.frame,
      ...(input.cameras === undefined ? {} : { cameras: input.cameras }),
      instruction: this.#inputs.instruction() ?? '',
      state: Float64Array.from(this.#inputs.state()),
      stamp: msFromTime(input.header.stamp),
      stream: camera,
    };
    // One inference at a time on the pipeline, across deactivate/activate too: a result of an
    // older activation is dropped, but the next inference waits for it to finish.
    this.#observer?.onFrame?.(observation.frame, observation.instruction, camera);
    const tracked: Promise<void> = session.pipeline
      .infer(observation)
      .then((chunk) => {
        if (generation === this.#generation) {
          this.#onChunk(session, chunk, input.header, obsStep);
          this.#observer?.onChunk?.(chunk, input.frame, session.pipeline.lastSelection);
        }
      })
      .catch((error: unknown) => {
        if (generation !== this.#generation) return;
        this.counters.inferenceErrors++;
        const text = error instanceof Error ? error.message : String(error);
        if (text !== this.lastError) this.#log().error(`inference failed: ${text}`);
        this.lastError = text;
      })
      .finally(() => {
        if (this.#inflight === tracked) this.#inflight = undefined;
      });
    this.#inflight = tracked;
  }

  #onChunk(session: ControlSession, chunk: ActionChunk, header: RosHeader, obsStep: number): void {
    const loop = this.#loop;
    if (loop === undefined) return;
    const { pipeline, pub, rate } = session;
    this.lastError = undefined;
    this.counters.lastProcessingMs = chunk.latencyMs;
    this.counters.keptTokenRatio =
      chunk.tokens.total === 0 ? 1 : chunk.tokens.kept / chunk.tokens.total;
    pub.processingTime.publish({ data: chunk.latencyMs });
    this.#expectedDelaySteps = Math.max(
      1,
      Math.ceil((pipeline.latency.total.summary().p95 / 1000) * rate),
    );
    const dim = chunk.actionDim;
    const problem = unpublishable(chunk.actions, dim, pipeline.actionLimits);
    if (problem !== undefined) {
      this.counters.chunksRejected++;
      this.#log().error(`chunk ${chunk.sequence} not published: ${problem}`);
      return;
    }
    // The chunk arrives during control period `now` (the next one to run).
    const now = this.#step;
    const stamped: RosHeader = { stamp: { ...header.stamp }, frame_id: header.frame_id };
    pub.raw.publish(chunkMultiArray(chunk.actions, chunk.horizon, dim));
    if (loop.accept(chunk.actions, obsStep, now)) {
      // The merged plan from `now` on. Its stamp follows the chunk convention (a point's time is
      // stamp + (i + 1) / rate for the action commanded i periods after the stamp): the frame's
      // stamp moved forward by the periods between the frame and `now` (in sync mode the plan
      // starts at `now` with the chunk's first action, so the frame's stamp stands).
      const offset = loop.mode === 'sync' ? 0 : (now - obsStep) / rate;
      const plan: RosHeader = {
        stamp: timeFromMs(msFromTime(header.stamp) + offset * 1000),
        frame_id: header.frame_id,
      };
      pub.trajectory.publish(
        jointTrajectory(plan, session.jointNames, loop.planFrom(now), dim, 1 / rate),
      );
    }
    this.counters.chunksPublished++;
    const selection = pipeline.lastSelection;
    if (pub.prunedImage !== undefined && selection !== undefined) {
      const { image, patch_grid } = pipeline.model.manifest;
      const overlay = keptOverlay(
        selection.rgb,
        image.width,
        image.height,
        patch_grid,
        selection.positions,
        selection.positions.length,
      );
      pub.prunedImage.publish(rgbImage(stamped, image.width, image.height, overlay));
    }
  }
}

/** Why a chunk must not be published (a NaN or a value out of limits), or undefined. */
export function unpublishable(
  actions: Float32Array,
  dim: number,
  limits: ActionLimits,
): string | undefined {
  for (let i = 0; i < actions.length; i++) {
    const v = actions[i] as number;
    const d = i % dim;
    const lo = limits.min[d] ?? -Infinity;
    const hi = limits.max[d] ?? Infinity;
    if (!Number.isFinite(v) || v < lo || v > hi) {
      return `step ${Math.floor(i / dim)} dimension ${d} is ${v}, expected a finite value in [${lo}, ${hi}]`;
    }
  }
  return undefined;
}
