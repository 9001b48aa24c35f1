import { describe, expect, it } from 'vitest';
import type { Frame } from '../../../src/ingest/index.js';
import { loadConfig } from '../../../src/config/index.js';
import type { CommandSource, ObservedChunk, RunObserver } from '../../../src/pipeline/observer.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import type { RosJointTrajectory } from '../../../src/transports/ros/messages.js';
import { createRosDouble } from './double.js';
import { FakePipeline, image, jointState } from './support.js';

const CONTROL = 100_000_000n;

describe('VlaRosNode run observer', () => {
  it('is told each frame inferred on, each chunk with its frame, and each action of the control loop', async () => {
    const { api, nodes } = createRosDouble();
    const config = await loadConfig({ overrides: { 'runtime.merge_mode': 'replace' } });
    let now = 1_700_000_000_000;
    const frames: { frame: Frame; instruction: string; stream: string }[] = [];
    const chunks: { chunk: ObservedChunk; frame: Frame | undefined }[] = [];
    const commands: { action: number[]; source: CommandSource }[] = [];
    const observer: RunObserver = {
      onFrame: (frame, instruction, stream) => frames.push({ frame, instruction, stream }),
      onChunk: (chunk, frame) => chunks.push({ chunk, frame }),
      onCommand: (action, source) => commands.push({ action: Array.from(action), source }),
    };
    const pipeline = new FakePipeline();
    const vla = new VlaRosNode({
      ros: api,
      config,
      createPipeline: () => Promise.resolve(pipeline),
      clock: () => now,
      observer,
    });
    const node = nodes[0];
    if (node === undefined) throw new Error('no node created');
    node.configure();
    await vla.whenLoaded();
    node.activate();
    node.deliver('~/in/instruction', { data: 'pick up the red block' });
    node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow', 'wrist'], [0.1, 0.2, 0.3]));
    node.deliver('~/in/image', image(100, 5));
    for (let i = 0; i < 3; i++) {
      now += 100;
      node.fire(CONTROL);
      await vla.idle();
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ instruction: 'pick up the red block', stream: 'image' });
    expect(frames[0]?.frame).toMatchObject({ kind: 'raw' });
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.frame).toBe(frames[0]?.frame);
    const published = node.publisher('~/out/action_chunk').messages as RosJointTrajectory[];
    expect(published).toHaveLength(1);
    // The published plan is the merged chunk from the current step on: the chunk's first action
    // was due in the period its inference took.
    expect(Array.from(chunks[0]?.chunk.actions ?? []).slice(2)).toEqual(
      published[0]?.points.flatMap((p) => Array.from(p.positions)),
    );
    // One action per control period once a plan exists (before it the node sends no command).
    expect(commands.map((c) => c.source)).toEqual(['plan', 'plan']);
    const points = published[0]?.points.map((p) => Array.from(p.positions)) ?? [];
    expect(commands.map((c) => c.action)).toEqual(points.slice(0, 2));
  });
});
