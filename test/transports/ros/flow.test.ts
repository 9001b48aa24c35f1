/**
 * The node with a flow package (several cameras): one image topic per manifest camera, an
 * inference on every camera's latest frame, a missing or stale camera holding it, bad frames
 * counted per camera. The package's camera names come from models/tiny-vla-flow's manifest, read
 * at configure as the node does; the pipeline is a double that records what it is given.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import type { Observation } from '../../../src/pipeline/pipeline.js';
import type { RosImage } from '../../../src/transports/ros/messages.js';
import { VlaRosNode, type NodePipeline } from '../../../src/transports/ros/node.js';
import type { RosNodeOptionsInput } from '../../../src/transports/ros/options.js';
import { createRosDouble, type DoubleLifecycleNode } from './double.js';
import { compressed, FakePipeline, jointState, lastStatus } from './support.js';

const CONTROL = 100_000_000n; // 10 Hz
const DIAGNOSTICS = 1_000_000_000n;
const FLOW = 'models/tiny-vla-flow';

/** The FakePipeline answering for a model that sees the table and wrist cameras. */
class FakeFlowPipeline extends FakePipeline {
  readonly cameras: readonly { readonly name: string }[];
  constructor(names: readonly string[] = ['table', 'wrist']) {
    super();
    this.cameras = names.map((name) => ({ name }));
  }
}

/** A 4×4 rgb8 frame whose every byte is `fill`, stamped `sec`. */
function frame(sec: number, fill: number, frameId = 'camera'): RosImage {
  return {
    header: { stamp: { sec, nanosec: 0 }, frame_id: frameId },
    height: 4,
    width: 4,
    encoding: 'rgb8',
    is_bigendian: 0,
    step: 12,
    data: new Uint8Array(48).fill(fill),
  };
}

interface Harness {
  readonly vla: VlaRosNode;
  readonly node: DoubleLifecycleNode;
  readonly pipeline: FakeFlowPipeline;
  tick(): Promise<void>;
  advance(ms: number): void;
  diagnostics(): { message: string; values: Record<string, string> };
}

async function harness(
  overrides: Readonly<Record<string, unknown>> = {},
  options: RosNodeOptionsInput = {},
  pipeline = new FakeFlowPipeline(),
): Promise<Harness> {
  const { api, nodes } = createRosDouble();
  const config = await loadConfig({
    overrides: { 'model.path': FLOW, 'runtime.merge_mode': 'replace', ...overrides },
  });
  let now = 1_700_000_000_000;
  const vla = new VlaRosNode({
    ros: api,
    config,
    options,
    createPipeline: () => Promise.resolve(pipeline as NodePipeline),
    clock: () => now,
  });
  const node = nodes[0];
  if (node === undefined) throw new Error('no node created');
  return {
    vla,
    node,
    pipeline,
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
      return lastStatus(node.publisher('/diagnostics').messages);
    },
  };
}

async function running(
  overrides: Readonly<Record<string, unknown>> = {},
  options: RosNodeOptionsInput = {},
): Promise<Harness> {
  const h = await harness(overrides, options);
  h.node.configure();
  await h.vla.whenLoaded();
  h.node.activate();
  h.node.deliver('~/in/instruction', { data: 'move to the red block' });
  h.node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0.5, 0.5]));
  return h;
}

function fills(o: Observation | undefined): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const c of o?.cameras ?? []) {
    const data: ArrayLike<number> | undefined = c.frame.kind === 'raw' ? c.frame.data : undefined;
    out[c.camera ?? '?'] = data?.[0];
  }
  return out;
}

describe('VlaRosNode with a flow package', () => {
  it("subscribes one image topic per manifest camera when ros.cameras names none of the model's", async () => {
    const h = await harness();
    h.node.configure();
    const images = h.node.subscriptions.filter((s) => s.type === 'sensor_msgs/msg/Image');
    expect(images.map((s) => s.topic)).toEqual(['~/in/table', '~/in/wrist']);
    for (const s of images) {
      // the node's image QoS (sensor_data: best effort, depth 1) on every camera
      expect(s.options.qos).toMatchObject({ depth: 1 });
    }
    expect(h.vla.cameraPlan).toEqual({
      subscribed: ['table', 'wrist'],
      trigger: 'table',
      inputs: ['table', 'wrist'],
    });
    await h.vla.whenLoaded();
    expect(h.vla.ready).toBe(true);
    expect(h.diagnostics().values.cameras).toBe('table (trigger), wrist');
  });

  it('subscribes ~/in/<camera>/compressed per camera with ros.image_transport compressed', async () => {
    const h = await running({}, { imageTransport: 'compressed' });
    expect(
      h.node.subscriptions.map((s) => s.topic).filter((t) => t.endsWith('/compressed')),
    ).toEqual(['~/in/table/compressed', '~/in/wrist/compressed']);
    h.node.deliver('~/in/wrist/compressed', compressed(1));
    h.node.deliver('~/in/table/compressed', compressed(2));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(1);
    expect(h.pipeline.observations[0]?.cameras?.map((c) => [c.camera, c.frame.kind])).toEqual([
      ['table', 'encoded'],
      ['wrist', 'encoded'],
    ]);
  });

  it("infers on each camera's latest frame, stamped with the trigger camera's", async () => {
    const h = await running({ 'runtime.max_frame_age_ms': 2000 });
    h.node.deliver('~/in/wrist', frame(1, 11, 'wrist_cam'));
    h.node.deliver('~/in/wrist', frame(2, 22, 'wrist_cam'));
    h.node.deliver('~/in/table', frame(3, 33, 'table_cam'));
    await h.tick();
    const [first] = h.pipeline.observations;
    expect(fills(first)).toEqual({ table: 33, wrist: 22 });
    expect(first?.frame.kind === 'raw' && first.frame.data[0]).toBe(33);
    expect(first?.stamp).toBe(3000);
    expect(first?.stream).toBe('table');
    const [trajectory] = h.node.publisher('~/out/action_chunk').messages as {
      header: { frame_id: string };
    }[];
    expect(trajectory?.header.frame_id).toBe('table_cam');
    expect(h.node.publisher('~/out/action_chunk_raw').messages).toHaveLength(1);
    // a new table frame reuses the wrist's latest while it is fresh
    h.node.deliver('~/in/table', frame(4, 44, 'table_cam'));
    for (let i = 0; i < 5 && h.pipeline.observations.length < 2; i++) await h.tick();
    expect(fills(h.pipeline.observations.at(-1))).toEqual({ table: 44, wrist: 22 });
    expect(h.vla.cameraCounts.get('wrist')).toEqual({
      received: 2,
      bad: 0,
      heldMissing: 0,
      heldStale: 0,
    });
  });

  it('holds the inference while the wrist camera has sent no frame, and says so', async () => {
    const h = await running();
    h.node.deliver('~/in/table', frame(1, 10));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(0);
    expect(h.vla.cameraCounts.get('wrist')?.heldMissing).toBe(1);
    const d = h.diagnostics();
    expect(d.message).toBe('holding inference: camera wrist has sent no frame yet');
    expect(d.values['camera wrist inferences held (no frame)']).toBe('1');
    // once no chunk has come for error_consecutive_misses periods, the ERROR names the camera
    for (let i = 0; i < 3; i++) {
      h.node.deliver('~/in/table', frame(1, 10));
      await h.tick();
    }
    expect(h.diagnostics().message).toMatch(
      /^no first chunk: \d+ consecutive deadline misses with every input received \(nothing sent to the robot yet; holding inference: camera wrist has sent no frame yet\)$/,
    );
    h.node.deliver('~/in/wrist', frame(2, 20));
    h.node.deliver('~/in/table', frame(2, 30));
    await h.tick();
    expect(fills(h.pipeline.observations[0])).toEqual({ table: 30, wrist: 20 });
    // the hold is over once an inference ran
    expect(h.diagnostics().message).not.toContain('holding');
  });

  it('never mixes in a wrist frame older than runtime.max_frame_age_ms', async () => {
    const h = await running({ 'runtime.max_frame_age_ms': 300 });
    h.node.deliver('~/in/wrist', frame(1, 20));
    h.advance(400);
    h.node.deliver('~/in/table', frame(2, 30));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(0);
    expect(h.vla.cameraCounts.get('wrist')?.heldStale).toBe(1);
    const d = h.diagnostics();
    expect(d.message).toBe(
      "holding inference: camera wrist's latest frame is 500 ms old (runtime.max_frame_age_ms 300)",
    );
    expect(d.values['camera wrist inferences held (stale)']).toBe('1');
    h.node.deliver('~/in/wrist', frame(3, 21));
    h.node.deliver('~/in/table', frame(3, 31));
    await h.tick();
    expect(fills(h.pipeline.observations[0])).toEqual({ table: 31, wrist: 21 });
  });

  it('drops a bad wrist frame, counts it for the wrist, and keeps serving', async () => {
    const h = await running();
    h.node.deliver('~/in/wrist', frame(1, 20));
    const bad = { ...frame(2, 99), data: new Uint8Array(47) }; // one byte short
    h.node.deliver('~/in/wrist', bad);
    h.node.deliver('~/in/table', frame(2, 30));
    await h.tick();
    // the bad frame never reached the model: the wrist's last good frame did
    expect(fills(h.pipeline.observations[0])).toEqual({ table: 30, wrist: 20 });
    expect(h.vla.cameraCounts.get('wrist')).toMatchObject({ received: 2, bad: 1 });
    expect(h.vla.cameraCounts.get('table')).toMatchObject({ received: 1, bad: 0 });
    const d = h.diagnostics();
    expect(d.values['camera wrist frames dropped (bad)']).toBe('1');
    expect(d.values['dropped image size']).toBe('1');
    expect(
      h.node.logs.some(
        (l) => l.level === 'warn' && l.text.startsWith('dropped frame on ~/in/wrist: image size'),
      ),
    ).toBe(true);
    expect(h.vla.stats.chunksPublished).toBe(1);
    expect(h.vla.state).toBe('active');
  });

  it('ros.model_camera picks the trigger camera; the others are still all fed', async () => {
    const h = await running({}, { modelCamera: 'wrist' });
    h.node.deliver('~/in/table', frame(1, 10));
    await h.tick();
    expect(h.pipeline.observations).toHaveLength(0); // no wrist frame: nothing triggered
    h.node.deliver('~/in/wrist', frame(2, 20));
    await h.tick();
    expect(fills(h.pipeline.observations[0])).toEqual({ table: 10, wrist: 20 });
    expect(h.pipeline.observations[0]?.stamp).toBe(2000);
  });

  it('refuses ros.cameras naming only some of the cameras, and an unknown ros.model_camera', async () => {
    for (const [options, field] of [
      [{ cameras: ['table', 'side'] }, 'ros.cameras'],
      [{ modelCamera: 'image' }, 'ros.model_camera'],
    ] as const) {
      const h = await harness({}, options);
      expect(h.node.configure().label).toBe('unconfigured');
      const error = h.node.logs.find((l) => l.level === 'error')?.text ?? '';
      expect(error).toContain(`Expected ${field}`);
    }
    // every camera named, plus one more: the extra one is subscribed and counted only
    const h = await harness({}, { cameras: ['wrist', 'table', 'side'] });
    h.node.configure();
    expect(h.vla.cameraPlan?.inputs).toEqual(['table', 'wrist']);
    expect(h.vla.cameraPlan?.trigger).toBe('table');
    expect(h.node.subscriptions.map((s) => s.topic)).toContain('~/in/side');
  });

  it('fails the configure when the loaded model sees other cameras than the topics made', async () => {
    const h = await harness({}, {}, new FakeFlowPipeline(['front', 'wrist']));
    h.node.configure();
    await h.vla.whenLoaded();
    expect(h.vla.ready).toBe(false);
    expect(h.vla.state).toBe('unconfigured');
    expect(h.node.logs.map((l) => l.text)).toContain(
      "configure: the model did not load: Expected the model's cameras to be the ones subscribed at configure (table, wrist) but received front, wrist; configure again",
    );
  });
});
