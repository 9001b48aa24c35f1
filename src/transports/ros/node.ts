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
import type { VlaConfig } from '../../config/index.js';
import type { Frame } from '../../ingest/index.js';
import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation, VlaPipeline } from '../../pipeline/pipeline.js';
import type { RunObserver } from '../../pipeline/observer.js';
import { keptOverlay } from '../../pruning/overlay.js';
import { LatestFrameSlot } from '../../runtime/budget.js';
import { ControlLoop, executorSettings } from '../../runtime/control-loop.js';
import type { LatencySummary } from '../../runtime/latency.js';
import type { ActionLimits } from '../../runtime/safety.js';
import {
  CALLBACK_RETURN,
  messageClass,
  type RosApi,
  type RosLifecycleNode,
  type RosPublisher,
  type RosSubscription,
  type RosTimer,
} from './api.js';
import {
  chunkMultiArray,
  commandMultiArray,
  DIAGNOSTIC_LEVEL,
  frameFromCompressed,
  frameFromImage,
  jointTrajectory,
  MESSAGE_TYPES,
  msFromTime,
  rgbImage,
  timeFromMs,
  type DiagnosticLevel,
  type RosCompressedImage,
  type RosDiagnosticArray,
  type RosHeader,
  type RosImage,
  type RosJointState,
  type RosKeyValue,
  type RosString,
} from './messages.js';
import {
  compressedProblem,
  imageProblem,
  INPUT_PROBLEMS,
  InputProblemLog,
  instructionProblem,
  jointStateProblem,
} from './input.js';
import {
  rosNodeOptions,
  rosNodeOptionsFromConfig,
  type RosNodeOptions,
  type RosNodeOptionsInput,
} from './options.js';
import { declareParameters, validateChange } from './params.js';

/** The part of {@link VlaPipeline} the node uses (a test double implements it). */
export interface NodePipeline {
  readonly model: {
    readonly manifest: Pick<
      Manifest,
      'control_rate_hz' | 'image' | 'patch_grid' | 'chunk' | 'action' | 'state'
    >;
  };
  readonly provider: string;
  readonly actionLimits: ActionLimits;
  readonly lastSelection: VlaPipeline['lastSelection'];
  readonly latency: { readonly total: { summary(): LatencySummary } };
  infer(observation: Observation): Promise<ActionChunk>;
  release(): Promise<void>;
}

/** Loads and warms the model for a configuration; `log` receives progress lines. */
export type PipelineFactory = (
  config: Readonly<VlaConfig>,
  log: (line: string) => void,
) => Promise<NodePipeline>;

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
}

/** Counters the node keeps, shown in diagnostics. */
export interface RosNodeStats {
  readonly framesReceived: number;
  readonly framesDropped: number;
  readonly framesStale: number;
  readonly chunksPublished: number;
  readonly chunksRejected: number;
  readonly inferenceErrors: number;
  readonly deadlineMisses: number;
  readonly consecutiveMisses: number;
  readonly safeHoldSteps: number;
  readonly lastProcessingMs: number;
  readonly keptTokenRatio: number;
}

interface SlotFrame {
  readonly frame: Frame;
  readonly header: RosHeader;
}

/** The managed vla-node ROS 2 node. */
export class VlaRosNode {
  readonly node: RosLifecycleNode;
  readonly #fixedOptions: RosNodeOptionsInput;
  /** The options the topics were created with (fixed between configure and cleanup). */
  #entityOptions: RosNodeOptions | undefined;
  #releasing: Promise<void> = Promise.resolve();
  readonly #ros: RosApi;
  readonly #createPipeline: PipelineFactory;
  readonly #clock: () => number;
  readonly #observer: RunObserver | undefined;
  #config: Readonly<VlaConfig>;
  /** The configuration the model was loaded with (fixed between configure and cleanup). */
  #active: Readonly<VlaConfig> | undefined;
  #pipeline: NodePipeline | undefined;
  #loading: Promise<void> | undefined;
  #loadError: string | undefined;
  #configured = false;
  #isActive = false;
  /** Bumped by activate/deactivate/cleanup: results of older inferences are dropped. */
  #generation = 0;
  /** Bumped by configure/cleanup: a model load of an older configure is released. */
  #loadGeneration = 0;
  #loop: ControlLoop | undefined;
  #slot: LatestFrameSlot<SlotFrame> = new LatestFrameSlot(0);
  #instruction: string | undefined;
  #state = new Float64Array(0);
  #stateSeen = new Uint8Array(0);
  #stateMissing = 0;
  #jointIndex = new Map<string, number>();
  #step = 0;
  #inflight: Promise<void> | undefined;
  #expectedDelaySteps = 1;
  #lastError: string | undefined;
  #publishers: RosPublisher[] = [];
  #subscriptions: RosSubscription[] = [];
  #controlTimer: RosTimer | undefined;
  #diagnosticsTimer: RosTimer | undefined;
  #pub:
    | {
        trajectory: RosPublisher;
        command: RosPublisher;
        raw: RosPublisher;
        diagnostics: RosPublisher;
        processingTime: RosPublisher;
        prunedImage: RosPublisher | undefined;
      }
    | undefined;
  /** Bad input is dropped with at most one warning per kind per 5 s. */
  readonly #inputProblems = new InputProblemLog(
    INPUT_WARNING_PERIOD_MS,
    (line) => {
      this.#log().warn(line);
    },
    () => this.#clock(),
  );
  #stats = {
    framesReceived: 0,
    chunksPublished: 0,
    chunksRejected: 0,
    inferenceErrors: 0,
    deadlineMisses: 0,
    lastProcessingMs: 0,
    keptTokenRatio: 1,
  };

  /**
   * Create the lifecycle node (unconfigured), declare its parameters and register the transition
   * callbacks. With `autoActivate`, call {@link VlaRosNode.autoActivate} after `spin`.
   */
  constructor(o: VlaRosNodeOptions) {
    this.#ros = o.ros;
    this.#createPipeline = o.createPipeline;
    this.#clock = o.clock ?? Date.now;
    this.#observer = o.observer;
    this.#fixedOptions = o.options ?? {};
    this.node = new o.ros.lifecycle.LifecycleNode(
      o.nodeName ?? 'vla_node',
      o.namespace ?? '',
      undefined,
      undefined,
      true,
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
    await this.#inflight;
  }
  get stats(): RosNodeStats {
    return {
      ...this.#stats,
      framesDropped: this.#slot.dropped,
      framesStale: this.#slot.stale,
      consecutiveMisses: this.#loop?.consecutiveMisses ?? 0,
      safeHoldSteps: this.#loop?.safeHoldSteps ?? 0,
    };
  }
  /** True while the executor holds the robot because no chunk covers the current step. */
  get inSafeHold(): boolean {
    return this.#loop?.inSafeHold ?? false;
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
    this.#lastError = undefined;
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
    this.#stopControl();
    this.#log().info('deactivate: chunks are no longer published; the robot holds');
  }

  #onCleanup(): void {
    this.#isActive = false;
    this.#configured = false;
    this.#stopControl();
    this.#loadGeneration++;
    this.#destroyEntities();
    const pipeline = this.#pipeline;
    this.#pipeline = undefined;
    this.#loop = undefined;
    this.#entityOptions = undefined;
    if (pipeline !== undefined) this.#release(pipeline);
  }

  // --- entities ----------------------------------------------------------------------------

  #qosReliable(depth: number, transientLocal: boolean): rcl.QoS {
    const Q = this.#ros.QoS;
    return new Q(
      Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
      depth,
      Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE,
      transientLocal
        ? Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL
        : Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_VOLATILE,
    );
  }

  /** Best effort, depth 1 (the node only uses the latest frame; rclnodejs's sensor-data profile is depth 5). */
  #qosSensorData(): rcl.QoS {
    const Q = this.#ros.QoS;
    return new Q(
      Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
      1,
      Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT,
      Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_VOLATILE,
    );
  }

  #createEntities(config: Readonly<VlaConfig>): void {
    const o = this.options;
    this.#entityOptions = o;
    const n = this.node;
    // rclnodejs fills in the options object it is given and writes QoS overrides into its QoS
    // object, so every entity gets options and a QoS of its own. History, depth and reliability
    // can be overridden the ROS 2 way, e.g.
    // `-p qos_overrides./camera/image_raw.subscription.reliability:=reliable`.
    const overridable = (qos: () => rcl.QoS): rcl.Options => ({
      qos: qos(),
      qosOverridingOptions: this.#ros.QoSOverridingOptions.withDefaultPolicies(),
    });
    const actionQos = (): rcl.QoS => this.#qosReliable(o.qos.actionDepth, false);
    const pub = (type: string, topic: string, qos: () => rcl.QoS): RosPublisher => {
      const p = n.createPublisher(messageClass(type), topic, overridable(qos));
      this.#publishers.push(p);
      return p;
    };
    this.#pub = {
      trajectory: pub(MESSAGE_TYPES.jointTrajectory, '~/out/action_chunk', actionQos),
      command: pub(MESSAGE_TYPES.float64MultiArray, '~/out/command', actionQos),
      raw: pub(MESSAGE_TYPES.float32MultiArray, '~/out/action_chunk_raw', actionQos),
      diagnostics: pub(MESSAGE_TYPES.diagnosticArray, '/diagnostics', () =>
        this.#qosReliable(10, false),
      ),
      processingTime: pub(MESSAGE_TYPES.float64, '~/debug/processing_time_ms', () =>
        this.#qosReliable(1, false),
      ),
      prunedImage: o.publishPrunedImage
        ? pub(MESSAGE_TYPES.image, '~/debug/pruned_image', () => this.#qosReliable(1, false))
        : undefined,
    };
    this.#slot = new LatestFrameSlot(config.runtime.max_frame_age_ms);
    const modelCamera = o.modelCamera === '' ? o.cameras[0] : o.modelCamera;
    const imageQos = (): rcl.Options =>
      overridable(() =>
        o.qos.image === 'sensor_data' ? this.#qosSensorData() : this.#qosReliable(1, false),
      );
    for (const camera of o.cameras) {
      const feeds = camera === modelCamera;
      if (o.imageTransport === 'compressed') {
        this.#subscriptions.push(
          n.createSubscription(
            messageClass(MESSAGE_TYPES.compressedImage),
            `~/in/${camera}/compressed`,
            imageQos(),
            (m: RosCompressedImage) => {
              const problem = compressedProblem(m);
              if (problem !== undefined) {
                this.#stats.framesReceived++;
                this.#inputProblems.drop(problem, `frame on ~/in/${camera}/compressed`);
                return;
              }
              this.#onFrame(feeds, frameFromCompressed(m), m.header);
            },
          ),
        );
      } else {
        this.#subscriptions.push(
          n.createSubscription(
            messageClass(MESSAGE_TYPES.image),
            `~/in/${camera}`,
            imageQos(),
            (m: RosImage) => {
              const problem = imageProblem(m);
              if (problem !== undefined) {
                this.#stats.framesReceived++;
                this.#inputProblems.drop(problem, `frame on ~/in/${camera}`);
                return;
              }
              this.#onFrame(feeds, frameFromImage(m), m.header);
            },
          ),
        );
      }
    }
    this.#subscriptions.push(
      n.createSubscription(
        messageClass(MESSAGE_TYPES.string),
        '~/in/instruction',
        overridable(() => this.#qosReliable(1, true)),
        (m: RosString) => {
          const problem = instructionProblem(m.data);
          if (problem !== undefined) {
            this.#inputProblems.drop(problem, 'message on ~/in/instruction');
            return;
          }
          if (m.data !== this.#instruction) this.#log().info(`instruction: ${m.data}`);
          this.#instruction = m.data;
        },
      ),
      n.createSubscription(
        messageClass(MESSAGE_TYPES.jointState),
        '~/in/joint_states',
        overridable(() => this.#qosReliable(10, false)),
        (m: RosJointState) => {
          this.#onJointState(m);
        },
      ),
    );
    this.#diagnosticsTimer = n.createTimer(BigInt(Math.round(o.diagnostics.periodMs * 1e6)), () => {
      this.#publishDiagnostics();
    });
  }

  #destroyEntities(): void {
    for (const p of this.#publishers) this.node.destroyPublisher(p);
    for (const s of this.#subscriptions) this.node.destroySubscription(s);
    if (this.#diagnosticsTimer !== undefined) this.node.destroyTimer(this.#diagnosticsTimer);
    this.#publishers = [];
    this.#subscriptions = [];
    this.#diagnosticsTimer = undefined;
    this.#pub = undefined;
  }

  #prepareModel(pipeline: NodePipeline): void {
    const names = pipeline.model.manifest.state.names;
    this.#jointIndex = new Map(names.map((name, i) => [name, i]));
    this.#state = new Float64Array(names.length);
    this.#stateSeen = new Uint8Array(names.length);
    this.#stateMissing = names.length;
    const joints = this.#jointNames(pipeline);
    if (joints.length !== pipeline.model.manifest.chunk.action_dim) {
      throw new Error(
        `Expected ${pipeline.model.manifest.chunk.action_dim} joint names (one per action dimension) but received ${joints.length}`,
      );
    }
  }

  #jointNames(pipeline: NodePipeline): readonly string[] {
    const o = this.#entityOptions ?? this.options;
    return o.jointNames.length > 0 ? o.jointNames : pipeline.model.manifest.action.names;
  }

  #rate(config: Readonly<VlaConfig>): number {
    const r = config.runtime.control_rate_hz;
    return r > 0 ? r : (this.#pipeline?.model.manifest.control_rate_hz ?? 10);
  }

  // --- input -------------------------------------------------------------------------------

  #onFrame(feeds: boolean, frame: Frame, header: RosHeader): void {
    this.#stats.framesReceived++;
    if (feeds && this.#configured) this.#slot.put({ frame, header }, this.#clock());
  }

  #onJointState(m: RosJointState): void {
    const problem = jointStateProblem(m, this.#pipeline?.model.manifest.state.names ?? []);
    if (problem !== undefined) {
      this.#inputProblems.drop(problem, 'message on ~/in/joint_states');
      return;
    }
    const count = Math.min(m.name.length, m.position.length);
    for (let i = 0; i < count; i++) {
      const index = this.#jointIndex.get(m.name[i] ?? '');
      const value = m.position[i];
      if (index === undefined || value === undefined || !Number.isFinite(value)) continue;
      this.#state[index] = value;
      if (this.#stateSeen[index] === 0) {
        this.#stateSeen[index] = 1;
        this.#stateMissing--;
      }
    }
  }

  // --- control loop ------------------------------------------------------------------------

  #startControl(): void {
    const pipeline = this.#pipeline;
    const config = this.#config;
    if (pipeline === undefined) return;
    const m = pipeline.model.manifest;
    const r = config.runtime;
    this.#loop = new ControlLoop({
      mode: r.merge_mode,
      horizon: m.chunk.horizon,
      actionDim: m.chunk.action_dim,
      executeSteps: r.execute_steps,
      executor: executorSettings(config, pipeline.actionLimits),
    });
    this.#active = config;
    this.#step = 0;
    // On the node's ROS clock: with use_sim_time the control period follows /clock.
    const period = BigInt(Math.round(1e9 / this.#rate(config)));
    this.#controlTimer = this.node.createTimer(period, () => {
      this.#onControl();
    });
  }

  #stopControl(): void {
    this.#generation++;
    if (this.#controlTimer !== undefined) this.node.destroyTimer(this.#controlTimer);
    this.#controlTimer = undefined;
    this.#loop?.reset();
  }

  /** One control period: maybe start an inference, then send the loop's action. */
  #onControl(): void {
    const pipeline = this.#pipeline;
    const loop = this.#loop;
    const config = this.#active;
    const pub = this.#pub;
    if (
      !this.#isActive ||
      pipeline === undefined ||
      loop === undefined ||
      config === undefined ||
      pub === undefined
    )
      return;
    const now = this.#step++;
    if (
      loop.wantsChunk(now, this.#expectedDelaySteps) &&
      this.#inflight === undefined &&
      this.#instruction !== undefined &&
      this.#stateMissing === 0
    ) {
      const taken = this.#slot.take(this.#clock());
      if (taken !== undefined) this.#infer(pipeline, config, taken.value, now);
    }
    const tick = loop.tick(now, this.#state, this.#inflight !== undefined);
    if (tick.miss) this.#stats.deadlineMisses++;
    // Before the first chunk the robot has nothing to follow: commands start with the first plan.
    if (loop.started) {
      pub.command.publish(commandMultiArray(tick.action));
      this.#observer?.onCommand?.(tick.action, tick.source === 'plan' ? 'plan' : 'safe');
    }
  }

  #infer(
    pipeline: NodePipeline,
    config: Readonly<VlaConfig>,
    input: SlotFrame,
    obsStep: number,
  ): void {
    const generation = this.#generation;
    const camera =
      this.options.modelCamera === '' ? this.options.cameras[0] : this.options.modelCamera;
    const observation: Observation = {
      frame: input.frame,
      instruction: this.#instruction ?? '',
      state: Float64Array.from(this.#state),
      stamp: msFromTime(input.header.stamp),
      stream: camera ?? 'camera',
    };
    // One inference at a time on the pipeline, across deactivate/activate too: a result of an
    // older activation is dropped, but the next inference waits for it to finish.
    this.#observer?.onFrame?.(observation.frame, observation.instruction, camera ?? 'camera');
    const tracked: Promise<void> = pipeline
      .infer(observation)
      .then((chunk) => {
        if (generation === this.#generation) {
          this.#onChunk(pipeline, config, chunk, input.header, obsStep);
          this.#observer?.onChunk?.(chunk, input.frame, pipeline.lastSelection);
        }
      })
      .catch((error: unknown) => {
        if (generation !== this.#generation) return;
        this.#stats.inferenceErrors++;
        const text = message(error);
        if (text !== this.#lastError) this.#log().error(`inference failed: ${text}`);
        this.#lastError = text;
      })
      .finally(() => {
        if (this.#inflight === tracked) this.#inflight = undefined;
      });
    this.#inflight = tracked;
  }

  #onChunk(
    pipeline: NodePipeline,
    config: Readonly<VlaConfig>,
    chunk: ActionChunk,
    header: RosHeader,
    obsStep: number,
  ): void {
    const loop = this.#loop;
    const pub = this.#pub;
    if (loop === undefined || pub === undefined) return;
    this.#lastError = undefined;
    this.#stats.lastProcessingMs = chunk.latencyMs;
    this.#stats.keptTokenRatio =
      chunk.tokens.total === 0 ? 1 : chunk.tokens.kept / chunk.tokens.total;
    pub.processingTime.publish({ data: chunk.latencyMs });
    const rate = this.#rate(config);
    this.#expectedDelaySteps = Math.max(
      1,
      Math.ceil((pipeline.latency.total.summary().p95 / 1000) * rate),
    );
    const dim = chunk.actionDim;
    const problem = unpublishable(chunk.actions, dim, pipeline.actionLimits);
    if (problem !== undefined) {
      this.#stats.chunksRejected++;
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
        jointTrajectory(plan, this.#jointNames(pipeline), loop.planFrom(now), dim, 1 / rate),
      );
    }
    this.#stats.chunksPublished++;
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

  // --- diagnostics -------------------------------------------------------------------------

  /** The diagnostics the node publishes now: level, message and key values. */
  diagnostics(): RosDiagnosticArray {
    const { level, text } = this.#assess();
    const s = this.stats;
    const latency = this.#pipeline?.latency.total.summary();
    const values: RosKeyValue[] = [
      { key: 'lifecycle state', value: this.state },
      { key: 'provider', value: this.#pipeline?.provider ?? 'none' },
      { key: 'latency p50 ms', value: String(latency?.p50 ?? 0) },
      { key: 'latency p95 ms', value: String(latency?.p95 ?? 0) },
      { key: 'latency p99 ms', value: String(latency?.p99 ?? 0) },
      { key: 'processing time ms', value: s.lastProcessingMs.toFixed(3) },
      { key: 'deadline misses', value: String(s.deadlineMisses) },
      { key: 'consecutive deadline misses', value: String(s.consecutiveMisses) },
      { key: 'safe hold', value: String(this.inSafeHold) },
      { key: 'safe hold steps', value: String(s.safeHoldSteps) },
      { key: 'kept token ratio', value: s.keptTokenRatio.toFixed(3) },
      { key: 'frames received', value: String(s.framesReceived) },
      { key: 'frames dropped', value: String(s.framesDropped) },
      { key: 'frames stale', value: String(s.framesStale) },
      { key: 'chunks published', value: String(s.chunksPublished) },
      { key: 'chunks rejected', value: String(s.chunksRejected) },
      { key: 'inference errors', value: String(s.inferenceErrors) },
      ...INPUT_PROBLEMS.map((kind) => ({
        key: `dropped ${kind}`,
        value: String(this.#inputProblems.count(kind)),
      })),
    ];
    return {
      // ROS time, so that with use_sim_time the status is stamped on the /clock timeline.
      header: { stamp: rosTimeOf(this.node.now().nanoseconds), frame_id: '' },
      status: [
        {
          level,
          // rcl's name: launch's node_name remaps it, and two arms must not share a status.
          name: `${this.node.name()}: policy`,
          message: text,
          hardware_id: this.options.diagnostics.hardwareId,
          values,
        },
      ],
    };
  }

  #assess(): { level: DiagnosticLevel; text: string } {
    const d = this.options.diagnostics;
    if (this.#loadError !== undefined)
      return { level: DIAGNOSTIC_LEVEL.error, text: `model did not load: ${this.#loadError}` };
    if (!this.#configured) return { level: DIAGNOSTIC_LEVEL.ok, text: 'unconfigured' };
    if (this.#pipeline === undefined)
      return { level: DIAGNOSTIC_LEVEL.warn, text: 'loading and warming up the model' };
    if (!this.#isActive) return { level: DIAGNOSTIC_LEVEL.ok, text: 'inactive (holding)' };
    const s = this.stats;
    if (s.consecutiveMisses >= d.errorConsecutiveMisses)
      return {
        level: DIAGNOSTIC_LEVEL.error,
        text: `safe hold: ${s.consecutiveMisses} consecutive deadline misses (no chunk covers the control steps)`,
      };
    if (this.#lastError !== undefined)
      return { level: DIAGNOSTIC_LEVEL.error, text: `inference failed: ${this.#lastError}` };
    if (this.#loop?.started !== true) {
      const waiting = [
        ...(this.#instruction === undefined ? ['an instruction'] : []),
        ...(this.#stateMissing > 0 ? ['joint states'] : []),
        ...(s.framesReceived === 0 ? ['camera frames'] : []),
      ];
      return {
        level: DIAGNOSTIC_LEVEL.warn,
        text:
          waiting.length > 0 ? `waiting for ${waiting.join(', ')}` : 'waiting for the first chunk',
      };
    }
    if (s.consecutiveMisses > 0)
      return {
        level: DIAGNOSTIC_LEVEL.warn,
        text: `${s.consecutiveMisses} deadline misses in a row`,
      };
    const warnMs = this.#processingWarnMs();
    if (s.lastProcessingMs > warnMs)
      return {
        level: DIAGNOSTIC_LEVEL.warn,
        text: `processing time ${s.lastProcessingMs.toFixed(1)} ms over ${warnMs.toFixed(1)} ms`,
      };
    return { level: DIAGNOSTIC_LEVEL.ok, text: 'running' };
  }

  #processingWarnMs(): number {
    const set = this.options.diagnostics.processingTimeWarnMs;
    if (set > 0) return set;
    const horizon = this.#pipeline?.model.manifest.chunk.horizon ?? 1;
    return (500 * horizon) / this.#rate(this.#active ?? this.#config);
  }

  #publishDiagnostics(): void {
    this.#pub?.diagnostics.publish(this.diagnostics());
  }
}

/** At most one warning per kind of bad input per this many ms. */
export const INPUT_WARNING_PERIOD_MS = 5000;

function rosTimeOf(ns: bigint): { sec: number; nanosec: number } {
  return { sec: Number(ns / 1_000_000_000n), nanosec: Number(ns % 1_000_000_000n) };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
