/**
 * Replay of rosbag2 MCAP bags through a flow package (models/tiny-vla-flow): one image topic per
 * camera, on a bag `record-sim` makes with both of the simulator's cameras.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../../src/cli/command.js';
import { recordSimCommand } from '../../../src/cli/record-sim.js';
import { replayCommand } from '../../../src/cli/replay.js';
import { InputError } from '../../../src/errors.js';
import { FlowPipeline } from '../../../src/flow/pipeline.js';
import { loadFlowPackage, type FlowPackage } from '../../../src/model/flow-manifest.js';
import { BagError, replay, type ReplayMetrics } from '../../../src/transports/mcap/index.js';
import { FLOW_DIR, NO_CACHES } from '../../flow/package.js';
import { TINY_VLA } from '../../helpers.js';
import { readBack } from './support.js';

function capture(): { io: CommandIo; results: object[]; progress: string[] } {
  const results: object[] = [];
  const progress: string[] = [];
  return {
    results,
    progress,
    io: {
      json: true,
      progress: (m) => progress.push(m),
      result: (v) => results.push(v),
    },
  };
}

const SET = ['sim.max_steps=12', 'backend.intra_op_threads=1', 'backend.warmup_runs=1'];

let dir: string;
let bag: string;
let frames: number;
let pkg: FlowPackage;
let pipeline: FlowPipeline;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vla-flow-replay-'));
  bag = join(dir, 'bag');
  const rec = capture();
  expect(
    await recordSimCommand.run(
      { out: bag, episodes: '2', seed: '5', model: FLOW_DIR, set: SET },
      rec.io,
      [],
    ),
  ).toBe(0);
  frames = (rec.results[0] as { frames: number }).frames;
  pkg = await loadFlowPackage(FLOW_DIR);
  pipeline = await FlowPipeline.create(pkg, {
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
    caches: NO_CACHES,
    limits: { min: [], max: [], maxDeltaPerStep: 0 },
    intraOpThreads: 1,
  });
}, 120_000);

afterAll(async () => {
  await pipeline.release();
  rmSync(dir, { recursive: true, force: true });
});

describe('record-sim with a flow package', () => {
  it('records every camera of the package, the wrist camera on /wrist_camera/image_raw', async () => {
    expect(frames).toBeGreaterThan(0);
    const back = await readBack(join(bag, 'bag_0.mcap'));
    expect(back.messages.get('/camera/image_raw')).toHaveLength(frames);
    const wrist = back.messages.get('/wrist_camera/image_raw') ?? [];
    expect(wrist).toHaveLength(frames);
    // Each wrist frame comes just before the table frame of its step.
    const table = back.messages.get('/camera/image_raw') ?? [];
    wrist.forEach((w, i) => {
      expect(w.logTime).toBeLessThan((table[i] as { logTime: bigint }).logTime);
    });
  });
});

describe('replay with a flow package', () => {
  it('infers once per table frame with the latest wrist frame: finite chunks within the limits', async () => {
    const { chunks, metrics } = await replay(bag, { pipeline });
    expect(metrics.camera_topics).toEqual({
      table: '/camera/image_raw',
      wrist: '/wrist_camera/image_raw',
    });
    expect(metrics.frames).toBe(frames);
    expect(chunks).toHaveLength(frames);
    expect(metrics.warnings).toEqual({});
    expect(metrics.missing_topics).toEqual([]);
    expect(metrics.action_error?.mean_abs).toHaveLength(pkg.manifest.chunk.action_dim);
    const { horizon, action_dim: A } = pkg.manifest.chunk;
    for (const chunk of chunks) {
      expect(chunk.actions.length).toBe(horizon * A);
      chunk.actions.forEach((v, i) => {
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThanOrEqual(pkg.manifest.action.min[i % A] as number);
        expect(v).toBeLessThanOrEqual(pkg.manifest.action.max[i % A] as number);
      });
    }
    // The noise is seeded by each frame's stamp: a second replay gives the same chunks.
    const again = await replay(bag, { pipeline });
    expect(again.chunks.map((c) => Array.from(c.actions))).toEqual(
      chunks.map((c) => Array.from(c.actions)),
    );
  });

  it('skips frames while a camera topic has no message, and reports the topic missing', async () => {
    const { chunks, metrics } = await replay(bag, {
      pipeline,
      cameraTopics: { wrist: '/no/such/topic' },
    });
    expect(chunks).toHaveLength(0);
    expect(metrics.warnings).toEqual({ no_image_wrist: frames });
    expect(metrics.missing_topics).toContainEqual({
      role: 'camera wrist',
      topic: '/no/such/topic',
    });
    const skipped = metrics.skipped_topics.map((s) => s.topic);
    expect(skipped).toContain('/wrist_camera/image_raw');
  });

  it('refuses a camera the model does not have and a camera topic of another type, naming the field', async () => {
    const unknown = await replay(bag, { pipeline, cameraTopics: { depth: '/x' } }).catch(
      (e: unknown) => e,
    );
    expect(unknown).toBeInstanceOf(InputError);
    expect((unknown as InputError).field).toBe('camera_topics.depth');
    const taken = await replay(bag, {
      pipeline,
      cameraTopics: { wrist: '/joint_states' },
    }).catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(InputError);
    expect((taken as InputError).field).toBe('camera_topics.wrist');
    const wrongType = await replay(bag, {
      pipeline,
      topics: { reference: '/not/recorded' },
      cameraTopics: { wrist: '/expert/actions' },
    }).catch((e: unknown) => e);
    expect(wrongType).toBeInstanceOf(BagError);
    expect((wrongType as BagError).field).toBe('camera_topics.wrist');
    expect((wrongType as BagError).message).toContain("wrist camera's topic");
  });

  it('runs as `vla-node replay` with --camera-topic, and refuses it for a one-camera package', async () => {
    const play = capture();
    const out = join(dir, 'out.mcap');
    const values = {
      out,
      model: FLOW_DIR,
      'camera-topic': ['wrist=/wrist_camera/image_raw'],
      set: SET,
    };
    expect(await replayCommand.run(values, play.io, [bag])).toBe(0);
    const summary = play.results[0] as ReplayMetrics & { model: string };
    expect(summary.model).toBe(pkg.manifest.name);
    expect(summary.chunks).toBe(frames);
    const back = await readBack(out);
    expect(back.messages.get('/vla_node/out/action_chunk_raw')).toHaveLength(frames);
    await expect(
      replayCommand.run(
        { model: TINY_VLA, 'camera-topic': ['wrist=/wrist_camera/image_raw'], set: SET },
        capture().io,
        [bag],
      ),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'camera-topic' });
    await expect(
      replayCommand.run({ model: FLOW_DIR, 'camera-topic': ['wrist'], set: SET }, capture().io, [
        bag,
      ]),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'camera-topic' });
    // The live view shows one camera: refused before the model loads, not half-shown.
    await expect(
      replayCommand.run({ model: FLOW_DIR, foxglove: '0', set: SET }, capture().io, [bag]),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'foxglove.enabled' });
  });
});
