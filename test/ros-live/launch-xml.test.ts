/**
 * Live ROS 2 graph: vla_node started by `ros2 launch ./launch/vla_node.launch.xml` from the
 * checkout with a namespace, a node name, compressed images and auto_activate; fed JPEG
 * sensor_msgs/CompressedImage from a reliable camera; ended by the lifecycle `shutdown` from the
 * active state (`ros2 lifecycle set`), after which the process and ros2 launch exit 0.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  announce,
  Cleanup,
  crashIn,
  LIVE_REASON,
  liveSession,
  LiveProcess,
  Probe,
  ros2Node,
  type PhotoFiles,
} from './support.js';

announce('launch-xml.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 62;
const NODE = '/robot/arm_vla';
const T = {
  camera: '/xml/camera/image_raw/compressed',
  instruction: '/xml/instruction',
  joints: '/xml/joint_states',
  trajectory: '/xml/plan',
  command: '/xml/command',
  raw: '/xml/raw',
} as const;

describe.skipIf(LIVE_REASON !== undefined)('live ROS 2: ros2 launch vla_node.launch.xml', () => {
  let env: NodeJS.ProcessEnv;
  let photo: PhotoFiles;
  let probe: Probe;
  let launch: LiveProcess;
  const cleanup = new Cleanup();

  beforeAll(async () => {
    ({ env, photo, probe } = await liveSession(DOMAIN, cleanup));
    launch = new LiveProcess(
      'ros2',
      [
        'launch',
        './launch/vla_node.launch.xml',
        'namespace:=/robot',
        'node_name:=arm_vla',
        'image_transport:=compressed',
        `image_topic:=${T.camera}`,
        `instruction_topic:=${T.instruction}`,
        `joint_states_topic:=${T.joints}`,
        `action_topic:=${T.trajectory}`,
        `command_topic:=${T.command}`,
        `action_raw_topic:=${T.raw}`,
        'auto_activate:=true',
      ],
      env,
    );
    cleanup.add(() => launch.kill());
    await probe.ready();
    await probe.send({ op: 'subscribe', topic: T.trajectory, type: 'trajectory' });
    await probe.send({ op: 'subscribe', topic: T.command, type: 'command' });
    await probe.send({ op: 'subscribe', topic: '/diagnostics', type: 'diagnostics' });
  });

  afterAll(() => cleanup.run());

  it('auto_activate brings the named, namespaced node up to active', async () => {
    await launch.waitOutput(/ready: model warmed up/);
    const r = await ros2Node(env, ['lifecycle', 'get', NODE]);
    expect(r.out).toMatch(/^active \[3\]/m);
    const info = await ros2Node(env, ['node', 'info', NODE]);
    for (const topic of [T.camera, T.instruction, T.joints, T.trajectory, T.command, T.raw]) {
      expect(info.out).toContain(topic);
    }
  });

  it('JPEG CompressedImage frames from a reliable camera drive the trajectory and the command', async () => {
    await probe.send({
      op: 'joint_states',
      id: 'joints',
      topic: T.joints,
      names: ['y', 'x'], // matched by name, not order
      positions: [0.3, 0.7],
      rate_hz: 10,
    });
    await probe.send({
      op: 'compressed',
      id: 'camera',
      topic: T.camera,
      file: photo.jpeg,
      format: 'jpeg',
      reliability: 'reliable',
      rate_hz: 10,
    });
    await probe.send({
      op: 'instruction',
      id: 'task',
      topic: T.instruction,
      data: 'reach the blue block',
    });
    const trajectory = await probe.next(T.trajectory);
    expect(trajectory.joint_names).toEqual(['x', 'y']); // the manifest's action names
    const command = await probe.next(T.command);
    expect(command.data).toHaveLength(2);
    const s = await probe.status((x) => Number(x.values['chunks published']) > 0, 'arm_vla');
    expect(s.values['dropped compressed image']).toBe('0');
    expect(Number(s.values['frames received'])).toBeGreaterThan(0);
  });

  it('lifecycle shutdown from active ends the node and ros2 launch with exit 0', async () => {
    const r = await ros2Node(env, ['lifecycle', 'set', NODE, 'shutdown']);
    expect(r.out).toMatch(/Transitioning successful/);
    const exit = await launch.exited;
    expect(crashIn(launch.output)).toBeUndefined();
    expect(launch.output).toMatch(/stopping \(lifecycle shutdown\)/);
    expect(launch.output).toMatch(/process has finished cleanly/);
    expect(exit.code).toBe(0);
  });
});
