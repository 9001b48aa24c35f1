/**
 * Live ROS 2 graph: `node bin/vla-node.js ros` started as a user does without launch, with rcl
 * `-p` overrides typed the way rcl types them (integers for a double, a list of doubles) and
 * remappings; fed bgr8 frames of a real photograph; its command kept within the `-p` safety
 * limits; ended by SIGTERM with exit 0.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  announce,
  Cleanup,
  crashIn,
  LIVE_REASON,
  liveSession,
  LiveProcess,
  nodeStatus,
  Probe,
  ros2Node,
  type PhotoFiles,
} from './support.js';

announce('cli.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 63;
const NODE = '/cli/vla_node';

describe.skipIf(LIVE_REASON !== undefined)('live ROS 2: node bin/vla-node.js ros', () => {
  let env: NodeJS.ProcessEnv;
  let photo: PhotoFiles;
  let probe: Probe;
  let node: LiveProcess;
  const cleanup = new Cleanup();

  beforeAll(async () => {
    ({ env, photo, probe } = await liveSession(DOMAIN, cleanup));
    node = new LiveProcess(
      process.execPath,
      [
        'bin/vla-node.js',
        'ros',
        '--auto-activate',
        '--',
        '--ros-args',
        '-r',
        '__ns:=/cli',
        '-r',
        '~/in/image:=/cli/camera',
        '-r',
        '~/in/instruction:=/cli/instruction',
        '-r',
        '~/in/joint_states:=/cli/joint_states',
        '-p',
        'runtime.control_rate_hz:=20', // an integer where the schema has a double
        '-p',
        'safety.action_min:=[0.2,0.2]',
        '-p',
        'safety.action_max:=[0.8,0.8]',
        '-p',
        'runtime.merge_mode:=ensemble',
        '-p',
        'ros.diagnostics.hardware_id:=cli_arm',
      ],
      env,
    );
    cleanup.add(() => node.kill());
    await probe.ready();
    await probe.send({
      op: 'subscribe',
      topic: '/cli/vla_node/out/action_chunk',
      type: 'trajectory',
    });
    await probe.send({ op: 'subscribe', topic: '/cli/vla_node/out/command', type: 'command' });
    await probe.send({ op: 'subscribe', topic: '/diagnostics', type: 'diagnostics' });
  });

  afterAll(() => cleanup.run());

  it('takes rcl-typed -p overrides: ros2 param get shows them with the schema types', async () => {
    await node.waitOutput(/ready: model warmed up/);
    const rate = await ros2Node(env, ['param', 'get', NODE, 'runtime.control_rate_hz']);
    expect(rate.out).toMatch(/Double value is: 20\.0/);
    const min = await ros2Node(env, ['param', 'get', NODE, 'safety.action_min']);
    expect(min.out).toMatch(/Double values are: \[0\.2, 0\.2\]/);
    const mode = await ros2Node(env, ['param', 'get', NODE, 'runtime.merge_mode']);
    expect(mode.out).toMatch(/String value is: ensemble/);
  });

  it('bgr8 frames drive it at 20 Hz; every command stays within the -p safety limits', async () => {
    await probe.send({
      op: 'joint_states',
      id: 'joints',
      topic: '/cli/joint_states',
      names: ['x', 'y'],
      positions: [0.5, 0.5],
      rate_hz: 20,
    });
    await probe.send({
      op: 'image',
      id: 'camera',
      topic: '/cli/camera',
      file: photo.bgr,
      encoding: 'bgr8',
      width: photo.width,
      height: photo.height,
      reliability: 'best_effort',
      rate_hz: 10,
    });
    await probe.send({
      op: 'instruction',
      id: 'task',
      topic: '/cli/instruction',
      data: 'reach the green block',
    });
    const trajectory = await probe.next('/cli/vla_node/out/action_chunk');
    const points = trajectory.points as {
      positions: number[];
      time_from_start: { nanosec: number };
    }[];
    expect(points[0]?.time_from_start.nanosec).toBe(50_000_000); // 1 / 20 Hz
    for (const p of points) for (const v of p.positions) expect(v >= 0.2 && v <= 0.8).toBe(true);
    await probe.next('/cli/vla_node/out/command', (m) => probe.on(m.topic).length >= 10);
    for (const c of probe.on('/cli/vla_node/out/command')) {
      for (const v of c.data as number[]) expect(v >= 0.2 - 1e-9 && v <= 0.8 + 1e-9).toBe(true);
    }
    const d = await probe.next(
      '/diagnostics',
      (m) => nodeStatus(m)?.values['chunks published'] !== '0',
    );
    expect(nodeStatus(d)?.hardware_id).toBe('cli_arm');
  });

  it('SIGTERM runs the lifecycle shutdown and exits 0 with no native crash', async () => {
    node.signal('SIGTERM');
    const exit = await node.exited;
    expect(crashIn(node.output)).toBeUndefined();
    expect(node.output).toMatch(/vla_node: stopping \(SIGTERM\)/);
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
