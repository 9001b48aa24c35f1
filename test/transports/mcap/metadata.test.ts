/**
 * Bags the project writes carry rosbag2 Jazzy metadata (version 9) with the QoS each topic was
 * offered with, in metadata.yaml, in each channel and in the MCAP `rosbag2` metadata record, so
 * that `ros2 bag play` offers the node's instruction as transient local.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { recordSim } from '../../../src/transports/mcap/record.js';
import { TINY } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'vla-bag-metadata-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Topic {
  topic_metadata: {
    name: string;
    type: string;
    serialization_format: string;
    offered_qos_profiles: Record<string, unknown>[];
    type_description_hash: string;
  };
  message_count: number;
}

const LATCHED = {
  history: 'keep_last',
  depth: 1,
  reliability: 'reliable',
  durability: 'transient_local',
  deadline: { sec: 0, nsec: 0 },
  lifespan: { sec: 0, nsec: 0 },
  liveliness: 'automatic',
  liveliness_lease_duration: { sec: 0, nsec: 0 },
  avoid_ros_namespace_conventions: false,
};

describe('rosbag2 metadata of record-sim bags', () => {
  it('metadata.yaml is version 9 for jazzy, with each topic offered QoS', async () => {
    const out = join(dir, 'bag');
    await recordSim({ out, episodes: 1, seed: 1, ...TINY, maxSteps: 3 });
    const info = (
      parseYaml(readFileSync(join(out, 'metadata.yaml'), 'utf8')) as {
        rosbag2_bagfile_information: Record<string, unknown> & {
          topics_with_message_count: Topic[];
        };
      }
    ).rosbag2_bagfile_information;
    expect(info).toMatchObject({
      version: 9,
      storage_identifier: 'mcap',
      ros_distro: 'jazzy',
      custom_data: {},
      relative_file_paths: ['bag_0.mcap'],
    });
    const byName = new Map(info.topics_with_message_count.map((t) => [t.topic_metadata.name, t]));
    expect(byName.get('/instruction')?.topic_metadata.offered_qos_profiles).toEqual([LATCHED]);
    expect(byName.get('/camera/image_raw')?.topic_metadata.offered_qos_profiles).toEqual([
      { ...LATCHED, depth: 10, durability: 'volatile' },
    ]);
    for (const t of byName.values()) expect(t.topic_metadata.type_description_hash).toBe('');
  });

  it('a lone .mcap carries the same metadata in its channels and its rosbag2 record', async () => {
    const file = join(dir, 'lone.mcap');
    await recordSim({ out: file, episodes: 1, seed: 1, ...TINY, maxSteps: 3 });
    const bytes = readFileSync(file);
    const reader = await McapIndexedReader.Initialize({
      readable: {
        size: () => Promise.resolve(BigInt(bytes.length)),
        read: (offset, size) =>
          Promise.resolve(bytes.subarray(Number(offset), Number(offset + size))),
      },
    });
    const instruction = [...reader.channelsById.values()].find((c) => c.topic === '/instruction');
    expect(parseYaml(instruction?.metadata.get('offered_qos_profiles') ?? '')).toEqual([LATCHED]);
    const records = [];
    for await (const m of reader.readMetadata({ name: 'rosbag2' })) records.push(m);
    expect(records).toHaveLength(1);
    const serialized = parseYaml(records[0]?.metadata.get('serialized_metadata') ?? '') as {
      version: number;
      topics_with_message_count: Topic[];
    };
    expect(serialized.version).toBe(9);
    expect(serialized.topics_with_message_count).toHaveLength(4);
  });
});
