import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../../src/cli/command.js';
import { rosCommand, startCommand } from '../../../src/cli/start.js';
import { RosUnavailableError } from '../../../src/transports/ros/load.js';

function io(): CommandIo & { lines: string[]; results: object[] } {
  const lines: string[] = [];
  const results: object[] = [];
  return {
    json: false,
    lines,
    results,
    progress: (m) => lines.push(m),
    result: (value) => results.push(value),
  };
}

describe('ros and start commands without ROS 2', () => {
  const saved = { ROS_DISTRO: process.env.ROS_DISTRO, AMENT: process.env.AMENT_PREFIX_PATH };
  beforeEach(() => {
    delete process.env.ROS_DISTRO;
    delete process.env.AMENT_PREFIX_PATH;
  });
  afterEach(() => {
    if (saved.ROS_DISTRO !== undefined) process.env.ROS_DISTRO = saved.ROS_DISTRO;
    if (saved.AMENT !== undefined) process.env.AMENT_PREFIX_PATH = saved.AMENT;
  });

  it('vla-node ros fails with the typed error every command prints', async () => {
    const out = io();
    const error: unknown = await rosCommand.run({}, out, []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RosUnavailableError);
    expect(error).toMatchObject({ code: 'ROS_UNAVAILABLE', field: 'rclnodejs' });
    const message = (error as Error).message;
    expect(message).toMatch(/^The ROS 2 node needs rclnodejs/);
    expect(message).toContain('`source /opt/ros/<distro>/setup.bash`');
    expect(message).toContain('npx node-gyp rebuild');
    expect(out.lines).toEqual([]);
  });

  it('vla-node ros rejects an unknown image transport', async () => {
    await expect(rosCommand.run({ 'image-transport': 'theora' }, io(), [])).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      field: 'ros.image_transport',
      message: expect.stringContaining('theora') as unknown,
    });
  });

  it('start explains in one line why it runs the simulation demo', async () => {
    const out = io();
    const code = await startCommand.run(
      { episodes: '1', set: ['sim.max_steps=3', 'backend.warmup_runs=1'] },
      out,
      [],
    );
    expect(code).toBe(0);
    const why = out.lines.filter((l) => l.includes('ROS 2 is not sourced'));
    expect(why).toHaveLength(1);
    expect(why[0]).toMatch(/running the built-in simulation demo instead$/);
    expect(out.results).toHaveLength(1);
  });
});
