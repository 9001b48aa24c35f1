/**
 * Live ROS 2 graph: vla_node started by `ros2 launch ./launch/vla_node.launch.py` from the
 * checkout, brought up with `ros2 lifecycle set`, fed by an rclpy camera driver, joint state
 * publisher and task planner (probe.py), its outputs read back over DDS, its parameters set with
 * `ros2 param set`, and stopped with Ctrl-C (SIGINT to ros2 launch).
 *
 * One node serves the file's cases in order, as a robot's node does across a session.
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
  type NodeStatus,
  type PhotoFiles,
  launchPy,
} from './support.js';

announce('launch-py.test.ts');
// Each case waits on real processes on a loaded 2-core machine: generous, and failing, limits.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 61;
const T = {
  camera: '/live/camera/image_raw',
  instruction: '/live/instruction',
  joints: '/live/joint_states',
  trajectory: '/live/action_chunk',
  command: '/live/command',
  raw: '/live/action_chunk_raw',
  diagnostics: '/diagnostics',
  processing: '/vla_node/debug/processing_time_ms',
} as const;

/** The keys /diagnostics carries (README, "On a robot with ROS 2"). */
const DIAGNOSTIC_KEYS = [
  'lifecycle state',
  'provider',
  'latency p50 ms',
  'latency p95 ms',
  'latency p99 ms',
  'processing time ms',
  'deadline misses',
  'consecutive deadline misses',
  'safe hold',
  'safe hold steps',
  'kept token ratio',
  'frames received',
  'frames dropped',
  'chunks published',
  'dropped image encoding',
  'dropped image size',
];

describe.skipIf(LIVE_REASON !== undefined)('live ROS 2: ros2 launch vla_node.launch.py', () => {
  let env: NodeJS.ProcessEnv;
  let photo: PhotoFiles;
  let probe: Probe;
  let launch: LiveProcess;
  const cleanup = new Cleanup();

  const count = (s: NodeStatus, key: string): number => Number(s.values[key]);

  beforeAll(async () => {
    ({ env, photo, probe } = await liveSession(DOMAIN, cleanup));
    launch = launchPy(T, [`image_topic:=${T.camera}`, 'joint_names:=arm_x,arm_y'], env, cleanup);
    await probe.ready();
    await probe.subscribe([
      [T.trajectory, 'trajectory'],
      [T.command, 'command'],
      [T.raw, 'raw'],
      [T.diagnostics, 'diagnostics'],
      [T.processing, 'float64'],
    ]);
  });

  afterAll(() => cleanup.run());

  it('starts unconfigured under ros2 launch (ros2 lifecycle get)', async () => {
    await launch.waitOutput(/unconfigured; `ros2 lifecycle set/);
    const r = await ros2Node(env, ['lifecycle', 'get', '/vla_node']);
    expect(r.out).toMatch(/^unconfigured \[1\]/m);
  });

  it('configure: a transient-local instruction published before the node subscribed reaches it', async () => {
    // The task planner publishes once, before the node's subscription exists (it is created at
    // configure): transient local durability must deliver it to the late-joining node.
    await probe.send({
      op: 'instruction',
      id: 'task',
      topic: T.instruction,
      data: 'reach the red block',
    });
    const r = await ros2Node(env, ['lifecycle', 'set', '/vla_node', 'configure']);
    expect(r.out).toMatch(/Transitioning successful/);
    await launch.waitOutput(/instruction: reach the red block/);
    const s = await probe.status((x) => x.message === 'inactive (holding)');
    expect(s.level).toBe(0);
    expect(s.hardware_id).toBe('vla_node');
    expect(Object.keys(s.values)).toEqual(expect.arrayContaining(DIAGNOSTIC_KEYS));
    expect(s.values['lifecycle state']).toBe('inactive');
    expect(s.values.provider).toBe('cpu');
  });

  it('ros2 param set: a valid value is taken, invalid and read-only ones are refused with the reason', async () => {
    const ok = await ros2Node(env, ['param', 'set', '/vla_node', 'pruning.keep_ratio', '0.5']);
    expect(ok.out).toMatch(/Set parameter successful/);
    const got = await ros2Node(env, ['param', 'get', '/vla_node', 'pruning.keep_ratio']);
    expect(got.out).toMatch(/Double value is: 0\.5/);

    const range = await ros2Node(env, ['param', 'set', '/vla_node', 'pruning.keep_ratio', '7.0']);
    expect(range.out).toMatch(/Setting parameter failed/);
    const wrongType = await ros2Node(env, [
      'param',
      'set',
      '/vla_node',
      'runtime.merge_mode',
      'sideways',
    ]);
    expect(wrongType.out).toMatch(/Setting parameter failed/);
    expect(wrongType.out).toMatch(/merge_mode/);
    const readOnly = await ros2Node(env, [
      'param',
      'set',
      '/vla_node',
      'ros.auto_activate',
      'true',
    ]);
    expect(readOnly.out).toMatch(/Setting parameter failed/);
    const after = await ros2Node(env, ['param', 'get', '/vla_node', 'pruning.keep_ratio']);
    expect(after.out).toMatch(/Double value is: 0\.5/);

    // Diagnostics settings apply at once: the status carries the new hardware id.
    const hw = await ros2Node(env, [
      'param',
      'set',
      '/vla_node',
      'ros.diagnostics.hardware_id',
      'arm_2',
    ]);
    expect(hw.out).toMatch(/Set parameter successful/);
    await probe.status((x) => x.hardware_id === 'arm_2');
  });

  it('activate: a best-effort rgb8 640x480 photograph and joint states give trajectory, command, raw chunk and diagnostics', async () => {
    await probe.send({
      op: 'joint_states',
      id: 'joints',
      topic: T.joints,
      names: ['x', 'y', 'gripper'],
      positions: [0.4, 0.6, 0],
      rate_hz: 10,
    });
    await probe.send({
      op: 'image',
      id: 'camera',
      topic: T.camera,
      file: photo.rgb,
      encoding: 'rgb8',
      width: photo.width,
      height: photo.height,
      reliability: 'best_effort',
      rate_hz: 10,
    });
    const r = await ros2Node(env, ['lifecycle', 'set', '/vla_node', 'activate']);
    expect(r.out).toMatch(/Transitioning successful/);

    const trajectory = await probe.next(T.trajectory);
    expect(trajectory.joint_names).toEqual(['arm_x', 'arm_y']);
    const points = trajectory.points as {
      positions: number[];
      time_from_start: { sec: number; nanosec: number };
    }[];
    expect(points.length).toBeGreaterThan(0);
    points.forEach((p, i) => {
      expect(p.positions).toHaveLength(2);
      for (const v of p.positions) expect(v >= 0 && v <= 1).toBe(true); // the model's limits
      // time_from_start = (i + 1) / control rate (the manifest's 10 Hz)
      expect(p.time_from_start.sec + p.time_from_start.nanosec / 1e9).toBeCloseTo((i + 1) / 10, 6);
    });
    const stamp = trajectory.header as { stamp: { sec: number } };
    expect(Math.abs(stamp.stamp.sec - Date.now() / 1000)).toBeLessThan(120); // wall time

    const command = await probe.next(T.command);
    expect(command.data).toHaveLength(2);
    for (const v of command.data as number[])
      expect(Number.isFinite(v) && v >= 0 && v <= 1).toBe(true);
    expect((command.layout as { dim: { label: string; size: number }[] }).dim[0]).toMatchObject({
      label: 'joints',
      size: 2,
    });

    const raw = await probe.next(T.raw);
    const dims = (raw.layout as { dim: { label: string; size: number }[] }).dim;
    expect(dims.map((d) => d.size)).toEqual([8, 2]);
    expect(raw.data).toHaveLength(16);

    const processing = await probe.next(T.processing);
    expect(processing.data as number).toBeGreaterThan(0);

    const s = await probe.status(
      (x) => x.message === 'running' && count(x, 'chunks published') > 0,
    );
    expect(s.level).toBe(0);
    expect(s.values['lifecycle state']).toBe('active');
    expect(count(s, 'frames received')).toBeGreaterThan(0);
    // pruning.strategy is none: every token kept (keep_ratio changes apply at the next configure)
    expect(count(s, 'kept token ratio')).toBe(1);
  });

  it('a reliable camera is delivered as well as a best-effort one (bgr8)', async () => {
    await probe.send({ op: 'stop', id: 'camera' });
    const before = await probe.status(() => true);
    await probe.send({
      op: 'image',
      id: 'camera',
      topic: T.camera,
      file: photo.bgr,
      encoding: 'bgr8',
      width: photo.width,
      height: photo.height,
      reliability: 'reliable',
      rate_hz: 10,
    });
    await probe.status((x) => count(x, 'frames received') >= count(before, 'frames received') + 5);
  });

  it('bad images (wrong size, unknown encoding) are counted and dropped while the node keeps serving', async () => {
    await probe.send({
      op: 'image',
      id: 'bad-size',
      topic: T.camera,
      file: photo.rgb,
      encoding: 'rgb8',
      width: 320, // the data holds 640x480 pixels
      height: 240,
      reliability: 'best_effort',
      rate_hz: 5,
    });
    await probe.send({
      op: 'image',
      id: 'bad-encoding',
      topic: T.camera,
      file: photo.rgb,
      encoding: 'hsv8',
      width: photo.width,
      height: photo.height,
      reliability: 'best_effort',
      rate_hz: 5,
    });
    const s = await probe.status(
      (x) => count(x, 'dropped image size') > 0 && count(x, 'dropped image encoding') > 0,
    );
    await probe.send({ op: 'stop', id: 'bad-size' });
    await probe.send({ op: 'stop', id: 'bad-encoding' });
    await launch.waitOutput(/dropped|image size|encoding "hsv8"/);
    // Still serving: more chunks are published after the bad frames.
    await probe.status((x) => count(x, 'chunks published') > count(s, 'chunks published') + 2);
    expect(launch.running).toBe(true);
  });

  it('deactivate holds (diagnostics say so) and Ctrl-C ends ros2 launch with exit 0 and no native crash', async () => {
    const r = await ros2Node(env, ['lifecycle', 'set', '/vla_node', 'deactivate']);
    expect(r.out).toMatch(/Transitioning successful/);
    await probe.status((x) => x.message === 'inactive (holding)');
    launch.signal('SIGINT');
    const exit = await launch.exited;
    expect(crashIn(launch.output)).toBeUndefined();
    expect(launch.output).toMatch(/vla_node: stopping \(SIGINT\)/);
    expect(launch.output).toMatch(/process has finished cleanly/);
    expect(exit.code).toBe(0);
  });
});
