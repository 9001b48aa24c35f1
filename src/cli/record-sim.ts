import { resolvePackagePath } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { isArPackage, loadArManifest } from '../model/ar-manifest.js';
import { isFlowPackage, loadFlowPackage } from '../model/flow-manifest.js';
import { bagOutput, recordSim } from '../transports/mcap/index.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig } from './setup.js';

/** Flags of `record-sim` that set a parameter, flag → dotted key. */
const FLAG_KEYS = {
  episodes: 'sim.episodes',
  seed: 'sim.seed',
  model: 'model.path',
} as const;

export async function runRecordSim(values: OptionValues, io: CommandIo): Promise<number> {
  const out = values.out;
  if (typeof out !== 'string' || out === '') {
    throw new ConfigError('Expected --out DIR (the bag folder to create) but received none', {
      field: 'out',
    });
  }
  const config = await configFromArgs(values, FLAG_KEYS);
  // A flow package's cameras are all recorded (table on /camera/image_raw, wrist on
  // /wrist_camera/image_raw), so that `replay` can feed it the bag.
  const dir = resolvePackagePath(config.model.path);
  // An autoregressive package's one camera likewise (format v2 names it).
  const v2 = (await isFlowPackage(dir))
    ? await loadFlowPackage(dir)
    : (await isArPackage(dir))
      ? await loadArManifest(dir)
      : undefined;
  const model = v2 ?? (await modelFromConfig(config));
  const m = model.manifest;
  const cameras = v2?.manifest.cameras.map((c) => c.name) ?? ['table'];
  await checkOutputs(
    values,
    [bagOutput('out', out)],
    [{ what: 'the model package', path: model.dir, enclosing: true }],
  );
  io.progress(
    `recording ${config.sim.episodes} expert episodes (seed ${config.sim.seed}, camera${cameras.length === 1 ? '' : 's'} ${cameras.join(' + ')}) at ${m.control_rate_hz} Hz into ${out}...`,
  );
  const result = await recordSim({
    out,
    episodes: config.sim.episodes,
    seed: config.sim.seed,
    controlRateHz: m.control_rate_hz,
    horizon: m.chunk.horizon,
    cameraWidth: config.sim.camera_width,
    cameraHeight: config.sim.camera_height,
    maxSteps: config.sim.max_steps,
    cameras,
  });
  io.result(
    { ...result, seed: config.sim.seed, control_rate_hz: m.control_rate_hz },
    `recorded ${result.episodes} episodes (${result.successes} reached the goal), ${result.frames} frames into ${result.out}\n  messages: ${Object.entries(
      result.messages,
    )
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}`,
  );
  return 0;
}

export const recordSimCommand: CommandSpec = {
  name: 'record-sim',
  summary:
    'record expert-driven episodes of the built-in simulator as a rosbag2 MCAP bag (camera, joint states, instruction, expert actions; every camera of a flow package)',
  options: {
    out: {
      type: 'string',
      help: 'bag folder to create (must be new or empty), or an .mcap file (an existing one needs --force)',
    },
    ...FORCE_OPTION,
    episodes: { type: 'string', help: 'number of episodes (sim.episodes)' },
    seed: { type: 'string', help: 'seed of the episode sequence (sim.seed)' },
    model: {
      type: 'string',
      help: 'model package whose control rate, horizon and cameras to use (model.path)',
    },
    ...CONFIG_OPTIONS,
  },
  run: runRecordSim,
};
