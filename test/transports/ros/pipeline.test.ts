/** The node on the real pipeline and the shipped tiny model, driven through the RosApi double. */
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
});
