/**
 * `vla-node/replay`: rosbag2 MCAP playback and recording (docs/replay.md): read bags, replay them
 * through a pipeline, write chunks back as ROS 2 messages, record simulated runs.
 *
 * @example
 * import { replay } from 'vla-node/replay';
 * const result = await replay('bags/run1', { pipeline });
 */
export * from './transports/mcap/index.js';
