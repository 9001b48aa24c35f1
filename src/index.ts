/**
 * vla-node's library API (`vla-node`): the core pipeline and the pieces users script against
 * (model packages, configuration, the simulator), without loading ZeroMQ or MCAP. The transports
 * have their own entry points: `vla-node/bridge` (ZeroMQ bridge server and client),
 * `vla-node/replay` (rosbag2 MCAP) and `vla-node/ros` (the ROS 2 node); `vla-node/core` is the core
 * alone. The CLI (`vla-node`) is built on the same exports.
 *
 * @example
 * import { loadConfig, loadModelPackage, pipelineOptions, VlaPipeline } from 'vla-node';
 * const config = await loadConfig();
 * const pipeline = await VlaPipeline.create(await loadModelPackage('models/tiny-vla'), pipelineOptions(config, console.log));
 */
import type * as Mcap from './transports/mcap/index.js';

export * from './core.js';
export { TabletopSim } from './sim/tabletop.js';
export { runEpisodes, pipelineAgent, expertAgent, blindAgent } from './sim/runner.js';

// Bag replay and recording stay callable from the root, as before the subpath entry points, but
// load MCAP only when called: importing `vla-node` loads no MCAP module.

/** {@link Mcap.replay} of `vla-node/replay`, loaded on first call. */
export async function replay(
  ...args: Parameters<typeof Mcap.replay>
): ReturnType<typeof Mcap.replay> {
  return (await import('./transports/mcap/index.js')).replay(...args);
}

/** {@link Mcap.recordSim} of `vla-node/replay`, loaded on first call. */
export async function recordSim(
  ...args: Parameters<typeof Mcap.recordSim>
): ReturnType<typeof Mcap.recordSim> {
  return (await import('./transports/mcap/index.js')).recordSim(...args);
}

/** {@link Mcap.readBag} of `vla-node/replay`, loaded on first call. */
export async function* readBag(
  ...args: Parameters<typeof Mcap.readBag>
): ReturnType<typeof Mcap.readBag> {
  yield* (await import('./transports/mcap/index.js')).readBag(...args);
}
