import { detectRos } from '../transports/ros/load.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs } from './setup.js';
import { formatReport, simulate } from './sim.js';

export const startCommand: CommandSpec = {
  name: 'start',
  summary:
    'the main job: the ROS 2 node when ROS 2 is sourced, otherwise the simulation demo with the shipped model',
  options: {
    episodes: { type: 'string', help: 'demo episodes (sim.episodes)' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const ros = detectRos();
    io.progress(ros.message);
    const config = await configFromArgs(values, { episodes: 'sim.episodes' });
    io.progress(
      `simulation demo: ${config.sim.episodes} episodes of the tabletop (seed ${config.sim.seed}), model ${config.model.path}`,
    );
    const report = await simulate(config, 'model', (line) => {
      io.progress(line);
    });
    io.result(report, formatReport(report));
    return 0;
  },
};
