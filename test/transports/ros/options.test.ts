import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import {
  DEFAULT_ROS_NODE_OPTIONS,
  rosNodeOptionsFromConfig,
} from '../../../src/transports/ros/index.js';

describe('ROS node options', () => {
  it('have the parameter file as their source of defaults (the code copy cannot drift)', async () => {
    const config = await loadConfig();
    expect(rosNodeOptionsFromConfig(config.ros)).toEqual(DEFAULT_ROS_NODE_OPTIONS);
  });

  it('follow the parameters', async () => {
    const config = await loadConfig({
      overrides: { 'ros.cameras': ['front', 'wrist'], 'ros.qos.action_depth': 3 },
    });
    const options = rosNodeOptionsFromConfig(config.ros);
    expect(options.cameras).toEqual(['front', 'wrist']);
    expect(options.qos.actionDepth).toBe(3);
  });
});
