import { describe, expect, it } from 'vitest';
import { loadConfig, type VlaConfig } from '../../../src/config/index.js';
import { PARAMETER_TYPE } from '../../../src/transports/ros/api.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import type {
  RosDiagnosticArray,
  RosCompressedImage,
  RosFloat32MultiArray,
  RosImage,
  RosJointTrajectory,
} from '../../../src/transports/ros/messages.js';
import {
  rosNodeOptionsFromConfig,
  type RosNodeOptionsInput,
} from '../../../src/transports/ros/options.js';
import { createRosDouble, type DoubleLifecycleNode } from './double.js';
import { compressed, FakePipeline, image, jointState } from './support.js';

const CONTROL = 100_000_000n; // 10 Hz, the manifest's rate
const DIAGNOSTICS = 1_000_000_000n;

interface Harness {
  readonly vla: VlaRosNode;
  readonly node: DoubleLifecycleNode;
  readonly pipeline: FakePipeline;
  readonly api: ReturnType<typeof createRosDouble>['api'];
  /** One control step: advance the clock 100 ms, fire the control timer, let inference finish. */
  tick(): Promise<void>;
  /** Advance the clock without firing a timer. */
  advance(ms: number): void;
  diagnostics(): RosDiagnosticArray;
}

async function harness(
  overrides: Readonly<Record<string, unknown>> = {},
  options: RosNodeOptionsInput = {},
  rosOverrides: Readonly<Record<string, string>> = {},
  pipeline = new FakePipeline(),
  loader?: (config: Readonly<VlaConfig>) => Promise<FakePipeline>,
): Promise<Harness> {
  const { api, nodes } = createRosDouble(rosOverrides);
  const config = await loadConfig({ overrides });
  let now = 1_700_000_000_000;
  const vla = new VlaRosNode({
    ros: api,
    config,
    options,
    createPipeline: loader ?? (() => Promise.resolve(pipeline)),
    clock: () => now,
  });
  const node = nodes[0];
  if (node === undefined) throw new Error('no node created');
  return {
    vla,
    node,
    pipeline,
    api,
    advance(ms) {
      now += ms;
    },
    async tick() {
      now += 100;
      node.fire(CONTROL);
      await vla.idle();
    },
    diagnostics() {
      node.fire(DIAGNOSTICS);
      return node.publisher('/diagnostics').messages.at(-1) as RosDiagnosticArray;
    },
  };
}

async function running(
  overrides: Readonly<Record<string, unknown>> = { 'runtime.merge_mode': 'replace' },
  options: RosNodeOptionsInput = {},
): Promise<Harness> {
  const h = await harness(overrides, options);
  h.node.configure();
  await h.vla.whenLoaded();
  h.node.activate();
  h.node.deliver('~/in/instruction', { data: 'pick up the red block' });
  h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow', 'wrist'], [0.1, 0.2, 0.3]));
  return h;
}

function trajectories(h: Harness): RosJointTrajectory[] {
  return h.node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
}

describe('VlaRosNode topics', () => {
  it('subscribes and publishes on private topics with the documented QoS', async () => {
    const h = await harness();
    h.node.configure();
    const subs = Object.fromEntries(h.node.subscriptions.map((s) => [s.topic, s]));
    expect(Object.keys(subs).sort()).toEqual([
      '~/in/image',
      '~/in/instruction',
      '~/in/joint_states',
    ]);
    expect(subs['~/in/image']?.type).toBe('sensor_msgs/msg/Image');
    // best effort, depth 1 (rclnodejs's sensor-data profile would be depth 5)
    expect(subs['~/in/image']?.options.qos).toMatchObject({
      history: h.api.QoS.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
      depth: 1,
      reliability: h.api.QoS.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT,
    });
    const instructionQos = subs['~/in/instruction']?.options.qos as InstanceType<typeof h.api.QoS>;
    expect(instructionQos).toBeInstanceOf(h.api.QoS);
    expect(instructionQos.durability).toBe(
      h.api.QoS.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL,
    );
    // rclnodejs's QoS has a reliability getter (its declarations say a method)
    expect((instructionQos as unknown as { reliability: number }).reliability).toBe(
      h.api.QoS.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE,
    );
    const pubs = Object.fromEntries(h.node.publishers.map((p) => [p.topic, p.type]));
    expect(pubs).toEqual({
      '~/out/action_chunk': 'trajectory_msgs/msg/JointTrajectory',
      '~/out/command': 'std_msgs/msg/Float64MultiArray',
      '~/out/action_chunk_raw': 'std_msgs/msg/Float32MultiArray',
      '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
      '~/debug/processing_time_ms': 'std_msgs/msg/Float64',
    });
    const actionQos = h.node.publisher('~/out/action_chunk').options?.qos as InstanceType<
      typeof h.api.QoS
    >;
    expect(
      h.node.publishers.every(
        (p) =>
          p.options?.qosOverridingOptions instanceof h.api.QoSOverridingOptions &&
          p.options.qosOverridingOptions.policyKinds.length === 3,
      ),
    ).toBe(true);
    expect((actionQos as unknown as { reliability: number }).reliability).toBe(
      h.api.QoS.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE,
    );
  });

  it('publishes the merged plan as a JointTrajectory and the raw chunk per chunk from the latest frame', async () => {
    const h = await running();
    h.node.deliver('~/in/image', image(100, 5));
    h.node.deliver('~/in/image', image(101, 250_000_000));
    await h.tick();
    const [trajectory] = trajectories(h);
    expect(trajectory).toBeDefined();
    if (trajectory === undefined) return;
    // The chunk of the frame taken at step 0 arrives for step 1: the plan starts there, one
    // period after the frame, with the action the chunk has for step 1.
    expect(trajectory.header).toEqual({
      stamp: { sec: 101, nanosec: 350_000_000 },
      frame_id: 'camera',
    });
    expect(trajectory.joint_names).toEqual(['shoulder', 'elbow']);
    expect(trajectory.points).toHaveLength(3);
    expect(trajectory.points.map((p) => p.time_from_start)).toEqual([
      { sec: 0, nanosec: 100_000_000 },
      { sec: 0, nanosec: 200_000_000 },
      { sec: 0, nanosec: 300_000_000 },
    ]);
    // state in the manifest's order (elbow, shoulder), by joint name
    expect(h.pipeline.observations[0]?.state).toEqual(Float64Array.from([0.2, 0.1]));
    expect(h.pipeline.observations[0]?.instruction).toBe('pick up the red block');
    expect(Array.from(trajectory.points[0]?.positions ?? [])).toEqual([
      Math.fround(0.21),
      Math.fround(0.11),
    ]);
    const raw = h.node.publisher('~/out/action_chunk_raw').messages[0] as RosFloat32MultiArray;
    expect(raw.layout).toEqual({
      dim: [
        { label: 'horizon', size: 4, stride: 8 },
        { label: 'action_dim', size: 2, stride: 2 },
      ],
      data_offset: 0,
    });
    expect(raw.data).toBeInstanceOf(Float32Array);
    expect(raw.data).toHaveLength(8);
    expect(h.node.publisher('~/debug/processing_time_ms').messages).toEqual([{ data: 5 }]);
    expect(h.vla.stats.framesDropped).toBe(1);
  });

  it('uses configured joint names and the configured control rate for time_from_start', async () => {
    const h = await running(
      { 'runtime.merge_mode': 'replace', 'runtime.control_rate_hz': 20 },
      { jointNames: ['j1', 'j2'] },
    );
    h.node.deliver('~/in/image', image(1));
    h.node.fire(50_000_000n);
    await h.vla.idle();
    const [trajectory] = trajectories(h);
    expect(trajectory?.joint_names).toEqual(['j1', 'j2']);
    expect(trajectory?.points[2]?.time_from_start).toEqual({ sec: 0, nanosec: 150_000_000 });
  });

  it('reads CompressedImage on ~/in/<camera>/compressed and feeds only the model camera', async () => {
    const h = await running(
      { 'runtime.merge_mode': 'replace' },
      { cameras: ['left', 'right'], modelCamera: 'right', imageTransport: 'compressed' },
    );
    expect(h.node.subscriptions.map((s) => s.topic)).toContain('~/in/left/compressed');
    h.node.deliver('~/in/left/compressed', compressed(5));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(0);
    h.node.deliver('~/in/right/compressed', compressed(6));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(1);
    expect(h.pipeline.observations[0]?.frame.kind).toBe('encoded');
    expect(h.pipeline.observations[0]?.stream).toBe('right');
    expect(h.vla.stats.framesReceived).toBe(2);
  });

  it('publishes the kept-token overlay on ~/debug/pruned_image when enabled', async () => {
    const h = await running({ 'runtime.merge_mode': 'replace' }, { publishPrunedImage: true });
    h.node.deliver('~/in/image', image(3));
    await h.tick();
    const [overlay] = h.node.publisher('~/debug/pruned_image').messages as {
      encoding: string;
      step: number;
      data: Uint8Array;
    }[];
    expect(overlay?.encoding).toBe('rgb8');
    expect(overlay?.step).toBe(12);
    expect(overlay?.data).toHaveLength(48);
  });

  it('waits for an instruction and joint states before inferring', async () => {
    const h = await harness({ 'runtime.merge_mode': 'replace' });
    h.node.configure();
    await h.vla.whenLoaded();
    h.node.activate();
    h.node.deliver('~/in/image', image(1));
    // Past ros.diagnostics.error_consecutive_misses (3) control periods: still a WARN naming what
    // is missing, not a safe-hold ERROR (nothing has been sent to the robot).
    for (let i = 0; i < 5; i++) await h.tick();
    expect(h.pipeline.observations).toHaveLength(0);
    const status = h.diagnostics().status[0];
    expect(status?.level).toBe(1);
    expect(status?.message).toBe('waiting for an instruction, joint states');
    expect(status?.values).toContainEqual({ key: 'safe hold', value: 'false' });
    expect(h.node.publisher('~/out/command').messages).toHaveLength(0);
  });

  const INPUTS = {
    'an instruction': (h: Harness) => {
      h.node.deliver('~/in/instruction', { data: 'pick up the red block' });
    },
    'joint states': (h: Harness) => {
      h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0.1, 0.2]));
    },
    'camera frames': (h: Harness) => {
      h.node.deliver('~/in/image', image(1));
    },
  } as const;

  it.each(Object.keys(INPUTS) as (keyof typeof INPUTS)[])(
    'counts no deadline miss while waiting for %s: nothing was due yet',
    async (missing) => {
      const h = await harness({ 'runtime.merge_mode': 'replace' });
      h.node.configure();
      await h.vla.whenLoaded();
      h.node.activate();
      for (const [name, deliver] of Object.entries(INPUTS)) if (name !== missing) deliver(h);
      for (let i = 0; i < 6; i++) await h.tick();
      expect(h.diagnostics().status[0]?.message).toBe(`waiting for ${missing}`);
      INPUTS[missing](h);
      if (missing !== 'camera frames') INPUTS['camera frames'](h); // a fresh frame to infer from
      await h.tick(); // the first period with every input: the inference starts
      expect(h.pipeline.observations).toHaveLength(1);
      // Not a safe hold of 7 periods: the chunk came the period it was asked for.
      const status = h.diagnostics().status[0];
      expect(status?.message).toBe('running');
      expect(status?.values).toContainEqual({ key: 'deadline misses', value: '0' });
      expect(status?.values).toContainEqual({ key: 'consecutive deadline misses', value: '0' });
      expect(h.vla.stats.deadlineMisses).toBe(0);
    },
  );
});

describe('VlaRosNode joint states', () => {
  it("reads the state from the robot's joint names that ros.state_joint_names gives", async () => {
    const h = await harness({
      'runtime.merge_mode': 'replace',
      // The manifest's state is [elbow, shoulder]; the robot calls them otherwise.
      'ros.state_joint_names': ['arm_elbow_joint', 'arm_shoulder_joint'],
    });
    h.node.configure();
    await h.vla.whenLoaded();
    h.node.activate();
    h.node.deliver('~/in/instruction', { data: 'pick up the red block' });
    h.node.deliver(
      '~/in/joint_states',
      jointState(['arm_shoulder_joint', 'arm_elbow_joint', 'gripper'], [0.1, 0.2, 0.3]),
    );
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(1);
    expect(Array.from(h.pipeline.observations[0]?.state ?? [])).toEqual([0.2, 0.1]);
    // The manifest's own names are not read any more.
    h.node.deliver('~/in/joint_states', jointState(['elbow', 'shoulder'], [0.5, 0.5]));
    expect(h.diagnostics().status[0]?.values).toContainEqual({
      key: 'dropped joint names',
      value: '1',
    });
  });

  it('refuses to configure with a state joint name count that is not the manifest state size', async () => {
    const h = await harness({ 'ros.state_joint_names': ['only_one'] });
    h.node.configure();
    await h.vla.whenLoaded();
    expect(h.vla.state).toBe('unconfigured');
    expect(
      h.node.logs.some(
        (l) =>
          l.level === 'error' &&
          l.text.includes(
            'Expected 2 state joint names (ros.state_joint_names, one per state dimension of the manifest) but received 1',
          ),
      ),
    ).toBe(true);
  });
});

describe('VlaRosNode safety', () => {
  it.each(['nan', 'out-of-limits'] as const)('never publishes a %s chunk', async (mode) => {
    const h = await running();
    h.pipeline.mode = mode;
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    expect(trajectories(h)).toHaveLength(0);
    expect(h.node.publisher('~/out/action_chunk_raw').messages).toHaveLength(0);
    expect(h.vla.stats.chunksRejected).toBe(1);
    expect(h.node.logs.some((l) => l.level === 'error' && l.text.includes('not published'))).toBe(
      true,
    );
  });

  it('goes to safe hold with ERROR diagnostics when the camera stalls, and recovers', async () => {
    const h = await running();
    h.node.deliver('~/in/image', image(1));
    await h.tick(); // step 0: query, chunk covers steps 1..3
    expect(trajectories(h)).toHaveLength(1);
    for (let i = 0; i < 3; i++) await h.tick(); // steps 1..3 from the plan, no new frame
    expect(h.diagnostics().status[0]?.level).toBe(0);
    for (let i = 0; i < 3; i++) await h.tick(); // steps 4..6: nothing covers them
    expect(h.vla.inSafeHold).toBe(true);
    const stalled = h.diagnostics().status[0];
    expect(stalled?.level).toBe(2);
    expect(stalled?.message).toContain('safe hold: 3 consecutive deadline misses');
    expect(stalled?.values).toContainEqual({ key: 'safe hold', value: 'true' });
    h.node.deliver('~/in/image', image(2));
    await h.tick(); // step 7: query, chunk covers 8..10
    await h.tick();
    expect(h.vla.inSafeHold).toBe(false);
    expect(trajectories(h)).toHaveLength(2);
    const recovered = h.diagnostics().status[0];
    expect(recovered?.level).toBe(0);
    expect(recovered?.message).toBe('running');
    expect(h.vla.stats.deadlineMisses).toBe(4);
  });

  it('reports inference failures as ERROR diagnostics', async () => {
    const h = await running();
    h.pipeline.mode = 'fail';
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    const status = h.diagnostics().status[0];
    expect(status?.level).toBe(2);
    expect(status?.message).toBe('inference failed: policy session failed');
    expect(status?.values).toContainEqual({ key: 'inference errors', value: '1' });
  });

  it('diagnostics carry latency percentiles, kept-token ratio and provider', async () => {
    const h = await running();
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    const values = Object.fromEntries(
      (h.diagnostics().status[0]?.values ?? []).map((v) => [v.key, v.value]),
    );
    expect(values).toMatchObject({
      provider: 'cpu',
      'latency p95 ms': '5',
      'kept token ratio': '0.500',
      'chunks published': '1',
      'lifecycle state': 'active',
    });
  });

  it('in sync mode executes execute_steps of each chunk, then queries again', async () => {
    const h = await running({ 'runtime.merge_mode': 'sync', 'runtime.execute_steps': 2 });
    h.node.deliver('~/in/image', image(1));
    await h.tick(); // step 0: query; accepted at step 1 for steps 1..2
    h.node.deliver('~/in/image', image(2));
    await h.tick(); // step 1
    await h.tick(); // step 2
    expect(h.pipeline.observations).toHaveLength(1);
    await h.tick(); // step 3: plan done, query
    expect(h.pipeline.observations).toHaveLength(2);
    expect(h.vla.stats.deadlineMisses).toBe(0);
  });
});

describe('VlaRosNode lifecycle', () => {
  it('configure loads the model, activate starts, deactivate holds, cleanup releases', async () => {
    const h = await harness({ 'runtime.merge_mode': 'replace' });
    expect(h.vla.state).toBe('unconfigured');
    expect({ ...h.node.configure() }).toEqual({ id: 2, label: 'inactive' });
    expect(h.diagnostics().status[0]?.message).toBe('loading and warming up the model');
    await h.vla.whenLoaded();
    expect(h.vla.ready).toBe(true);
    expect(h.node.logs.map((l) => l.text)).toContain(
      'ready: model warmed up on cpu; control at 10.0 Hz',
    );
    h.node.activate();
    expect(h.vla.state).toBe('active');
    h.node.deliver('~/in/instruction', { data: 'go' });
    h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0, 0]));
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    expect(trajectories(h)).toHaveLength(1);

    h.node.deactivate();
    expect(h.vla.state).toBe('inactive');
    h.node.deliver('~/in/image', image(2));
    await h.tick();
    expect(trajectories(h)).toHaveLength(1);
    expect(h.diagnostics().status[0]?.message).toBe('inactive (holding)');

    h.node.cleanup();
    expect(h.vla.state).toBe('unconfigured');
    expect(h.pipeline.released).toBe(true);
    expect(h.node.publishers.every((p) => p.destroyed)).toBe(true);
    expect(h.node.subscriptions.every((s) => s.destroyed)).toBe(true);
    expect(h.node.shutdown().label).toBe('finalized');
  });

  it('activating before the model is ready starts processing once it is', async () => {
    let resolve: (p: FakePipeline) => void = () => undefined;
    const pipeline = new FakePipeline();
    const h = await harness({}, {}, {}, pipeline, () => new Promise((r) => (resolve = r)));
    h.vla.autoActivate();
    expect(h.vla.state).toBe('active');
    expect(h.node.timers.filter((t) => t.period === CONTROL)).toHaveLength(0);
    resolve(pipeline);
    await h.vla.whenLoaded();
    expect(h.node.timers.filter((t) => t.period === CONTROL)).toHaveLength(1);
  });

  it('deactivating while the model loads keeps the model for the next activate', async () => {
    let resolve: (p: FakePipeline) => void = () => undefined;
    const pipeline = new FakePipeline();
    const h = await harness({}, {}, {}, pipeline, () => new Promise((r) => (resolve = r)));
    h.vla.autoActivate();
    h.node.deactivate();
    resolve(pipeline);
    await h.vla.whenLoaded();
    expect(h.vla.ready).toBe(true);
    expect(pipeline.released).toBe(false);
    h.node.activate();
    expect(h.node.timers.filter((t) => t.period === CONTROL && !t.isCanceled())).toHaveLength(1);
  });

  it('a model that does not load returns the node to unconfigured with the reason', async () => {
    const h = await harness({}, {}, {}, new FakePipeline(), () =>
      Promise.reject(new Error('Expected manifest.json in models/nope')),
    );
    h.node.configure();
    await h.vla.whenLoaded();
    expect(h.vla.state).toBe('unconfigured');
    expect(h.node.logs).toContainEqual({
      level: 'error',
      text: 'configure: the model did not load: Expected manifest.json in models/nope',
    });
  });
});

describe('VlaRosNode parameters', () => {
  it('declares every schema key with its description and the parameter file as defaults', async () => {
    const h = await harness();
    expect(h.node.parameters.get('pruning.keep_ratio')?.value).toBe(1);
    expect(h.node.parameters.get('backend.warmup_runs')?.value).toBe(3n);
    expect(h.node.descriptors.get('runtime.control_rate_hz')?.description).toContain('Hz');
    expect(h.node.descriptors.get('runtime.control_rate_hz')?.hasRange()).toBe(true);
    expect(h.node.descriptors.get('runtime.merge_mode')?.additionalConstraints).toContain('sync');
  });

  it('values given to ROS override the parameter file', async () => {
    const h = await harness(
      {},
      {},
      { 'pruning.keep_ratio': '0.5', 'pruning.strategy': 'saliency' },
    );
    expect(h.vla.config.pruning.keep_ratio).toBe(0.5);
    expect(h.vla.config.pruning.strategy).toBe('saliency');
  });

  it('validates a change at run time and rejects a bad value with the reason', async () => {
    const h = await harness();
    const bad = h.node.setParameter(
      new h.api.Parameter('pruning.keep_ratio', PARAMETER_TYPE.double, 1.5),
    );
    expect(bad.successful).toBe(false);
    expect(bad.reason).toContain('pruning.keep_ratio');
    const badEnum = h.node.setParameter(
      new h.api.Parameter('runtime.merge_mode', PARAMETER_TYPE.string, 'later'),
    );
    expect(badEnum).toMatchObject({ successful: false });
    expect(badEnum.reason).toContain('one of "sync", "replace", "ensemble", "rtc"');
    expect(h.vla.config.runtime.merge_mode).toBe('sync');
    const good = h.node.setParameter(
      new h.api.Parameter('runtime.merge_mode', PARAMETER_TYPE.string, 'rtc'),
    );
    expect(good).toEqual({ successful: true, reason: '' });
    expect(h.vla.config.runtime.merge_mode).toBe('rtc');
    const rosOwn = h.node.setParameter(
      new h.api.Parameter('use_sim_time', PARAMETER_TYPE.bool, true),
    );
    expect(rosOwn).toEqual({ successful: true, reason: '' });
  });
});

describe('VlaRosNode diagnostics thresholds (ros.diagnostics.*)', () => {
  async function withThresholds(warnMs: number, misses: number): Promise<Harness> {
    const overrides = {
      'runtime.merge_mode': 'replace',
      'ros.diagnostics.processing_time_warn_ms': warnMs,
      'ros.diagnostics.error_consecutive_misses': misses,
    };
    const config = await loadConfig({ overrides });
    return running(overrides, rosNodeOptionsFromConfig(config.ros));
  }

  it('WARN when the processing time exceeds processing_time_warn_ms', async () => {
    const h = await withThresholds(4, 3);
    h.node.deliver('~/in/image', image(1));
    await h.tick();
    const status = h.diagnostics().status[0];
    expect(status?.level).toBe(1);
    expect(status?.message).toBe('processing time 5.0 ms over 4.0 ms');
    const under = await withThresholds(6, 3);
    under.node.deliver('~/in/image', image(1));
    await under.tick();
    expect(under.diagnostics().status[0]).toMatchObject({ level: 0, message: 'running' });
  });

  it('WARN after a deadline miss, ERROR after error_consecutive_misses in a row', async () => {
    const h = await withThresholds(100, 2);
    h.node.deliver('~/in/image', image(1));
    for (let i = 0; i < 4; i++) await h.tick(); // step 0 queries; the chunk covers steps 1..3
    expect(h.diagnostics().status[0]?.level).toBe(0);
    await h.tick(); // step 4: first miss
    expect(h.diagnostics().status[0]).toMatchObject({
      level: 1,
      message: '1 deadline misses in a row',
    });
    await h.tick(); // step 5: second miss
    const status = h.diagnostics().status[0];
    expect(status?.level).toBe(2);
    expect(status?.message).toContain('safe hold: 2 consecutive deadline misses');
    expect(status?.values).toContainEqual({ key: 'consecutive deadline misses', value: '2' });
  });
});

describe('VlaRosNode bad parameters', () => {
  it.each([
    ['pruning.keep_ratio', '1.5', 'pruning.keep_ratio'],
    ['runtime.merge_mode', 'later', 'one of "sync", "replace", "ensemble", "rtc"'],
    ['runtime.control_rate_hz', '-5', 'runtime.control_rate_hz'],
    ['pruning.keep_count', '2.5', 'Expected an integer for pruning.keep_count'],
    ['safety.action_min', 'low', 'Expected an array of number for safety.action_min'],
  ] as const)(
    'start-up fails on %s := %s with the key and the reason',
    async (key, value, reason) => {
      const failure = harness({}, {}, { [key]: value });
      await expect(failure).rejects.toThrow(key);
      await expect(failure).rejects.toThrow(reason);
    },
  );

  it('a rejected update keeps the old value, in the config and on the node', async () => {
    const h = await harness({}, {}, { 'pruning.keep_ratio': '0.5' });
    const bad = h.node.setParameter(
      new h.api.Parameter('pruning.keep_ratio', PARAMETER_TYPE.double, 0),
    );
    expect(bad.successful).toBe(false);
    expect(bad.reason).toContain('pruning.keep_ratio');
    expect(h.vla.config.pruning.keep_ratio).toBe(0.5);
    expect(h.node.parameters.get('pruning.keep_ratio')?.value).toBe(0.5);
    expect(h.node.logs.at(-1)?.text).toContain('parameter change rejected: ');
  });
});

describe('VlaRosNode bad input', () => {
  const instruction = { data: 'pick up the red block' };
  const joints = jointState(['shoulder', 'elbow'], [0.1, 0.2]);
  const badEncoding: RosImage = { ...image(1), encoding: '32FC1' };
  const badSize: RosImage = { ...image(1), data: new Uint8Array(40) };
  const truncated: RosCompressedImage = {
    ...compressed(1),
    data: Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]),
  };
  type Delivery = readonly [string, unknown];
  const cases: {
    name: string;
    options?: RosNodeOptionsInput;
    bad: Delivery[];
    good: Delivery[];
    warning: string;
    counter: string;
  }[] = [
    {
      name: 'an image with an unknown encoding',
      bad: [
        ['~/in/instruction', instruction],
        ['~/in/joint_states', joints],
        ['~/in/image', badEncoding],
      ],
      good: [['~/in/image', image(2)]],
      warning: 'dropped frame on ~/in/image: image encoding: encoding "32FC1" is not one of rgb8',
      counter: 'dropped image encoding',
    },
    {
      name: 'an image whose step x height is not its data length',
      bad: [
        ['~/in/instruction', instruction],
        ['~/in/joint_states', joints],
        ['~/in/image', badSize],
      ],
      good: [['~/in/image', image(2)]],
      warning: 'image size: 4x4 rgb8, step 12: step x height = 48 bytes but data has 40',
      counter: 'dropped image size',
    },
    {
      name: 'a truncated JPEG',
      options: { imageTransport: 'compressed' },
      bad: [
        ['~/in/instruction', instruction],
        ['~/in/joint_states', joints],
        ['~/in/image/compressed', truncated],
      ],
      good: [['~/in/image/compressed', compressed(2)]],
      warning: 'compressed image: JPEG of 6 bytes is truncated (no EOI marker at the end)',
      counter: 'dropped compressed image',
    },
    {
      name: 'joint states with none of the manifest state names',
      bad: [
        ['~/in/instruction', instruction],
        ['~/in/joint_states', jointState(['left', 'right'], [0.5, 0.5])],
        ['~/in/image', image(1)],
      ],
      good: [
        ['~/in/joint_states', joints],
        ['~/in/image', image(2)],
      ],
      warning:
        "joint names: joint names [left, right] include none of the state joints [elbow, shoulder] (ros.state_joint_names, else the manifest's state names)",
      counter: 'dropped joint names',
    },
    {
      name: 'an empty instruction',
      bad: [
        ['~/in/instruction', { data: '  ' }],
        ['~/in/joint_states', joints],
        ['~/in/image', image(1)],
      ],
      good: [
        ['~/in/instruction', instruction],
        ['~/in/image', image(2)],
      ],
      warning: 'dropped message on ~/in/instruction: instruction: the instruction is empty',
      counter: 'dropped instruction',
    },
    {
      // Dropped without a word before: a failing encoder went unnoticed.
      name: 'a joint position that is not finite',
      bad: [
        ['~/in/instruction', instruction],
        ['~/in/joint_states', jointState(['shoulder', 'elbow'], [Number.NaN, 0.2])],
        ['~/in/image', image(1)],
      ],
      good: [
        ['~/in/joint_states', joints],
        ['~/in/image', image(2)],
      ],
      warning: 'joint positions: joint shoulder position NaN is not finite',
      counter: 'dropped joint positions',
    },
    {
      // Logged whole and tokenized on the control loop's thread before (22 MB: seconds).
      name: 'an instruction of 1,025 characters',
      bad: [
        ['~/in/instruction', { data: 'x'.repeat(1025) }],
        ['~/in/joint_states', joints],
        ['~/in/image', image(1)],
      ],
      good: [
        ['~/in/instruction', instruction],
        ['~/in/image', image(2)],
      ],
      warning: 'instruction: the instruction has 1025 characters, more than 1024',
      counter: 'dropped instruction',
    },
  ];

  it.each(cases)(
    'drops $name with a warning and a counter, then serves the next good input',
    async ({ options, bad, good, warning, counter }) => {
      const h = await harness({ 'runtime.merge_mode': 'replace' }, options ?? {});
      h.node.configure();
      await h.vla.whenLoaded();
      h.node.activate();
      const value = (): string | undefined =>
        h.diagnostics().status[0]?.values.find((v) => v.key === counter)?.value;
      expect(value()).toBe('0');
      for (const [topic, m] of bad) h.node.deliver(topic, m);
      await h.tick();
      expect(trajectories(h)).toHaveLength(0);
      expect(h.pipeline.observations).toHaveLength(0);
      const warnings = h.node.logs.filter((l) => l.level === 'warn').map((l) => l.text);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(warning);
      expect(value()).toBe('1');
      for (const [topic, m] of good) h.node.deliver(topic, m);
      await h.tick();
      expect(h.vla.state).toBe('active');
      expect(trajectories(h)).toHaveLength(1);
      expect(h.pipeline.observations[0]?.state).toEqual(Float64Array.from([0.2, 0.1]));
      expect(h.pipeline.observations[0]?.instruction).toBe('pick up the red block');
    },
  );

  it('logs a new instruction with its control characters escaped: no forged log line', async () => {
    const h = await running();
    h.node.deliver('~/in/instruction', { data: 'go\n[WARN] [vla_node]: forged\u001b[2J' });
    const logged = h.node.logs.filter((l) => l.text.startsWith('instruction: ')).map((l) => l.text);
    expect(logged.at(-1)).toBe('instruction: go\\n[WARN] [vla_node]: forged\\x1b[2J');
  });

  it('logs one warning per kind per 5 s with the count of suppressed ones', async () => {
    const h = await running();
    const warnings = (): string[] =>
      h.node.logs.filter((l) => l.level === 'warn').map((l) => l.text);
    for (let i = 0; i < 3; i++) h.node.deliver('~/in/image', badEncoding);
    h.node.deliver('~/in/image', badSize);
    expect(warnings()).toHaveLength(2);
    h.advance(4000);
    h.node.deliver('~/in/image', badEncoding);
    expect(warnings()).toHaveLength(2);
    h.advance(1000);
    h.node.deliver('~/in/image', badEncoding);
    expect(warnings()).toHaveLength(3);
    expect(warnings()[2]).toContain('(3 more image encoding problems suppressed in the last 5 s)');
    h.advance(5000);
    h.node.deliver('~/in/image', badEncoding);
    expect(warnings()[3]).not.toContain('suppressed');
    const values = h.diagnostics().status[0]?.values ?? [];
    expect(values).toContainEqual({ key: 'dropped image encoding', value: '6' });
    expect(values).toContainEqual({ key: 'dropped image size', value: '1' });
  });
});

describe('VlaRosNode name', () => {
  it("names its diagnostics status after rcl's node name (a launch file's node_name remap)", async () => {
    // Found on a live graph: `ros2 launch ... node_name:=arm_vla` gave "vla_node: policy".
    const { api, nodes } = createRosDouble();
    await api.init(undefined, ['vla-node', '--ros-args', '-r', '__node:=arm_vla']);
    const vla = new VlaRosNode({
      ros: api,
      config: await loadConfig({}),
      createPipeline: () => Promise.resolve(new FakePipeline()),
    });
    expect(nodes[0]?.name()).toBe('arm_vla');
    expect(vla.diagnostics().status[0]?.name).toBe('arm_vla: policy');
  });
});
