/**
 * Every message the node publishes (and the inputs the tests feed it) encodes to CDR with the
 * standard ROS 2 definitions and decodes back equal: the shapes match the real messages.
 */
import { ros2humble } from '@foxglove/rosmsg-msgs-common';
import { MessageReader, MessageWriter } from '@foxglove/rosmsg2-serialization';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import { createRosDouble } from './double.js';
import { compressed, FakePipeline, image, jointState } from './support.js';

type Definitions = typeof ros2humble;

function roundTrip(type: string, message: unknown): unknown {
  const key = type.replace('/msg/', '/') as keyof Definitions;
  const root = ros2humble[key];
  expect(root, `definition of ${type}`).toBeDefined();
  const all = [root, ...Object.values(ros2humble).filter((d) => d !== root)];
  const bytes = new MessageWriter(all).writeMessage(message);
  return new MessageReader(all).readMessage(bytes);
}

async function published(): Promise<Map<string, { type: string; message: unknown }>> {
  const { api, nodes } = createRosDouble();
  const config = await loadConfig({ overrides: { 'runtime.merge_mode': 'replace' } });
  const vla = new VlaRosNode({
    ros: api,
    config,
    options: { publishPrunedImage: true },
    createPipeline: () => Promise.resolve(new FakePipeline()),
  });
  const node = nodes[0];
  if (node === undefined) throw new Error('no node');
  vla.autoActivate();
  await vla.whenLoaded();
  node.deliver('~/in/instruction', { data: 'stack the blocks' });
  node.deliver('~/in/joint_states', jointState(['shoulder', 'elbow'], [0.25, -0.5]));
  node.deliver('~/in/image', image(42, 7));
  node.fire(100_000_000n);
  await vla.idle();
  node.fire(1_000_000_000n);
  const out = new Map<string, { type: string; message: unknown }>();
  for (const p of node.publishers) {
    const message = p.messages.at(-1);
    if (message !== undefined) out.set(p.topic, { type: p.type, message });
  }
  return out;
}

describe('ROS 2 message shapes (CDR round trip)', async () => {
  const messages = await published();

  it('publishes on every output topic', () => {
    expect([...messages.keys()].sort()).toEqual([
      '/diagnostics',
      '~/debug/processing_time_ms',
      '~/debug/pruned_image',
      '~/out/action_chunk',
      '~/out/action_chunk_raw',
    ]);
  });

  it.each([...messages.entries()])(
    '%s encodes and decodes back equal',
    (_topic, { type, message }) => {
      expect(roundTrip(type, message)).toEqual(message);
    },
  );

  it.each([
    ['sensor_msgs/msg/Image', image(1, 2)],
    ['sensor_msgs/msg/CompressedImage', compressed(3)],
    ['sensor_msgs/msg/JointState', jointState(['a', 'b'], [1, 2])],
    ['std_msgs/msg/String', { data: 'pick' }],
  ])('input %s as the tests feed it matches the real message', (type, message) => {
    expect(roundTrip(type, message)).toEqual(message);
  });
});
