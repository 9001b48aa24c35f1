/** The node on the real pipeline and the shipped tiny model, driven through the RosApi double. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { createPipeline } from '../../../src/cli/start.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import type { RosJointTrajectory } from '../../../src/transports/ros/messages.js';
import { createRosDouble } from './double.js';
import { jointState } from './support.js';

describe('VlaRosNode with the shipped model', () => {
  it('configures (load + warm-up), then publishes a safe chunk from a bgr8 camera frame', async () => {
    const { api, nodes } = createRosDouble({ 'runtime.merge_mode': 'rtc' });
    const config = await loadConfig({ overrides: { 'backend.warmup_runs': 1 } });
    const vla = new VlaRosNode({ ros: api, config, createPipeline });
    const node = nodes[0];
    if (node === undefined) throw new Error('no node');
    vla.autoActivate();
    await vla.whenLoaded();
    expect(vla.ready).toBe(true);
    expect(node.logs.map((l) => l.text)).toEqual(
      expect.arrayContaining([
        'configure: loading model models/tiny-vla (fp32)',
        expect.stringMatching(/^ready: model warmed up on cpu; control at 10\.0 Hz$/),
      ]),
    );
    node.deliver('~/in/instruction', { data: 'move to the red block' });
    node.deliver('~/in/joint_states', jointState(['y', 'x'], [0.4, 0.6]));
    const width = 128;
    const height = 96;
    node.deliver('~/in/image', {
      header: { stamp: { sec: 12, nanosec: 345 }, frame_id: 'cam' },
      width,
      height,
      encoding: 'bgr8',
      is_bigendian: 0,
      step: width * 3,
      data: new Uint8Array(width * height * 3).fill(120),
    });
    node.fire(100_000_000n);
    await vla.idle();
    const [trajectory] = node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
    // the merged plan starts one control period after the frame (the chunk arrived for step 1)
    expect(trajectory?.header.stamp).toEqual({ sec: 12, nanosec: 100_000_345 });
    expect(trajectory?.joint_names).toEqual(['x', 'y']);
    expect(trajectory?.points).toHaveLength(7);
    for (const point of trajectory?.points ?? []) {
      for (const v of point.positions) expect(Number.isFinite(v)).toBe(true);
    }
    expect(node.shutdown().label).toBe('finalized');
  });

  it('runs the shipped flow package on a frame from each of its cameras', async () => {
    const { api, nodes } = createRosDouble({ 'runtime.merge_mode': 'replace' });
    const config = await loadConfig({
      overrides: { 'model.path': 'models/tiny-vla-flow', 'backend.warmup_runs': 1 },
    });
    const vla = new VlaRosNode({ ros: api, config, createPipeline });
    const node = nodes[0];
    if (node === undefined) throw new Error('no node');
    vla.autoActivate();
    await vla.whenLoaded();
    expect(vla.ready).toBe(true);
    expect(node.logs.map((l) => l.text)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^flow package tiny-vla-flow: cameras table \+ wrist, \d+ denoising steps/,
        ),
      ]),
    );
    node.deliver('~/in/instruction', { data: 'move to the red block' });
    node.deliver('~/in/joint_states', jointState(['x', 'y'], [0.4, 0.6]));
    const camera = (fill: number, frameId: string) => ({
      header: { stamp: { sec: 7, nanosec: 0 }, frame_id: frameId },
      width: 96,
      height: 80,
      encoding: 'bgr8',
      is_bigendian: 0,
      step: 96 * 3,
      data: new Uint8Array(96 * 80 * 3).fill(fill),
    });
    node.deliver('~/in/wrist', camera(60, 'wrist_cam'));
    node.deliver('~/in/table', camera(140, 'table_cam'));
    node.fire(100_000_000n);
    await vla.idle();
    expect(vla.stats.inferenceErrors).toBe(0);
    const [trajectory] = node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
    expect(trajectory?.header.frame_id).toBe('table_cam');
    expect(trajectory?.joint_names).toEqual(['x', 'y']);
    expect(trajectory?.points.length).toBeGreaterThan(0);
    // within the manifest's action limits (the parameter file sets none of its own)
    const { action } = JSON.parse(await readFile('models/tiny-vla-flow/manifest.json', 'utf8')) as {
      action: { min: number[]; max: number[] };
    };
    for (const point of trajectory?.points ?? []) {
      for (const [d, v] of point.positions.entries()) {
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThanOrEqual(action.min[d] ?? Number.NaN);
        expect(v).toBeLessThanOrEqual(action.max[d] ?? Number.NaN);
      }
    }
    const [raw] = node.publisher('~/out/action_chunk_raw').messages as { data: Float32Array }[];
    expect(raw?.data).toHaveLength(16 * 2);
    expect(node.shutdown().label).toBe('finalized');
    await vla.released();
  });
});
