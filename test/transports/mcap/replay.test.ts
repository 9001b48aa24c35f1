import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline, type ActionChunk } from '../../../src/pipeline/pipeline.js';
import { expertChunk } from '../../../src/sim/expert.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import {
  BagWriter,
  DEFAULT_TOPICS,
  OUTPUT_TOPICS,
  recordSim,
  replay,
  schemaText,
  type ReplayResult,
} from '../../../src/transports/mcap/index.js';
import { episodeSeed } from '../../../src/util/rng.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { readBack, standardReader, TINY } from './support.js';

const EPISODES = 2;
const SEED = 11;

let pipeline: VlaPipeline;
let dir: string;
let bag: string;
let first: ReplayResult;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  dir = mkdtempSync(join(tmpdir(), 'vla-mcap-'));
  bag = join(dir, 'sim_bag');
  await recordSim({ out: bag, episodes: EPISODES, seed: SEED, maxSteps: 30, ...TINY });
  first = await replay(bag, { pipeline, out: join(dir, 'out.mcap') });
});
afterAll(async () => {
  await pipeline.release();
  rmSync(dir, { recursive: true, force: true });
});

/** The chunks the pipeline computes on the simulator's frames in-process. */
async function inProcess(): Promise<ActionChunk[]> {
  const chunks: ActionChunk[] = [];
  const expert = new Float32Array(TINY.horizon * 2);
  for (let e = 0; e < EPISODES; e++) {
    const sim = new TabletopSim({ seed: episodeSeed(SEED, e), maxSteps: 30 });
    while (!sim.done) {
      const obs = sim.observe();
      chunks.push(
        await pipeline.infer({ frame: obs.image, instruction: obs.instruction, state: obs.state }),
      );
      expertChunk(sim.effector, sim.scene.task.goal, TINY.horizon, expert);
      sim.step(expert.subarray(0, 2));
    }
  }
  return chunks;
}

describe('record-sim bags', () => {
  it('is a rosbag2 folder: metadata.yaml naming its .mcap file and topic counts', () => {
    const meta = parseYaml(readFileSync(join(bag, 'metadata.yaml'), 'utf8')) as {
      rosbag2_bagfile_information: {
        storage_identifier: string;
        relative_file_paths: string[];
        message_count: number;
        topics_with_message_count: { topic_metadata: { name: string; type: string } }[];
      };
    };
    const info = meta.rosbag2_bagfile_information;
    expect(info.storage_identifier).toBe('mcap');
    expect(info.relative_file_paths).toEqual(['sim_bag_0.mcap']);
    expect(existsSync(join(bag, 'sim_bag_0.mcap'))).toBe(true);
    const types = Object.fromEntries(
      info.topics_with_message_count.map((t) => [t.topic_metadata.name, t.topic_metadata.type]),
    );
    expect(types).toEqual({
      [DEFAULT_TOPICS.instruction]: 'std_msgs/msg/String',
      [DEFAULT_TOPICS.state]: 'sensor_msgs/msg/JointState',
      [DEFAULT_TOPICS.reference]: 'std_msgs/msg/Float32MultiArray',
      [DEFAULT_TOPICS.image]: 'sensor_msgs/msg/Image',
    });
  });

  it('stores schemas as rosbag2 does and decodes with the standard definitions', async () => {
    const back = await readBack(join(bag, 'sim_bag_0.mcap'));
    expect(back.header.profile).toBe('ros2');
    const image = back.schemas.find((s) => s.name === 'sensor_msgs/msg/Image');
    expect(image?.encoding).toBe('ros2msg');
    expect(new TextDecoder().decode(image?.data)).toBe(schemaText('sensor_msgs/msg/Image'));
    expect(new TextDecoder().decode(image?.data)).toContain(
      `${'='.repeat(80)}\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\n`,
    );
    const msg = back.messages.get(DEFAULT_TOPICS.image)?.[0];
    const decoded = standardReader('sensor_msgs/Image', 'std_msgs/Header').readMessage<{
      width: number;
      height: number;
      encoding: string;
      step: number;
      data: Uint8Array;
    }>(msg?.data ?? new Uint8Array());
    expect(decoded).toMatchObject({ width: 128, height: 128, encoding: 'rgb8', step: 384 });
    expect(decoded.data.length).toBe(128 * 128 * 3);
    const times = [...back.messages.values()].flat().map((m) => m.logTime);
    expect(new Set(times).size).toBe(times.length);
  });
});

describe('replay', () => {
  it('reproduces bit for bit the chunks the pipeline computes in-process', async () => {
    const expected = await inProcess();
    expect(first.chunks.length).toBe(expected.length);
    expect(first.metrics.frames).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) {
      expect(first.chunks[i]?.actions).toEqual(expected[i]?.actions);
    }
    expect(first.metrics.warnings).toEqual({});
    expect(first.metrics.skipped_topics).toEqual([]);
    expect(first.metrics.missing_topics).toEqual([]);
    expect(first.metrics.action_error?.chunks).toBe(expected.length);
    expect(first.metrics.action_error?.mean_abs).toHaveLength(2);
  });

  it('gives bit-identical chunks on a second run of the same bag', async () => {
    const again = await replay(bag, { pipeline });
    const bits = (r: ReplayResult): number[][] =>
      r.chunks.map((c) => Array.from(new Uint32Array(c.actions.buffer)));
    expect(bits(again)).toEqual(bits(first));
  });

  it('writes chunks that decode with the standard definitions', async () => {
    const back = await readBack(join(dir, 'out.mcap'));
    expect(back.header.profile).toBe('ros2');
    for (const s of back.schemas) expect(s.encoding).toBe('ros2msg');
    for (const c of back.channels) expect(c.messageEncoding).toBe('cdr');
    const trajectories = back.messages.get(OUTPUT_TOPICS.chunk) ?? [];
    const raws = back.messages.get(OUTPUT_TOPICS.raw) ?? [];
    expect(trajectories).toHaveLength(first.chunks.length);
    expect(raws).toHaveLength(first.chunks.length);
    const jt = standardReader(
      'trajectory_msgs/JointTrajectory',
      'std_msgs/Header',
      'trajectory_msgs/JointTrajectoryPoint',
    );
    const fa = standardReader(
      'std_msgs/Float32MultiArray',
      'std_msgs/MultiArrayLayout',
      'std_msgs/MultiArrayDimension',
    );
    const chunk = first.chunks[3] as ActionChunk;
    const t = jt.readMessage<{
      header: { stamp: { sec: number; nanosec: number } };
      joint_names: string[];
      points: { positions: Float64Array; time_from_start: { sec: number; nanosec: number } }[];
    }>(trajectories[3]?.data ?? new Uint8Array());
    expect(t.joint_names).toEqual(['x', 'y']);
    expect(t.points).toHaveLength(chunk.horizon);
    expect(Float32Array.from(t.points.flatMap((p) => Array.from(p.positions)))).toEqual(
      chunk.actions,
    );
    expect(t.points[1]?.time_from_start).toEqual({ sec: 0, nanosec: 200_000_000 });
    const stampMs = t.header.stamp.sec * 1000 + t.header.stamp.nanosec / 1e6;
    expect(stampMs).toBeCloseTo(chunk.sourceStamp ?? NaN, 3);
    const raw = fa.readMessage<{
      layout: { dim: { label: string; size: number }[] };
      data: Float32Array;
    }>(raws[3]?.data ?? new Uint8Array());
    expect(raw.layout.dim.map((d) => [d.label, d.size])).toEqual([
      ['horizon', 8],
      ['action_dim', 2],
    ]);
    expect(Float32Array.from(raw.data)).toEqual(chunk.actions);
    const diagnostics = back.messages.get(OUTPUT_TOPICS.diagnostics) ?? [];
    expect(diagnostics).toHaveLength(Math.floor(first.chunks.length / 10));
    const da = standardReader(
      'diagnostic_msgs/DiagnosticArray',
      'std_msgs/Header',
      'diagnostic_msgs/DiagnosticStatus',
      'diagnostic_msgs/KeyValue',
    ).readMessage<{ status: { values: { key: string; value: string }[] }[] }>(
      diagnostics[0]?.data ?? new Uint8Array(),
    );
    expect(da.status[0]?.values.map((v) => v.key)).toContain('latency_p95_ms');
  });

  it('writes a bag folder with metadata.yaml when --out names a folder', async () => {
    const out = join(dir, 'out_bag');
    const r = await replay(bag, { pipeline, out });
    const meta = parseYaml(readFileSync(join(out, 'metadata.yaml'), 'utf8')) as {
      rosbag2_bagfile_information: { message_count: number; relative_file_paths: string[] };
    };
    const expected = 2 * r.chunks.length + Math.floor(r.chunks.length / 10);
    expect(meta.rosbag2_bagfile_information.message_count).toBe(expected);
    expect(meta.rosbag2_bagfile_information.relative_file_paths).toEqual(['out_bag_0.mcap']);
  });

  it('paces playback at a multiple of the bag clock', async () => {
    const short = join(dir, 'short');
    await recordSim({ out: short, episodes: 1, seed: SEED, maxSteps: 4, ...TINY });
    const r = await replay(short, { pipeline, rate: 4 });
    // 4 frames 100 ms apart at 4x: at least 3 × 25 ms.
    expect(r.metrics.frames).toBe(4);
    expect(r.metrics.wall_s).toBeGreaterThanOrEqual(0.07);
  });
});

describe('replay inputs', () => {
  it('gives the same chunks for a lossless CompressedImage (PNG) as for the raw Image', async () => {
    const sharp = (await import('sharp')).default;
    const sim = new TabletopSim({ seed: 4 });
    const obs = sim.observe();
    const png = await sharp(obs.image.data, { raw: { width: 128, height: 128, channels: 3 } })
      .png()
      .toBuffer();
    const file = join(dir, 'compressed.mcap');
    const w = await BagWriter.create({ path: file });
    const header = { stamp: { sec: 1, nanosec: 0 }, frame_id: 'camera' };
    await w.write('/instruction', 'std_msgs/msg/String', { data: obs.instruction }, 1n);
    await w.write(
      '/joint_states',
      'sensor_msgs/msg/JointState',
      {
        header,
        name: ['y', 'x', 'gripper'],
        position: [obs.state[1], obs.state[0], 7],
        velocity: [],
        effort: [],
      },
      2n,
    );
    await w.write(
      '/cam/compressed',
      'sensor_msgs/msg/CompressedImage',
      { header, format: 'png', data: new Uint8Array(png) },
      3n,
    );
    await w.close();
    const { chunks } = await replay(file, { pipeline, topics: { image: '/cam/compressed' } });
    const direct = await pipeline.infer({
      frame: obs.image,
      instruction: obs.instruction,
      state: obs.state,
    });
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.actions).toEqual(direct.actions);
    expect(chunks[0]?.sourceStamp).toBe(1000);
  });

  it('plays the files of a bag folder in metadata order', async () => {
    const a = join(dir, 'part_a');
    const b = join(dir, 'part_b');
    await recordSim({ out: a, episodes: 1, seed: 1, maxSteps: 5, ...TINY });
    await recordSim({
      out: b,
      episodes: 1,
      seed: 2,
      maxSteps: 5,
      startTimeNs: 1_800_000_000_000_000_000n,
      ...TINY,
    });
    const folder = join(dir, 'split');
    mkdirSync(folder);
    copyFileSync(join(a, 'part_a_0.mcap'), join(folder, 'split_0.mcap'));
    copyFileSync(join(b, 'part_b_0.mcap'), join(folder, 'split_1.mcap'));
    writeFileSync(
      join(folder, 'metadata.yaml'),
      'rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: mcap\n  relative_file_paths: [split_0.mcap, split_1.mcap]\n',
    );
    const whole = await replay(folder, { pipeline });
    const first = await replay(a, { pipeline });
    const second = await replay(b, { pipeline });
    expect(whole.metrics.files.map((f) => f.slice(folder.length + 1))).toEqual([
      'split_0.mcap',
      'split_1.mcap',
    ]);
    expect(whole.chunks.map((c) => c.actions)).toEqual(
      [...first.chunks, ...second.chunks].map((c) => c.actions),
    );
  });

  it('is deterministic with a stateful (temporal) pruner', async () => {
    const temporal = await VlaPipeline.create(
      await loadModelPackage(TINY_VLA),
      testPipelineOptions({
        pruning: { strategy: 'temporal', keepRatio: 0.5, keepCount: 0, seed: 0, minKeepRatio: 0.1 },
      }),
    );
    try {
      const bits = (r: ReplayResult): number[][] =>
        r.chunks.map((c) => Array.from(new Uint32Array(c.actions.buffer)));
      const one = await replay(bag, { pipeline: temporal });
      const two = await replay(bag, { pipeline: temporal });
      expect(bits(two)).toEqual(bits(one));
    } finally {
      await temporal.release();
    }
  });
});
