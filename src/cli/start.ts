import type { VlaConfig } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import {
  arNodePipeline,
  flowNodePipeline,
  loadRos,
  RosUnavailableError,
  runRosNode,
  type PipelineFactory,
  type RosApi,
} from '../transports/ros/index.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';
import { resolvePackagePath } from '../config/index.js';
import { loadModelPackage } from '../model/manifest.js';
import { isFlowPackage, loadFlowPackage } from '../model/flow-manifest.js';
import { flowPipelineFromConfig } from '../flow/from-config.js';
import { FOXGLOVE_OPTIONS, startLiveView, withFoxgloveFlag } from './foxglove.js';
import { simulate } from '../sim/experiment.js';
import { formatReport } from '../sim/report.js';
import { isArPackage } from '../model/ar-manifest.js';
import { formatArReport, simulateAr } from './sim-ar.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import { loadArManifest } from '../model/ar-manifest.js';

/**
 * Loads the model package of the configuration (an encoder + policy package, a flow package
 * through FlowPipeline, or an autoregressive package through ArPipeline) and warms the pipeline
 * up, logging progress.
 */
export const createPipeline: PipelineFactory = async (config, log) => {
  log(`loading model package ${config.model.path}`);
  const dir = resolvePackagePath(config.model.path);
  if (await isArPackage(dir)) {
    // The log line needs the manifest only; the pipeline's load verifies the files.
    const { manifest: m } = await loadArManifest(dir, { verifyHashes: false });
    const r = config.runtime;
    const window = r.decoding_window === 0 ? 'the whole chunk' : `${r.decoding_window} tokens`;
    log(
      `autoregressive package ${m.name}: camera ${m.cameras.map((c) => c.name).join(' + ')}, decoding ${r.decoding} (window ${window}), ${m.action_tokenizer.kind} action tokens, on cpu; warming up (${config.backend.warmup_runs} runs)`,
    );
    if (config.ros.publish_pruned_image) {
      log(
        'ros.publish_pruned_image: ~/debug/pruned_image is not published for an autoregressive package (its pipeline keeps no token selection)',
      );
    }
    return arNodePipeline(await arPipelineFromConfig(config, dir));
  }
  if (await isFlowPackage(dir)) {
    const pkg = await loadFlowPackage(dir);
    log(
      `flow package ${pkg.manifest.name}: cameras ${pkg.manifest.cameras.map((c) => c.name).join(' + ')}, ${pkg.manifest.denoising.steps} denoising steps, on cpu; warming up (${config.backend.warmup_runs} runs)`,
    );
    return flowNodePipeline(await flowPipelineFromConfig(config, pkg));
  }
  const model = await modelFromConfig(config);
  log(
    `creating sessions (${config.backend.execution_providers.join(' → ')}) and warming up (${config.backend.warmup_runs} runs)`,
  );
  return VlaPipeline.create(model, pipelineOptions(config, log));
};

const ROS_OPTIONS = {
  'auto-activate': {
    type: 'boolean',
    help: 'configure and activate on start, no lifecycle manager needed (ros.auto_activate)',
  },
  cameras: {
    type: 'string',
    help: 'comma-separated camera names, subscribed on ~/in/<name> (ros.cameras)',
  },
  'model-camera': {
    type: 'string',
    help: 'the camera whose frames trigger inferences (ros.model_camera; a one-camera model sees only it)',
  },
  'camera-topics': {
    type: 'string',
    help: 'comma-separated CAMERA=TOPIC pairs, each remapping ~/in/CAMERA (or ~/in/CAMERA/compressed) to TOPIC, e.g. table=/table_cam/image_raw,wrist=/wrist_cam/image_raw',
  },
  'image-transport': {
    type: 'string',
    help: 'raw: sensor_msgs/Image on ~/in/<name>; compressed: sensor_msgs/CompressedImage on ~/in/<name>/compressed (ros.image_transport)',
  },
  'joint-names': {
    type: 'string',
    help: 'comma-separated joint names of ~/out/action_chunk (ros.joint_names)',
  },
  'state-joint-names': {
    type: 'string',
    help: "comma-separated joints of ~/in/joint_states to read the state from, one per state dimension in the manifest's order (ros.state_joint_names)",
  },
  'pruned-image': {
    type: 'boolean',
    help: 'publish ~/debug/pruned_image (ros.publish_pruned_image)',
  },
  // Launch files pass these, the joint-name flags and --camera-topics empty when the parameter
  // file's value stands.
  model: { type: 'string', help: 'model package folder (model.path); empty: the parameter file' },
  precision: {
    type: 'string',
    help: 'fp32|fp16|int8|auto (model.precision); empty: the parameter file',
  },
} as const;

/** The ROS flags as parameter overrides (the parameter file holds every default). */
function rosFlagOverrides(values: OptionValues, autoActivate: boolean): string[] {
  const sets: string[] = [];
  const asList = (v: string): string =>
    `[${v
      .split(',')
      .map((s) => JSON.stringify(s.trim()))
      .join(', ')}]`;
  const given = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
  if (given(values.cameras)) sets.push(`ros.cameras=${asList(values.cameras)}`);
  if (given(values['joint-names'])) sets.push(`ros.joint_names=${asList(values['joint-names'])}`);
  if (given(values['state-joint-names']))
    sets.push(`ros.state_joint_names=${asList(values['state-joint-names'])}`);
  if (typeof values['model-camera'] === 'string')
    sets.push(`ros.model_camera=${JSON.stringify(values['model-camera'])}`);
  if (typeof values['image-transport'] === 'string')
    sets.push(`ros.image_transport=${values['image-transport']}`);
  if (autoActivate || values['auto-activate'] === true) sets.push('ros.auto_activate=true');
  if (values['pruned-image'] === true) sets.push('ros.publish_pruned_image=true');
  if (typeof values.model === 'string' && values.model !== '') {
    sets.push(`model.path=${JSON.stringify(values.model)}`);
  }
  if (typeof values.precision === 'string' && values.precision !== '') {
    sets.push(`model.precision=${values.precision}`);
  }
  return sets;
}

/**
 * `--camera-topics table=/a,wrist=/b` as rcl remappings of the cameras' private topics (a
 * `--ros-args` section of its own, which rcl merges with the others); empty: none.
 *
 * @throws {ConfigError} naming `--camera-topics` for an item that is not CAMERA=TOPIC.
 */
export function cameraTopicRemaps(value: unknown, transport: string): string[] {
  if (typeof value !== 'string' || value.trim() === '') return [];
  const args: string[] = [];
  for (const item of value.split(',')) {
    const match = /^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$/.exec(item);
    if (match === null) {
      throw new ConfigError(
        `Expected CAMERA=TOPIC items (a camera name, then the topic it reads) for --camera-topics but received "${item}"`,
        { field: '--camera-topics' },
      );
    }
    const suffix = transport === 'compressed' ? '/compressed' : '';
    args.push('-r', `~/in/${match[1] ?? ''}${suffix}:=${match[2] ?? ''}`);
  }
  return ['--ros-args', ...args, '--'];
}

/**
 * The live view shows one camera of an encoder + policy package: refused with a flow or an
 * autoregressive package, before ROS 2 is loaded.
 *
 * @throws {ConfigError} naming `foxglove.enabled`.
 */
async function refuseLiveView(config: Readonly<VlaConfig>): Promise<void> {
  if (!config.foxglove.enabled) return;
  const dir = resolvePackagePath(config.model.path);
  if (await isFlowPackage(dir)) {
    throw new ConfigError(
      'Expected foxglove.enabled false with a flow package: the live view shows one camera, and running flow packages with it is not supported yet',
      { field: 'foxglove.enabled' },
    );
  }
  if (await isArPackage(dir)) {
    throw new ConfigError(
      'Expected foxglove.enabled false with an autoregressive package: the live view reads an encoder + policy manifest and shows its token selection, which this family does not keep',
      { field: 'foxglove.enabled' },
    );
  }
}

/** Parameters with the ROS flags applied. */
export function rosConfig(
  values: OptionValues,
  autoActivate: boolean,
): Promise<Readonly<VlaConfig>> {
  const v = withFoxgloveFlag(values);
  const set = Array.isArray(v.set) ? v.set : [];
  return configFromArgs({ ...v, set: [...set, ...rosFlagOverrides(values, autoActivate)] });
}

async function runNode(
  ros: RosApi,
  config: Readonly<VlaConfig>,
  io: CommandIo,
  rosArgs: readonly string[],
): Promise<number> {
  // The live view needs only the manifest (action names, input geometry): the node loads the
  // model itself when it is configured.
  const live = config.foxglove.enabled
    ? await startLiveView(
        config,
        io,
        (await loadModelPackage(resolvePackagePath(config.model.path), { verifyHashes: false }))
          .manifest,
      )
    : undefined;
  let code: number;
  try {
    code = await runRosNode({
      ros,
      config,
      createPipeline,
      // No fixed options: the node reads its ros.* parameters (the file and the flags above as
      // defaults, then -p and `ros2 param set`); fixed options would mask them.
      argv: ['vla-node', ...rosArgs],
      log: (line) => {
        (live?.io ?? io).progress(line);
      },
      ...(live === undefined ? {} : { observer: live.view }),
    });
  } finally {
    await live?.close();
  }
  // The node is shut down and the model released: should a native handle keep the event loop
  // alive, end anyway (ros2 launch would otherwise escalate to SIGTERM and report a failure).
  setTimeout(() => process.exit(code), 3000).unref();
  return code;
}

/** `vla-node ros`: the managed ROS 2 node; fails with one clear message when rclnodejs cannot load. */
export const rosCommand: CommandSpec = {
  name: 'ros',
  summary:
    'the ROS 2 node (managed lifecycle node; needs a sourced ROS 2 and rclnodejs built against it)',
  positionals: '[-- --ros-args ...]',
  options: { ...ROS_OPTIONS, ...FOXGLOVE_OPTIONS, ...CONFIG_OPTIONS },
  async run(values, io, positionals) {
    const config = await rosConfig(values, false);
    const remaps = cameraTopicRemaps(values['camera-topics'], config.ros.image_transport);
    await refuseLiveView(config);
    // Without ROS 2 (or rclnodejs): the typed RosUnavailableError, printed as every command's.
    const ros = await loadRos();
    return runNode(ros, config, io, [...positionals, ...remaps]);
  },
};

export const startCommand: CommandSpec = {
  name: 'start',
  summary:
    'the main job: the ROS 2 node (auto-activated) when ROS 2 is sourced and rclnodejs loads, otherwise the simulation demo with the shipped model',
  options: {
    episodes: { type: 'string', help: 'demo episodes (sim.episodes)' },
    ...FOXGLOVE_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    let ros: RosApi | undefined;
    try {
      ros = await loadRos();
    } catch (error) {
      if (!(error instanceof RosUnavailableError)) throw error;
      io.progress(`${error.message}; running the built-in simulation demo instead`);
    }
    if (ros !== undefined) {
      const config = await rosConfig(values, true);
      await refuseLiveView(config);
      io.progress('ROS 2 and rclnodejs loaded: running the vla_node ROS 2 node (auto-activated)');
      return runNode(ros, config, io, []);
    }
    const config = await configFromArgs(withFoxgloveFlag(values), { episodes: 'sim.episodes' });
    io.progress(
      `simulation demo: ${config.sim.episodes} episodes of the tabletop (seed ${config.sim.seed}), model ${config.model.path}`,
    );
    if (await isArPackage(resolvePackagePath(config.model.path))) {
      if (config.foxglove.enabled) {
        throw new ConfigError(
          'Expected foxglove.enabled false with an autoregressive package: the live view runs the encoder + policy pipeline only',
          { field: 'foxglove.enabled' },
        );
      }
      const ar = await simulateAr(config, 'model', (line) => {
        io.progress(line);
      });
      io.result(ar, formatArReport(ar));
      return 0;
    }
    const report = await simulate(
      config,
      'model',
      (line) => {
        io.progress(line);
      },
      undefined,
      (manifest, overlay) => startLiveView(config, io, manifest, overlay),
    );
    io.result(report, formatReport(report));
    return 0;
  },
};
