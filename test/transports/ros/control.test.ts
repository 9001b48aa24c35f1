/**
 * The ROS node runs the one control loop: the per-period command and the merged plan it
 * publishes are the executor's output in every merge mode, and every `ros.*` parameter works
 * from `-p` and, where it can, from `ros2 param set`.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { PARAMETER_TYPE } from '../../../src/transports/ros/api.js';
import type {
  RosFloat64MultiArray,
  RosJointTrajectory,
} from '../../../src/transports/ros/messages.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import { createRosDouble, type DoubleLifecycleNode } from './double.js';
import { FakePipeline, image, jointState } from './support.js';

const CONTROL = 100_000_000n;

async function node(
  rosOverrides: Record<string, string>,
  pipeline = new FakePipeline(),
): Promise<{
  vla: VlaRosNode;
  node: DoubleLifecycleNode;
  pipeline: FakePipeline;
  api: ReturnType<typeof createRosDouble>['api'];
  tick(): Promise<void>;
  commands(): number[][];
  plans(): RosJointTrajectory[];
}> {
  const { api, nodes } = createRosDouble(rosOverrides);
  let now = 1_700_000_000_000;
  const vla = new VlaRosNode({
    ros: api,
    config: await loadConfig({}),
    createPipeline: () => Promise.resolve(pipeline),
    clock: () => now,
  });
  const n = nodes[0];
  if (n === undefined) throw new Error('no node');
  return {
    vla,
    node: n,
    pipeline,
    api,
    async tick() {
      now += 100;
      n.fire(CONTROL);
      await vla.idle();
    },
    commands: () =>
      (n.publisher('~/out/command').messages as RosFloat64MultiArray[]).map((m) =>
        Array.from(m.data),
      ),
    plans: () => n.publisher('~/out/action_chunk').messages as RosJointTrajectory[],
  };
}

async function running(
  rosOverrides: Record<string, string>,
  pipeline = new FakePipeline(),
): Promise<Awaited<ReturnType<typeof node>>> {
  const h = await node(rosOverrides, pipeline);
  h.node.configure();
  await h.vla.whenLoaded();
  h.node.activate();
  h.node.deliver('~/in/instruction', { data: 'go' });
  h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0.1, 0.2]));
  return h;
}

describe('VlaRosNode control loop', () => {
  it('publishes the command of every control period, safe holds included', async () => {
    const h = await running({ 'runtime.merge_mode': 'replace' });
    h.node.deliver('~/in/image', image(1));
    await h.tick(); // step 0: query (nothing to follow yet: no command)
    expect(h.commands()).toEqual([]);
    for (let i = 0; i < 5; i++) await h.tick(); // steps 1..3 from the plan, 4..5 safe hold
    const f = Math.fround;
    // the fake policy's action d is state d + 0.01 i, state in the manifest order (elbow, shoulder)
    expect(h.commands()).toEqual([
      [f(0.21), f(0.11)],
      [f(0.22), f(0.12)],
      [f(0.23), f(0.13)],
      [f(0.23), f(0.13)], // safe hold: the last command
      [f(0.23), f(0.13)],
    ]);
    const command = h.node.publisher('~/out/command').messages[0] as RosFloat64MultiArray;
    expect(command.layout.dim).toEqual([{ label: 'joints', size: 2, stride: 2 }]);
    expect(command.data).toBeInstanceOf(Float64Array);
    expect(h.vla.stats.deadlineMisses).toBe(2);
  });

  it('commands are limited by the pipeline limits (the executor, not the raw chunk)', async () => {
    class Limited extends FakePipeline {
      override readonly actionLimits = { min: [-1, -1], max: [1, 1], maxDeltaPerStep: 0.005 };
    }
    const h = await running({ 'runtime.merge_mode': 'replace' }, new Limited());
    h.node.deliver('~/in/image', image(1));
    for (let i = 0; i < 3; i++) await h.tick();
    const [first, second] = h.commands();
    expect(first).toBeDefined();
    expect(Math.abs((second?.[0] ?? 0) - (first?.[0] ?? 0))).toBeLessThanOrEqual(0.005 + 1e-7);
  });

  it('ensemble: the trajectory is the merged plan, not the newest chunk', async () => {
    const h = await running({ 'runtime.merge_mode': 'ensemble', 'runtime.margin_steps': '2' });
    h.node.deliver('~/in/image', image(1));
    await h.tick(); // query from step 0
    h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0.5, 0.6]));
    h.node.deliver('~/in/image', image(2));
    await h.tick(); // step 1: margin 2 asks again from step 1
    const plans = h.plans();
    expect(plans).toHaveLength(2);
    const raw = h.node.publisher('~/out/action_chunk_raw').messages.at(-1) as {
      data: Float32Array;
    };
    const merged = plans[1]?.points[0]?.positions[0] ?? 0;
    // chunk 2 alone has 0.61 for step 2 (elbow 0.6 + 0.01); the ensemble blends in chunk 1's 0.22
    expect(raw.data[2]).toBeCloseTo(0.61, 5);
    expect(merged).toBeGreaterThan(0.23);
    expect(merged).toBeLessThan(0.6);
    await h.tick();
    expect(h.commands().at(-1)?.[0]).toBeCloseTo(merged, 6);
  });

  it('sync: the robot holds still at the measured position while the chunk is computed', async () => {
    const h = await running({ 'runtime.merge_mode': 'sync', 'runtime.execute_steps': '2' });
    h.node.deliver('~/in/image', image(1));
    await h.tick(); // step 0: query
    await h.tick(); // step 1
    await h.tick(); // step 2
    expect(h.commands()).toHaveLength(2);
    expect(h.vla.stats.deadlineMisses).toBe(0);
  });
});

describe('VlaRosNode time', () => {
  it('with use_sim_time, diagnostics are stamped with the /clock time (the node ROS clock)', async () => {
    const h = await node({ use_sim_time: 'true' });
    h.node.simTimeNs = 42_500_000_000n;
    expect(h.vla.diagnostics().header.stamp).toEqual({ sec: 42, nanosec: 500_000_000 });
  });
});

describe('VlaRosNode ros.* parameters', () => {
  it('reads every ros.* key from -p (cameras, transport, QoS, joint names, diagnostics)', async () => {
    const h = await node({
      'ros.cameras': '[left, right]',
      'ros.model_camera': 'right',
      'ros.image_transport': 'compressed',
      'ros.qos.image': 'reliable',
      'ros.qos.action_depth': '3',
      'ros.joint_names': '[j1, j2]',
      'ros.publish_pruned_image': 'true',
      'ros.diagnostics.hardware_id': 'arm0',
    });
    h.node.configure();
    const topics = h.node.subscriptions.map((s) => s.topic);
    expect(topics).toContain('~/in/left/compressed');
    expect(topics).toContain('~/in/right/compressed');
    expect(h.node.subscriptions[0]?.options.qos).toMatchObject({ depth: 1, reliability: 1 });
    expect(h.node.publisher('~/out/action_chunk').options?.qos).toMatchObject({ depth: 3 });
    expect(h.node.publisher('~/debug/pruned_image')).toBeDefined();
    expect(h.vla.options.jointNames).toEqual(['j1', 'j2']);
    expect(h.vla.diagnostics().status[0]?.hardware_id).toBe('arm0');
  });

  it('ros2 param set changes diagnostics thresholds at once; ros.auto_activate is read-only', async () => {
    const h = await node({});
    const set = (name: string, type: number, value: unknown) =>
      // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- rcl's const enum
      h.node.setParameter(new h.api.Parameter(name, type, value));
    expect(set('ros.diagnostics.hardware_id', 4, 'arm1')).toEqual({ successful: true, reason: '' });
    expect(h.vla.diagnostics().status[0]?.hardware_id).toBe('arm1');
    expect(h.node.descriptors.get('ros.auto_activate')?.readOnly).toBe(true);
    expect(set('ros.auto_activate', PARAMETER_TYPE.bool as unknown as number, true)).toEqual({
      successful: false,
      reason: 'Parameter ros.auto_activate is readonly',
    });
    expect(set('ros.no_such_key', 4, 'x')).toMatchObject({ successful: false });
  });

  it('-p with ROS types: an integer for a double, integer and double arrays, a bool', async () => {
    const h = await node({
      'pruning.keep_ratio': '1',
      'runtime.control_rate_hz': '20',
      'safety.action_min': '[-1.0, -1.0]',
      'safety.action_max': '[1, 1]',
      'backend.warmup_runs': '2',
      'ros.auto_activate': 'false',
    });
    expect(h.vla.config.pruning.keep_ratio).toBe(1);
    expect(h.vla.config.runtime.control_rate_hz).toBe(20);
    expect(h.vla.config.safety.action_min).toEqual([-1, -1]);
    expect(h.vla.config.safety.action_max).toEqual([1, 1]);
    // declared with the schema's types, whatever rcl parsed
    expect(h.node.parameters.get('runtime.control_rate_hz')?.type).toBe(PARAMETER_TYPE.double);
    expect(h.node.parameters.get('runtime.control_rate_hz')?.value).toBe(20);
    expect(h.node.parameters.get('backend.warmup_runs')?.value).toBe(2n);
    expect(h.node.parameters.get('safety.action_max')?.value).toEqual([1, 1]);
  });
});
