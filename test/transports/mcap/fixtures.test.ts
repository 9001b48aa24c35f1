import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { McapWriter, type DecompressHandlers } from '@mcap/core';
import { mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BagError,
  builtinDecompressHandlers,
  cdrReader,
  readBag,
  replay,
} from '../../../src/transports/mcap/index.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';

/** Bags written by the real rosbag2 recorder (shared fixtures; absent in a user's clone). */
const ROSBAG2 = fileURLToPath(new URL('../../../../shared/fixtures/rosbag2/', import.meta.url));
const HAVE_BAGS = existsSync(ROSBAG2);
if (!HAVE_BAGS) console.warn(`skipping real rosbag2 bags: ${ROSBAG2} is absent`);

/** The fixture bags use zstd chunks: node:zlib (Node >= 22.15) or fzstd decompress them. */
const ZSTD: DecompressHandlers = await builtinDecompressHandlers();

let pipeline: VlaPipeline;
beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
});
afterAll(async () => {
  await pipeline.release();
});

describe.skipIf(!HAVE_BAGS)('real rosbag2 bags', () => {
  const talker = `${ROSBAG2}talker.mcap`;
  const cdrTest = `${ROSBAG2}cdr_test_0.mcap`;

  it('maps talker /topic (std_msgs/String) to the instruction and lists the rest as skipped', async () => {
    const { chunks, metrics } = await replay(talker, {
      pipeline,
      topics: { instruction: '/topic' },
      decompressHandlers: ZSTD,
    });
    expect(chunks).toEqual([]);
    expect(metrics.frames).toBe(0);
    expect(metrics.messages).toEqual({ '/rosout': 10, '/parameter_events': 0, '/topic': 10 });
    expect(metrics.skipped_topics).toEqual([
      {
        topic: '/rosout',
        type: 'rcl_interfaces/msg/Log',
        messages: 10,
        reason: 'not mapped to a pipeline input',
      },
      {
        topic: '/parameter_events',
        type: 'rcl_interfaces/msg/ParameterEvent',
        messages: 0,
        reason: 'not mapped to a pipeline input',
      },
    ]);
    expect(metrics.warnings).toEqual({});
    expect(metrics.missing_topics).toEqual([
      { role: 'image', topic: '/camera/image_raw' },
      { role: 'state', topic: '/joint_states' },
      { role: 'reference', topic: '/expert/actions' },
    ]);
  });

  it('decodes the talker strings with the schema in the file', async () => {
    const seen: string[] = [];
    for await (const e of readBag(talker, { decompressHandlers: ZSTD })) {
      if (e.kind !== 'message' || e.channel.topic !== '/topic') continue;
      expect(e.channel.schemaEncoding).toBe('ros2msg');
      const reader = cdrReader(new TextDecoder().decode(e.channel.schemaData));
      seen.push(reader.readMessage<{ data: string }>(e.data).data);
    }
    expect(seen).toHaveLength(10);
    expect(seen[0]).toMatch(/^Hello/);
  });

  it('reads cdr_test_0.mcap and skips its test_msgs topics', async () => {
    const { metrics } = await replay(cdrTest, { pipeline, decompressHandlers: ZSTD });
    expect(metrics.frames).toBe(0);
    expect(metrics.messages).toEqual({ '/test_topic': 3, '/array_topic': 4 });
    expect(metrics.skipped_topics.map((s) => [s.topic, s.type, s.messages])).toEqual([
      ['/test_topic', 'test_msgs/msg/BasicTypes', 3],
      ['/array_topic', 'test_msgs/msg/Arrays', 4],
    ]);
  });

  it('says which decompressor is missing for a chunk compression it cannot read', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'vla-lz4-')), 'lz4.mcap');
    const handle = await open(file, 'w');
    const writer = new McapWriter({
      writable: {
        position: () => BigInt(position),
        write: async (b: Uint8Array) => {
          await handle.write(b);
          position += b.byteLength;
        },
      },
      // Label the chunks lz4 without compressing: the reader must refuse them by name.
      compressChunk: (data: Uint8Array) => ({ compression: 'lz4', compressedData: data }),
    });
    let position = 0;
    await writer.start({ profile: 'ros2', library: 'test' });
    const schema = await writer.registerSchema({
      name: 'std_msgs/msg/String',
      encoding: 'ros2msg',
      data: new TextEncoder().encode('string data'),
    });
    const channel = await writer.registerChannel({
      topic: '/t',
      schemaId: schema,
      messageEncoding: 'cdr',
      metadata: new Map(),
    });
    await writer.addMessage({
      channelId: channel,
      sequence: 0,
      logTime: 1n,
      publishTime: 1n,
      data: Uint8Array.of(0, 1, 0, 0, 1, 0, 0, 0, 0),
    });
    await writer.end();
    await handle.close();
    const drain = async (): Promise<number> => {
      let n = 0;
      for await (const e of readBag(file)) n += e.kind === 'message' ? 1 : 0;
      return n;
    };
    await expect(drain()).rejects.toThrow(BagError);
    await expect(drain()).rejects.toThrow(/chunk compression .* but received lz4/);
  });

  it('rejects a String topic mapped as the image, naming the field', async () => {
    await expect(
      replay(talker, { pipeline, topics: { image: '/topic' }, decompressHandlers: ZSTD }),
    ).rejects.toMatchObject({ name: 'BagError', code: 'INVALID_INPUT', field: 'topics.image' });
  });
});
