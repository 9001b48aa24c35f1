import {
  defaultConfig,
  type ImageQos,
  type ImageTransport,
  type RosConfig,
} from '../../config/index.js';

/**
 * The ROS 2 node's options: topics, QoS, joint names, lifecycle and diagnostics thresholds, in
 * the library's camelCase. They are the `ros.*` parameters; their defaults are the shipped
 * parameter file's (config/vla_node.param.yaml), the one place defaults are written.
 */

export interface RosNodeOptions {
  /**
   * Camera names: each is subscribed on `~/in/<name>` (raw) or `~/in/<name>/compressed`; for a
   * several-camera model see `cameraPlan` in cameras.ts (a list naming none of its cameras means them).
   */
  readonly cameras: readonly string[];
  /** The camera the model sees, or a several-camera model's trigger camera; '' = the first. */
  readonly modelCamera: string;
  readonly imageTransport: ImageTransport;
  /** Joint names of the published trajectory, one per action dimension; empty = the manifest's action names. */
  readonly jointNames: readonly string[];
  /**
   * Joint names in `~/in/joint_states` the model's state is read from, one per state dimension in
   * the manifest's order; empty = the manifest's state names.
   */
  readonly stateJointNames: readonly string[];
  /** Configure and activate on start, for systems without a lifecycle manager. */
  readonly autoActivate: boolean;
  /** Publish `~/debug/pruned_image` (the kept-token overlay) after each inference. */
  readonly publishPrunedImage: boolean;
  readonly qos: {
    readonly image: ImageQos;
    /** Depth of the reliable action topics. */
    readonly actionDepth: number;
  };
  readonly diagnostics: {
    /** Period of `/diagnostics`, ms. */
    readonly periodMs: number;
    /** WARN when an inference takes longer than this, ms; 0 = half the time one chunk lasts. */
    readonly processingTimeWarnMs: number;
    /** ERROR after this many consecutive deadline misses (control steps without a plan). */
    readonly errorConsecutiveMisses: number;
    readonly hardwareId: string;
  };
}

/** Options with some replaced. */
export interface RosNodeOptionsInput {
  readonly cameras?: readonly string[];
  readonly modelCamera?: string;
  readonly imageTransport?: ImageTransport;
  readonly jointNames?: readonly string[];
  readonly stateJointNames?: readonly string[];
  readonly autoActivate?: boolean;
  readonly publishPrunedImage?: boolean;
  readonly qos?: Partial<RosNodeOptions['qos']>;
  readonly diagnostics?: Partial<RosNodeOptions['diagnostics']>;
}

/**
 * `input` with what it leaves out taken from `base`: by default the shipped parameter file's
 * `ros.*` values.
 */
export function rosNodeOptions(
  input: RosNodeOptionsInput = {},
  base: RosNodeOptions = rosNodeOptionsFromConfig(defaultConfig().ros),
): RosNodeOptions {
  const d = base;
  return {
    cameras: input.cameras ?? d.cameras,
    modelCamera: input.modelCamera ?? d.modelCamera,
    imageTransport: input.imageTransport ?? d.imageTransport,
    jointNames: input.jointNames ?? d.jointNames,
    stateJointNames: input.stateJointNames ?? d.stateJointNames,
    autoActivate: input.autoActivate ?? d.autoActivate,
    publishPrunedImage: input.publishPrunedImage ?? d.publishPrunedImage,
    qos: { ...d.qos, ...input.qos },
    diagnostics: { ...d.diagnostics, ...input.diagnostics },
  };
}

/** The node's options from the validated `ros.*` parameters (the parameter file holds the defaults). */
export function rosNodeOptionsFromConfig(r: RosConfig): RosNodeOptions {
  return {
    cameras: r.cameras,
    modelCamera: r.model_camera,
    imageTransport: r.image_transport,
    jointNames: r.joint_names,
    stateJointNames: r.state_joint_names,
    autoActivate: r.auto_activate,
    publishPrunedImage: r.publish_pruned_image,
    qos: { image: r.qos.image, actionDepth: r.qos.action_depth },
    diagnostics: {
      periodMs: r.diagnostics.period_ms,
      processingTimeWarnMs: r.diagnostics.processing_time_warn_ms,
      errorConsecutiveMisses: r.diagnostics.error_consecutive_misses,
      hardwareId: r.diagnostics.hardware_id,
    },
  };
}
