/**
 * The vla-node ROS 2 node: a managed (lifecycle) node that feeds the latest camera frame, the
 * instruction and the joint state to the pipeline, executes the action chunks on a control-rate
 * timer and publishes them. It is written against {@link RosApi}, so it runs on rclnodejs or on
 * the tests' in-memory double.
 *
 * Topics (private, remapped in launch files):
 * - in: `~/in/<camera>` (sensor_msgs/Image) or `~/in/<camera>/compressed`
 *   (sensor_msgs/CompressedImage), `~/in/instruction` (std_msgs/String, transient local),
 *   `~/in/joint_states` (sensor_msgs/JointState)
 * - out: `~/out/action_chunk` (trajectory_msgs/JointTrajectory: the merged plan the robot
 *   executes, whenever it changes, for joint_trajectory_controller), `~/out/command`
 *   (std_msgs/Float64MultiArray: the action of each control period, safe holds included, for
 *   forward_command_controller), `~/out/action_chunk_raw` (std_msgs/Float32MultiArray: the
 *   model's raw chunk, horizon × action_dim), `/diagnostics`, `~/debug/processing_time_ms`
 *   (std_msgs/Float64), `~/debug/pruned_image` (optional)
 *
 * The control loop is {@link ControlLoop}, the one the simulator runs: what the robot receives
 * each period is the executor's merged, limited, watchdog-checked action in every merge mode.
 */
import type * as rcl from 'rclnodejs';
import { configuredControlRate, type VlaConfig } from '../../config/index.js';
import { printable } from '../../errors.js';
import type { RunObserver } from '../../pipeline/observer.js';
import { LatestFrameSlot } from '../../runtime/budget.js';
import { CALLBACK_RETURN, type RosApi, type RosLifecycleNode } from './api.js';
import {
  CameraFrames,
  cameraPlan,
  packageCameraNames,
  type CameraCounts,
  type CameraPlan,
} from './cameras.js';
import { RosControl, type SlotFrame } from './control.js';
import { missingInputs, nodeDiagnostics, type RosNodeStats } from './diagnostics.js';
import { NodeEntities } from './entities.js';
import type { NodePipeline, PipelineFactory } from './node-pipeline.js';
import { StateJoints } from './joint-state.js';
import {
  compressedProblem,
  imageProblem,
  type InputProblem,
  InputProblemLog,
  instructionProblem,
} from './input.js';
import {
  frameFromCompressed,
  frameFromImage,
  type RosCompressedImage,
  type RosDiagnosticArray,
  type RosHeader,
  type RosImage,
  type RosJointState,
  type RosString,
} from './messages.js';
import {
  rosNodeOptions,
  rosNodeOptionsFromConfig,
  type RosNodeOptions,
  type RosNodeOptionsInput,
} from './options.js';
import { declareParameters, validateChange } from './params.js';

export { unpublishable } from './control.js';
export type { NodeDecoding, RosNodeStats } from './diagnostics.js';
export type { NodePipeline, PipelineFactory } from './node-pipeline.js';

export interface VlaRosNodeOptions {
  readonly ros: RosApi;
  /** The validated parameter file: the defaults of the declared parameters. */
  readonly config: Readonly<VlaConfig>;
  readonly createPipeline: PipelineFactory;
  /** Options that replace the `ros.*` parameters (tests); the parameters hold every default. */
  readonly options?: RosNodeOptionsInput;
  readonly nodeName?: string;
  readonly namespace?: string;
  /** Wall clock in ms (frame ages, diagnostics stamps); `Date.now` by default. */
  readonly clock?: () => number;
  /** Told each frame inferred on, each chunk accepted and each action of the control loop (a live view). */
  readonly observer?: RunObserver;
  /**
   * The camera names of the configured package when it sees several, read at configure (before
   * the model loads) to subscribe their topics; {@link packageCameraNames} by default.
   */
  readonly packageCameras?: (config: Readonly<VlaConfig>) => readonly string[] | undefined;
}

/** The managed vla-node ROS 2 node. */
export class VlaRosNode {
  readonly node: RosLifecycleNode;
  readonly #fixedOptions: RosNodeOptionsInput;
  /** The options the topics were created with (fixed between configure and cleanup). */
  #entityOptions: RosNodeOptions | undefined;
  #entities: NodeEntities | undefined;
  #releasing: Promise<void> = Promise.resolve();
  readonly #ros: RosApi;
  readonly #createPipeline: PipelineFactory;
  readonly #packageCameras: (config: Readonly<VlaConfig>) => readonly string[] | undefined;
  /** The cameras of the current configure: topics, trigger camera, the others' latest frames. */
  #cameras: CameraFrames | undefined;
  readonly #clock: () => number;
  readonly #control: RosControl;
  #config: Readonly<VlaConfig>;
  /** The configuration of the last configure or activate (the rate of the diagnostics thresholds). */
  #active: Readonly<VlaConfig> | undefined;
  #pipeline: NodePipeline | undefined;
  #loading: Promise<void> | undefined;
  #loadError: string | undefined;
  #configured = false;
  #isActive = false;
  /** Bumped by configure/cleanup: a model load of an older configure is released. */
  #loadGeneration = 0;
  #slot: LatestFrameSlot<SlotFrame> = new LatestFrameSlot(0);
  #instruction: string | undefined;
  /** The state joints of the loaded model (none before a load). */
  #joints = new StateJoints([]);
  #framesReceived = 0;
  /** Bad input is dropped with at most one warning per kind per 5 s. */
  readonly #inputProblems = new InputProblemLog(
    INPUT_WARNING_PERIOD_MS,
    (line) => {
      this.#log().warn(line);
    },
    () => this.#clock(),
  );

  /**
   * Create the lifecycle node (unconfigured), declare its parameters and register the transition
   * callbacks. With `autoActivate`, call {@link VlaRosNode.autoActivate} after `spin`.
   */
  constructor(o: VlaRosNodeOptions) {
    this.#ros = o.ros;
    this.#createPipeline = o.createPipeline;
    this.#packageCameras = o.packageCameras ?? packageCameraNames;
    this.#clock = o.clock ?? Date.now;
    this.#fixedOptions = o.options ?? {};
    this.node = new o.ros.lifecycle.LifecycleNode(
      o.nodeName ?? 'vla_node',
      o.namespace ?? '',
      undefined,
      undefined,
      true,
    );
    this.#control = new RosControl(
      this.node,
      {
        takeFrame: () => this.#takeFrame(),
        instruction: () => this.#instruction,
        state: () => this.#joints.positions,
        missingInputs: () => this.#missingInputs(),
        camera: () => this.#cameras?.plan.trigger ?? 'camera',
      },
      () => this.#log(),
      o.observer,
    );
    this.#config = declareParameters(o.ros, this.node, o.config);
    this.node.addOnSetParametersCallback((parameters: rcl.Parameter[]) =>
      this.#onSetParameters(parameters),
    );
    const wrap =
      (name: string, fn: () => void): rcl.lifecycle.TransitionCallback =>
      () => {
        try {
          fn();
          return CALLBACK_RETURN.success;
        } catch (error) {
          this.#log().error(`${name} failed: ${message(error)}`);
          return CALLBACK_RETURN.failure;
        }
      };
    this.node.registerOnConfigure(
      wrap('configure', () => {
        this.#onConfigure();
      }),
    );
    this.node.registerOnActivate(
      wrap('activate', () => {
        this.#onActivate();
      }),
    );
    this.node.registerOnDeactivate(
      wrap('deactivate', () => {
        this.#onDeactivate();
      }),
    );
    this.node.registerOnCleanup(
      wrap('cleanup', () => {
        this.#onCleanup();
      }),
    );
    this.node.registerOnShutdown(
      wrap('shutdown', () => {
        this.#onCleanup();
      }),
    );
  }

  /**
   * The node's options: the `ros.*` parameters as they are now (parameter file, `-p`, `ros2
   * param set`), with the constructor's `options` replacing some. Topics, QoS, cameras and joint
   * names are taken at configure; diagnostics thresholds apply at once.
   */
  get options(): RosNodeOptions {
    return rosNodeOptions({ ...rosNodeOptionsFromConfig(this.#config.ros), ...this.#fixedOptions });
  }

  /** The current parameters, validated. */
  get config(): Readonly<VlaConfig> {
    return this.#config;
  }
  /** The lifecycle state label: unconfigured, inactive, active or finalized. */
  get state(): string {
    return this.node.currentState.label;
  }
  /** True once the model is loaded and warmed up. */
  get ready(): boolean {
    return this.#pipeline !== undefined;
  }
  /** Resolves when the model load started by configure has finished (or failed). */
  async whenLoaded(): Promise<void> {
    await this.#loading;
  }
  /** Resolves when the inference in flight (if any) has finished and its chunk was handled. */
  async idle(): Promise<void> {
    await this.#control.idle();
  }
  get stats(): RosNodeStats {
    const loop = this.#control.loop;
    return {
      ...this.#control.counters,
      framesReceived: this.#framesReceived,
      framesDropped: this.#slot.dropped,
      framesStale: this.#slot.stale,
      consecutiveMisses: loop?.consecutiveMisses ?? 0,
      safeHoldSteps: loop?.safeHoldSteps ?? 0,
    };
  }
  /**
   * Per subscribed camera (of the last configure): messages received, bad ones dropped, and
   * inferences held for want of a fresh frame from it.
   */
  get cameraCounts(): ReadonlyMap<string, Readonly<CameraCounts>> {
    return this.#cameras?.counts ?? new Map();
  }
  /** The cameras of the last configure: subscribed, trigger, and those the model sees. */
  get cameraPlan(): CameraPlan | undefined {
    return this.#cameras?.plan;
  }
  /** True while the executor holds the robot because no chunk covers the current step. */
  get inSafeHold(): boolean {
    return this.#control.loop?.inSafeHold ?? false;
  }

  /** Configure and activate (for systems without a lifecycle manager). */
  autoActivate(): void {
    this.node.configure();
    if (this.state === 'inactive') this.node.activate();
  }

  /**
   * Lifecycle `shutdown` from whatever state the node is in (unconfigured, inactive or active),
   * so the model is released; a no-op once finalized.
   */
  finalize(): void {
    if (this.state !== 'finalized') this.node.shutdown();
  }

  /** Resolves when the models released by cleanup or shutdown are released. */
  async released(): Promise<void> {
    await this.#releasing;
  }

  #log(): ReturnType<RosLifecycleNode['getLogger']> {
    return this.node.getLogger();
  }

  #onSetParameters(parameters: rcl.Parameter[]): { successful: boolean; reason: string } {
    const change = validateChange(this.#config, parameters);
    if (!change.successful) {
      this.#log().warn(`parameter change rejected: ${change.reason}`);
    } else if (change.config !== undefined) {
      this.#config = change.config;
      const names = parameters.map((p) => p.name).join(', ');
      this.#log().info(
        `parameters ${names} changed: model, backend and pruning keys apply at the next configure, runtime and safety keys at the next activate`,
      );
    }
    return { successful: change.successful, reason: change.reason };
  }

  // --- lifecycle ---------------------------------------------------------------------------

  #onConfigure(): void {
    const config = this.#config;
    this.#active = config;
    this.#loadError = undefined;
    this.#control.lastError = undefined;
    this.#createEntities(config);
    this.#configured = true;
    this.#log().info(`configure: loading model ${config.model.path} (${config.model.precision})`);
    const generation = ++this.#loadGeneration;
    const log = (line: string): void => {
      this.#log().info(line);
    };
    const fail = (error: unknown): void => {
      if (generation !== this.#loadGeneration) return;
      this.#loadError = message(error);
      this.#log().error(`configure: the model did not load: ${this.#loadError}`);
      this.#publishDiagnostics();
      if (this.state === 'active') this.node.deactivate();
      if (this.state === 'inactive') this.node.cleanup();
    };
    this.#loading = this.#createPipeline(config, log)
      .then((pipeline) => {
        if (generation !== this.#loadGeneration || !this.#configured) {
          this.#release(pipeline);
          return;
        }
        try {
          this.#prepareModel(pipeline);
        } catch (error) {
          this.#release(pipeline);
          throw error;
        }
        this.#pipeline = pipeline;
        this.#log().info(
          `ready: model warmed up on ${pipeline.provider}; control at ${this.#rate(config).toFixed(1)} Hz`,
        );
        if (this.#isActive) this.#startControl();
      })
      .catch(fail);
  }

  #release(pipeline: NodePipeline): void {
    const releasing = pipeline.release().catch((error: unknown) => {
      this.#log().warn(`releasing the model failed: ${message(error)}`);
    });
    this.#releasing = Promise.all([this.#releasing, releasing]).then(() => undefined);
  }

  #onActivate(): void {
    if (this.#loadError !== undefined)
      throw new Error(`the model did not load: ${this.#loadError}`);
    this.#isActive = true;
    if (this.#pipeline === undefined) {
      this.#log().info('activate: processing starts when the model has warmed up');
    } else {
      this.#startControl();
    }
  }

  #onDeactivate(): void {
    this.#isActive = false;
    this.#control.stop();
    this.#log().info('deactivate: chunks are no longer published; the robot holds');
  }

  #onCleanup(): void {
    this.#isActive = false;
    this.#configured = false;
    this.#control.stop();
    this.#loadGeneration++;
    this.#entities?.destroy();
    this.#entities = undefined;
    const pipeline = this.#pipeline;
    this.#pipeline = undefined;
    this.#joints = new StateJoints([]);
    this.#control.forget();
    this.#entityOptions = undefined;
    if (pipeline !== undefined) this.#release(pipeline);
  }

  // --- entities and input ------------------------------------------------------------------

  #createEntities(config: Readonly<VlaConfig>): void {
    const o = this.options;
    const plan = cameraPlan(o, this.#packageCameras(config));
    this.#entityOptions = o;
    this.#cameras = new CameraFrames(plan, config.runtime.max_frame_age_ms);
    this.#entities = new NodeEntities(this.#ros, this.node, o, plan, {
      image: (camera, feeds, m: RosImage) => {
        const problem = imageProblem(m);
        if (problem !== undefined) {
          this.#onBadFrame(camera, problem, `frame on ~/in/${camera}`);
          return;
        }
        this.#onFrame(camera, feeds, () => frameFromImage(m), m.header);
      },
      compressed: (camera, feeds, m: RosCompressedImage) => {
        const problem = compressedProblem(m);
        if (problem !== undefined) {
          this.#onBadFrame(camera, problem, `frame on ~/in/${camera}/compressed`);
          return;
        }
        this.#onFrame(camera, feeds, () => frameFromCompressed(m), m.header);
      },
      instruction: (m: RosString) => {
        const problem = instructionProblem(m.data);
        if (problem !== undefined) {
          this.#inputProblems.drop(problem, 'message on ~/in/instruction');
          return;
        }
        if (m.data !== this.#instruction) this.#log().info(`instruction: ${printable(m.data)}`);
        this.#instruction = m.data;
      },
      jointState: (m: RosJointState) => {
        this.#onJointState(m);
      },
      diagnosticsPeriod: () => {
        this.#publishDiagnostics();
      },
    });
    this.#slot = new LatestFrameSlot(config.runtime.max_frame_age_ms);
  }

  #prepareModel(pipeline: NodePipeline): void {
    // The topics were made from the manifest read at configure: the loaded model must agree.
    const seen = pipeline.cameras?.map((c) => c.name) ?? [];
    const inputs = this.#cameras?.plan.inputs ?? [];
    if (seen.length > 0 && seen.join('\n') !== inputs.join('\n')) {
      throw new Error(
        `Expected the model's cameras to be the ones subscribed at configure (${inputs.join(', ')}) but received ${seen.join(', ')}; configure again`,
      );
    }
    const names = this.#stateJointNames(pipeline);
    const dims = pipeline.model.manifest.state.names.length;
    if (names.length !== dims) {
      throw new Error(
        `Expected ${dims} state joint names (ros.state_joint_names, one per state dimension of the manifest) but received ${names.length}`,
      );
    }
    this.#joints = new StateJoints(names);
    const joints = this.#jointNames(pipeline);
    if (joints.length !== pipeline.model.manifest.chunk.action_dim) {
      throw new Error(
        `Expected ${pipeline.model.manifest.chunk.action_dim} joint names (one per action dimension) but received ${joints.length}`,
      );
    }
  }

  /** The names in `~/in/joint_states` of the model's state dimensions, in the manifest's order. */
  #stateJointNames(pipeline: NodePipeline): readonly string[] {
    const o = this.#entityOptions ?? this.options;
    return o.stateJointNames.length > 0 ? o.stateJointNames : pipeline.model.manifest.state.names;
  }

  #jointNames(pipeline: NodePipeline): readonly string[] {
    const o = this.#entityOptions ?? this.options;
    return o.jointNames.length > 0 ? o.jointNames : pipeline.model.manifest.action.names;
  }

  #rate(config: Readonly<VlaConfig>): number {
    // Before a model is loaded, 10 Hz stands in for the model's rate.
    return configuredControlRate(config, this.#pipeline?.model.manifest ?? { control_rate_hz: 10 });
  }

  #onFrame(
    camera: string,
    feeds: boolean,
    frame: () => SlotFrame['frame'],
    header: RosHeader,
  ): void {
    this.#framesReceived++;
    const cameras = this.#cameras;
    cameras?.received(camera, false);
    if (!feeds || !this.#configured || cameras === undefined) return;
    if (cameras.keeps(camera)) cameras.put(camera, { frame: frame(), header }, this.#clock());
    else this.#slot.put({ frame: frame(), header }, this.#clock());
  }

  #onBadFrame(camera: string, problem: InputProblem, what: string): void {
    this.#framesReceived++;
    this.#cameras?.received(camera, true);
    this.#inputProblems.drop(problem, what);
  }

  #missingInputs(): string[] {
    return missingInputs({
      instruction: this.#instruction !== undefined,
      jointStates: this.#joints.complete,
      frames: this.#framesReceived > 0,
    });
  }

  /**
   * The trigger camera's waiting frame, if fresh, with every other camera's latest frame; when
   * another camera has none fresh enough, the frame is dropped and the hold counted (an inference
   * never mixes in a stale frame).
   */
  #takeFrame(): SlotFrame | undefined {
    const now = this.#clock();
    const taken = this.#slot.take(now)?.value;
    const cameras = this.#cameras;
    if (taken === undefined || cameras === undefined || cameras.plan.inputs.length < 2) {
      return taken;
    }
    if (!cameras.ready(now)) return undefined;
    return { ...taken, cameras: cameras.frames(taken) };
  }

  #onJointState(m: RosJointState): void {
    this.#joints.read(m, (problem, what) => {
      this.#inputProblems.drop(problem, what);
    });
  }

  // --- control loop ------------------------------------------------------------------------

  #startControl(): void {
    const pipeline = this.#pipeline;
    const pub = this.#entities?.pub;
    if (pipeline === undefined || pub === undefined) return;
    const config = this.#config;
    this.#active = config;
    this.#control.start({
      pipeline,
      config,
      rate: this.#rate(config),
      jointNames: this.#jointNames(pipeline),
      pub,
    });
  }

  // --- diagnostics -------------------------------------------------------------------------

  /** The diagnostics the node publishes now: level, message and key values. */
  diagnostics(): RosDiagnosticArray {
    const d = this.options.diagnostics;
    return nodeDiagnostics({
      name: this.node.name(),
      hardwareId: d.hardwareId,
      stampNs: this.node.now().nanoseconds,
      state: this.state,
      provider: this.#pipeline?.provider,
      latency: this.#pipeline?.latency.total.summary(),
      stats: this.stats,
      inSafeHold: this.inSafeHold,
      dropped: (kind) => this.#inputProblems.count(kind),
      loadError: this.#loadError,
      configured: this.#configured,
      ready: this.#pipeline !== undefined,
      active: this.#isActive,
      started: this.#control.loop?.started === true,
      lastError: this.#control.lastError,
      missingInputs: this.#missingInputs(),
      processingWarnMs: this.#processingWarnMs(),
      errorConsecutiveMisses: d.errorConsecutiveMisses,
      decoding: this.#pipeline?.decoding,
      ...(this.#cameras === undefined
        ? {}
        : {
            cameras: this.#cameras.counts,
            triggerCamera: this.#cameras.plan.trigger,
            hold: this.#cameras.hold,
          }),
    });
  }

  #processingWarnMs(): number {
    const set = this.options.diagnostics.processingTimeWarnMs;
    if (set > 0) return set;
    const horizon = this.#pipeline?.model.manifest.chunk.horizon ?? 1;
    return (500 * horizon) / this.#rate(this.#active ?? this.#config);
  }

  #publishDiagnostics(): void {
    this.#entities?.pub.diagnostics.publish(this.diagnostics());
  }
}

/** At most one warning per kind of bad input per this many ms. */
export const INPUT_WARNING_PERIOD_MS = 5000;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
