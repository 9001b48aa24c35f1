/**
 * The node with an autoregressive package (models/tiny-vla-ar, one camera `table`): the camera
 * topic follows the manifest's camera, the observation carries the frame's stamp and the camera as
 * its stream (what speculative decoding shifts its draft by), the diagnostics show the decoding
 * strategy and its decoder calls per chunk, and a bad frame is dropped while the node serves on.
 * The first tests use a pipeline double that records what it is given; the others run the real
 * ArPipeline (ONNX graphs of the shipped package) through the CLI's createPipeline.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig, resolvePackagePath } from '../../../src/config/index.js';
import { createPipeline, rosCommand } from '../../../src/cli/start.js';
import { arPipelineFromConfig } from '../../../src/policy/autoregressive/from-config.js';
import type { ArDecodeTotals, ArPipeline } from '../../../src/policy/autoregressive/pipeline.js';
import { arNodePipeline } from '../../../src/transports/ros/ar.js';
import type { RosImage, RosJointTrajectory } from '../../../src/transports/ros/messages.js';
import {
  VlaRosNode,
  type NodeDecoding,
  type PipelineFactory,
} from '../../../src/transports/ros/node.js';
import type { RosNodeOptionsInput } from '../../../src/transports/ros/options.js';
import { createRosDouble, type DoubleLifecycleNode } from './double.js';
import { FakePipeline, jointState, lastStatus } from './support.js';

const CONTROL = 100_000_000n; // 10 Hz
const DIAGNOSTICS = 1_000_000_000n;
const AR = 'models/tiny-vla-ar';

/** The manifest's limits, read as the tests' reference (the parameter file sets none of its own). */
async function manifestLimits(): Promise<{ min: number[]; max: number[] }> {
  const m = JSON.parse(await readFile(`${AR}/manifest.json`, 'utf8')) as {
    action: { min: number[]; max: number[] };
  };
  return m.action;
}

/** The FakePipeline answering for a model that sees the `table` camera and decodes tokens. */
class FakeArPipeline extends FakePipeline {
  readonly cameras = [{ name: 'table' }];
  readonly decoding: NodeDecoding = {
    strategy: 'speculative',
    window: 0,
    totals: { chunks: 4, tokens: 128, decoderCalls: 10, guessesFed: 40, guessesAccepted: 30 },
  };
}

/** A `width`×`height` bgr8 frame whose every byte is `fill`, stamped `sec` + `nanosec`. */
function frame(sec: number, fill: number, nanosec = 0, width = 4, height = 4): RosImage {
  return {
    header: { stamp: { sec, nanosec }, frame_id: 'table_cam' },
    height,
    width,
    encoding: 'bgr8',
    is_bigendian: 0,
    step: width * 3,
    data: new Uint8Array(width * height * 3).fill(fill),
  };
}

interface Harness {
  readonly vla: VlaRosNode;
  readonly node: DoubleLifecycleNode;
  tick(): Promise<void>;
  diagnostics(): { message: string; values: Record<string, string> };
}

async function harness(
  factory: PipelineFactory,
  overrides: Readonly<Record<string, unknown>> = {},
  options: RosNodeOptionsInput = {},
  rosArgs: Readonly<Record<string, string>> = {},
): Promise<Harness> {
  // rosArgs: what `--ros-args -p name:=value` gives the node
  const { api, nodes } = createRosDouble(rosArgs);
  const config = await loadConfig({
    overrides: { 'model.path': AR, 'backend.warmup_runs': 0, ...overrides },
  });
  const vla = new VlaRosNode({ ros: api, config, options, createPipeline: factory });
  const node = nodes[0];
  if (node === undefined) throw new Error('no node created');
  return {
    vla,
    node,
    async tick() {
      node.fire(CONTROL);
      await vla.idle();
    },
    diagnostics() {
      node.fire(DIAGNOSTICS);
      return lastStatus(node.publisher('/diagnostics').messages);
    },
  };
}

/** Control periods until `done` (at most 20: the loop asks for a chunk within a horizon). */
async function tickUntil(h: Harness, done: () => boolean): Promise<void> {
  for (let i = 0; i < 20 && !done(); i++) await h.tick();
  expect(done()).toBe(true);
}

async function activate(h: Harness, joints: readonly string[] = ['shoulder', 'elbow']) {
  h.node.configure();
  await h.vla.whenLoaded();
  h.node.activate();
  h.node.deliver('~/in/instruction', { data: 'move to the red block' });
  h.node.deliver('~/in/joint_states', jointState([...joints], [0.5, 0.5]));
}

describe('VlaRosNode with an autoregressive package: camera plan and observation', () => {
  it("subscribes ~/in/<camera> for the manifest's camera, and only that camera feeds the model", async () => {
    const pipeline = new FakeArPipeline();
    const h = await harness(() => Promise.resolve(pipeline));
    await activate(h);
    const images = h.node.subscriptions.filter((s) => s.type === 'sensor_msgs/msg/Image');
    expect(images.map((s) => s.topic)).toEqual(['~/in/table']);
    expect(h.vla.cameraPlan).toEqual({
      subscribed: ['table'],
      trigger: 'table',
      inputs: ['table'],
    });
    expect(h.diagnostics().values.cameras).toBe('table (trigger)');
  });

  it('subscribes ~/in/<camera>/compressed with ros.image_transport compressed', async () => {
    const h = await harness(
      () => Promise.resolve(new FakeArPipeline()),
      {},
      {
        imageTransport: 'compressed',
      },
    );
    h.node.configure();
    expect(
      h.node.subscriptions
        .filter((s) => s.type === 'sensor_msgs/msg/CompressedImage')
        .map((s) => s.topic),
    ).toEqual(['~/in/table/compressed']);
  });

  it('gives the pipeline the frame itself, its stamp, and the camera as the stream', async () => {
    const pipeline = new FakeArPipeline();
    const h = await harness(() => Promise.resolve(pipeline), { 'runtime.merge_mode': 'replace' });
    await activate(h);
    h.node.deliver('~/in/table', frame(3, 33, 250_000_000));
    await h.tick();
    const [obs] = pipeline.observations;
    // one camera: the frame, not a camera list (the pipeline matches it to its one camera)
    expect(obs?.cameras).toBeUndefined();
    expect(obs?.frame.kind === 'raw' && obs.frame.data[0]).toBe(33);
    expect(obs?.stamp).toBe(3250);
    expect(obs?.stream).toBe('table');
    const [trajectory] = h.node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
    expect(trajectory?.header.frame_id).toBe('table_cam');
  });

  it('shows the decoding strategy and the decoder calls per chunk in the diagnostics', async () => {
    const h = await harness(() => Promise.resolve(new FakeArPipeline()));
    await activate(h);
    const { values } = h.diagnostics();
    expect(values).toMatchObject({
      decoding: 'speculative',
      'decoding window': 'whole chunk',
      'chunks decoded': '4',
      'decoder calls per chunk': '2.50',
      'action tokens per chunk': '32.00',
      'guesses accepted': '0.750',
    });
    // the other families show no decoding keys
    const v1 = await harness(() => Promise.resolve(new FakePipeline()), {
      'model.path': 'models/tiny-vla',
    });
    v1.node.configure();
    await v1.vla.whenLoaded();
    expect(Object.keys(v1.diagnostics().values)).not.toContain('decoding');
  });

  it('refuses a ros.model_camera that is not the manifest camera', async () => {
    const h = await harness(
      () => Promise.resolve(new FakeArPipeline()),
      {},
      {
        modelCamera: 'image',
      },
    );
    expect(h.node.configure().label).toBe('unconfigured');
    expect(h.node.logs.find((l) => l.level === 'error')?.text).toContain(
      "Expected ros.model_camera to be one of the model's cameras (table) or empty",
    );
  });
});

describe('arNodePipeline on the shipped autoregressive package', () => {
  it("gives the node the manifest camera's geometry, the limits and the decoding", async () => {
    const config = await loadConfig({
      overrides: { 'model.path': AR, 'runtime.decoding': 'jacobi', 'runtime.decoding_window': 4 },
    });
    const ar = await arPipelineFromConfig(config, resolvePackagePath(AR));
    const pipeline = arNodePipeline(ar);
    try {
      const m = ar.model.manifest;
      expect(pipeline.model.manifest.image).toEqual(m.cameras[0].image);
      expect(pipeline.model.manifest.patch_grid).toEqual(m.cameras[0].patch_grid);
      expect(pipeline.model.manifest.chunk).toEqual(m.chunk);
      expect(pipeline.cameras?.map((c) => c.name)).toEqual(['table']);
      expect(pipeline.actionLimits).toBe(ar.actionLimits);
      expect(pipeline.lastSelection).toBeUndefined();
      expect(pipeline.decoding).toMatchObject({ strategy: 'jacobi', window: 4 });
      const chunk = await pipeline.infer({
        frame: {
          kind: 'raw',
          encoding: 'rgb8',
          width: 64,
          height: 64,
          data: new Uint8Array(64 * 64 * 3).fill(100),
        },
        instruction: 'move to the red block',
        state: [0.5, 0.5],
        stamp: 1000,
        stream: 'table',
      });
      expect([chunk.horizon, chunk.actionDim]).toEqual([m.chunk.horizon, m.chunk.action_dim]);
      // the totals the diagnostics read are the pipeline's own, live
      expect(pipeline.decoding?.totals.chunks).toBe(1);
      expect(pipeline.decoding?.totals.decoderCalls).toBeGreaterThan(0);
      expect(pipeline.latency.total.summary().count).toBe(1);
    } finally {
      await pipeline.release();
    }
  });
});

describe('VlaRosNode with the shipped autoregressive package (real ArPipeline)', () => {
  it('loads it through createPipeline and publishes safe chunks of horizon x action_dim', async () => {
    const limits = await manifestLimits();
    const h = await harness(
      createPipeline,
      { 'runtime.merge_mode': 'replace', 'backend.warmup_runs': 1 },
      {},
      { 'runtime.decoding': 'jacobi' },
    );
    await activate(h, ['y', 'x']);
    expect(h.vla.ready).toBe(true);
    expect(h.node.logs.map((l) => l.text)).toEqual(
      expect.arrayContaining([
        'autoregressive package tiny-vla-ar: camera table, decoding jacobi (window the whole chunk), uniform_bins action tokens, on cpu; warming up (1 runs)',
        expect.stringMatching(/^ready: model warmed up on cpu; control at 10\.0 Hz$/),
      ]),
    );
    h.node.deliver('~/in/table', frame(12, 120, 0, 96, 80));
    await h.tick();
    expect(h.vla.stats.inferenceErrors).toBe(0);
    const [trajectory] = h.node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
    expect(trajectory?.joint_names).toEqual(['x', 'y']);
    expect(trajectory?.header.frame_id).toBe('table_cam');
    expect(trajectory?.points.length).toBeGreaterThan(0);
    for (const point of trajectory?.points ?? []) {
      point.positions.forEach((v, d) => {
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThanOrEqual(limits.min[d] ?? Number.NaN);
        expect(v).toBeLessThanOrEqual(limits.max[d] ?? Number.NaN);
      });
    }
    const [raw] = h.node.publisher('~/out/action_chunk_raw').messages as {
      data: Float32Array;
    }[];
    expect(raw?.data).toHaveLength(16 * 2);
    for (const [i, v] of (raw?.data ?? []).entries()) {
      expect(v).toBeGreaterThanOrEqual(limits.min[i % 2] ?? Number.NaN);
      expect(v).toBeLessThanOrEqual(limits.max[i % 2] ?? Number.NaN);
    }
    const d = h.diagnostics();
    expect(d.values.decoding).toBe('jacobi');
    expect(d.values['chunks decoded']).toBe('1');
    const calls = Number(d.values['decoder calls per chunk']);
    // Jacobi decodes a 32-token chunk in at most 31 sequential calls (the first token is the prefill's)
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(31);
    expect(h.node.shutdown().label).toBe('finalized');
    await h.vla.released();
  });

  it("drafts speculative decoding from the frames' stamps, and drops a bad frame while serving on", async () => {
    let ar: ArPipeline | undefined;
    const drafts: { stream: string | undefined; stepsExecuted: number | undefined }[] = [];
    const h = await harness(
      async (config) => {
        ar = await arPipelineFromConfig(config, resolvePackagePath(config.model.path));
        // what the pipeline hands the policy: the stream and the draft's shift, from the stamps
        const act = ar.policy.act.bind(ar.policy);
        vi.spyOn(ar.policy, 'act').mockImplementation((obs, options) => {
          drafts.push({ stream: obs.stream, stepsExecuted: options.previous?.stepsExecuted });
          return act(obs, options);
        });
        return arNodePipeline(ar);
      },
      { 'runtime.merge_mode': 'replace', 'runtime.decoding': 'speculative' },
    );
    await activate(h, ['x', 'y']);
    const totals = (): ArDecodeTotals => {
      if (ar === undefined) throw new Error('not loaded');
      return { ...ar.decodeTotals };
    };
    h.node.deliver('~/in/table', frame(20, 90, 0, 64, 64));
    await tickUntil(h, () => totals().chunks === 1);
    // The same frame stamped 1 ms later: no control step executed since, so the draft is the
    // previous chunk unshifted (without stamps the pipeline would take runtime.execute_steps,
    // half the horizon, as executed).
    h.node.deliver('~/in/table', frame(20, 90, 1_000_000, 64, 64));
    await tickUntil(h, () => totals().chunks === 2);
    const node = totals();
    // the node decoded exactly as the pipeline does when given the frames' stamps and the stream
    const config = await loadConfig({
      overrides: { 'model.path': AR, 'runtime.decoding': 'speculative' },
    });
    const reference = await arPipelineFromConfig(config, resolvePackagePath(AR));
    try {
      for (const stamp of [20_000, 20_001]) {
        await reference.infer({
          frame: {
            kind: 'raw',
            encoding: 'bgr8',
            width: 64,
            height: 64,
            data: new Uint8Array(64 * 64 * 3).fill(90),
          },
          instruction: 'move to the red block',
          state: [0.5, 0.5],
          stamp,
          stream: 'table',
        });
      }
      expect(node).toEqual(reference.decodeTotals);
    } finally {
      await reference.release();
    }

    // a frame one byte short is dropped and counted for the camera; the next good one, 500 ms
    // after the last inferred frame, is served with a draft shifted by 5 steps (at 10 Hz)
    h.node.deliver('~/in/table', {
      ...frame(20, 90, 300_000_000, 64, 64),
      data: new Uint8Array(64 * 64 * 3 - 1),
    });
    h.node.deliver('~/in/table', frame(20, 60, 501_000_000, 64, 64));
    await tickUntil(h, () => totals().chunks === 3);
    expect(drafts).toEqual([
      { stream: 'table', stepsExecuted: undefined },
      { stream: 'table', stepsExecuted: 0 },
      { stream: 'table', stepsExecuted: 5 },
    ]);
    expect(h.vla.cameraCounts.get('table')).toMatchObject({ received: 4, bad: 1 });
    const d = h.diagnostics();
    expect(d.values['camera table frames dropped (bad)']).toBe('1');
    expect(d.values['dropped image size']).toBe('1');
    expect(d.values.decoding).toBe('speculative');
    expect(d.values['chunks decoded']).toBe('3');
    expect(h.vla.stats.inferenceErrors).toBe(0);
    expect(h.vla.stats.chunksPublished).toBe(3);
    expect(h.vla.state).toBe('active');
    expect(h.node.shutdown().label).toBe('finalized');
    await h.vla.released();
  });
});

describe('vla-node ros with an autoregressive package', () => {
  it('refuses the live view before loading ROS 2 or the model', async () => {
    const io = { json: true, progress: () => undefined, result: () => undefined };
    await expect(rosCommand.run({ model: AR, foxglove: '0' }, io, [])).rejects.toMatchObject({
      name: 'ConfigError',
      field: 'foxglove.enabled',
      message: expect.stringContaining('with an autoregressive package') as unknown,
    });
  });
});
