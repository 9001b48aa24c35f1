import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { rosNodeOptions, rosNodeOptionsFromConfig } from '../../../src/transports/ros/index.js';

describe('ROS node options', () => {
  it('have the parameter file as their only source of defaults', async () => {
    const config = await loadConfig();
    expect(rosNodeOptions()).toEqual(rosNodeOptionsFromConfig(config.ros));
    const some = rosNodeOptions({ cameras: ['front'], qos: { actionDepth: 3 } });
    expect(some.cameras).toEqual(['front']);
    expect(some.qos).toEqual({ image: config.ros.qos.image, actionDepth: 3 });
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
