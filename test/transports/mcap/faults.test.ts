import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader, McapWriter, type IWritable } from '@mcap/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BagError,
  BagWriter,
  DEFAULT_TOPICS,
  OUTPUT_TOPICS,
  recordSim,
  replay,
  schemaText,
} from '../../../src/transports/mcap/index.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { readBack, TINY } from './support.js';

let pipeline: VlaPipeline;
let dir: string;
/** The .mcap file of a 3-episode record-sim bag. */
let good: string;
let goodFrames: number;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  dir = mkdtempSync(join(tmpdir(), 'vla-mcap-faults-'));
  const r = await recordSim({
    out: join(dir, 'good'),
    episodes: 3,
    seed: 5,
    maxSteps: 30,
    ...TINY,
  });
  good = join(dir, 'good', 'good_0.mcap');
  goodFrames = r.frames;
});
afterAll(async () => {
  await pipeline.release();
  rmSync(dir, { recursive: true, force: true });
});

function image(data: Uint8Array, step: number, height: number) {
  return {
    header: { stamp: { sec: 1, nanosec: 0 }, frame_id: '' },
    height,
    width: step / 3,
    encoding: 'rgb8',
    is_bigendian: 0,
    step,
    data,
  };
}

describe('faulty bags', () => {
  it('replays a truncated file up to its last complete record, with a warning', async () => {
    const bytes = readFileSync(good);
    const cut = join(dir, 'truncated.mcap');
    writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    const out = join(dir, 'truncated-out.mcap');
    const { chunks, metrics } = await replay(cut, { pipeline, out });
    expect(metrics.warnings).toEqual({ truncated: 1 });
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.length).toBeLessThan(goodFrames);
    const back = await readBack(out);
    expect(back.messages.get(OUTPUT_TOPICS.chunk)).toHaveLength(chunks.length);
  });

  it('throws a BagError at a corrupt chunk and keeps the chunks computed before it', async () => {
    const bytes = new Uint8Array(readFileSync(good));
    const reader = await McapIndexedReader.Initialize({
      readable: {
        size: () => Promise.resolve(BigInt(bytes.length)),
        read: (o, s) => Promise.resolve(bytes.subarray(Number(o), Number(o + s))),
      },
    });
    expect(reader.chunkIndexes.length).toBeGreaterThanOrEqual(3);
    const third = reader.chunkIndexes[2];
    const at = Number((third?.chunkStartOffset ?? 0n) + (third?.chunkLength ?? 0n) / 2n);
    for (let i = 0; i < 16; i++) bytes[at + i] = (bytes[at + i] ?? 0) ^ 0xff;
    const bad = join(dir, 'corrupt.mcap');
    writeFileSync(bad, bytes);
    const out = join(dir, 'corrupt-out.mcap');
    const seen: number[] = [];
    const error = await replay(bad, {
      pipeline,
      out,
      onChunk: (c) => seen.push(c.sequence),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BagError);
    expect((error as BagError).field).toBe(bad);
    expect((error as BagError).message).toMatch(/Expected a readable MCAP chunk/);
    expect(seen.length).toBeGreaterThan(0);
    const back = await readBack(out);
    expect(back.messages.get(OUTPUT_TOPICS.chunk)).toHaveLength(seen.length);
  });

  it('rejects a mapped topic with an unknown schema encoding and skips unmapped ones', async () => {
    const file = join(dir, 'protobuf.mcap');
    const handle = await open(file, 'w');
    let position = 0n;
    const writable: IWritable = {
      write: async (b) => {
        await handle.write(b);
        position += BigInt(b.length);
      },
      position: () => position,
    };
    const w = new McapWriter({ writable });
    await w.start({ profile: 'ros2', library: 'test' });
    const proto = await w.registerSchema({
      name: 'foxglove.RawImage',
      encoding: 'protobuf',
      data: new Uint8Array([1, 2, 3]),
    });
    const other = await w.registerChannel({
      schemaId: proto,
      topic: '/other',
      messageEncoding: 'protobuf',
      metadata: new Map(),
    });
    await w.addMessage({
      channelId: other,
      sequence: 0,
      logTime: 1n,
      publishTime: 1n,
      data: new Uint8Array(4),
    });
    await w.end();
    await handle.close();
    const { metrics } = await replay(file, { pipeline });
    expect(metrics.skipped_topics).toEqual([
      {
        topic: '/other',
        type: 'foxglove.RawImage',
        messages: 1,
        reason: 'not mapped to a pipeline input',
      },
    ]);
    const bad = join(dir, 'protobuf-image.mcap');
    const bytes = readFileSync(file);
    writeFileSync(bad, bytes);
    await expect(replay(bad, { pipeline, topics: { image: '/other' } })).rejects.toMatchObject({
      name: 'BagError',
      field: 'topics.image',
    });
    // The right type name with a foreign schema encoding.
    const named = join(dir, 'named.mcap');
    const h2 = await open(named, 'w');
    let p2 = 0n;
    const w2 = new McapWriter({
      writable: {
        write: async (b) => {
          await h2.write(b);
          p2 += BigInt(b.length);
        },
        position: () => p2,
      },
    });
    await w2.start({ profile: 'ros2', library: 'test' });
    const s2 = await w2.registerSchema({
      name: 'sensor_msgs/msg/Image',
      encoding: 'ros2idl',
      data: new TextEncoder().encode(schemaText('sensor_msgs/msg/Image')),
    });
    await w2.registerChannel({
      schemaId: s2,
      topic: DEFAULT_TOPICS.image,
      messageEncoding: 'cdr',
      metadata: new Map(),
    });
    await w2.end();
    await h2.close();
    const error = await replay(named, { pipeline }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BagError);
    expect((error as BagError).field).toBe('topics.image.schema_encoding');
    expect((error as BagError).message).toBe(
      'Expected schema encoding ros2msg for /camera/image_raw but received "ros2idl"',
    );
  });

  it('counts Images whose data is not step x height and goes on with the next frames', async () => {
    const file = join(dir, 'short-image.mcap');
    const bag = await BagWriter.create({ path: file });
    const ok = new Uint8Array(32 * 32 * 3).fill(90);
    const type = 'sensor_msgs/msg/Image';
    await bag.write(DEFAULT_TOPICS.image, type, image(ok, 96, 32), 1n);
    await bag.write(DEFAULT_TOPICS.image, type, image(ok.subarray(0, 1000), 96, 32), 2n);
    await bag.write(DEFAULT_TOPICS.image, type, image(new Uint8Array(96 * 33), 96, 32), 3n);
    await bag.write(DEFAULT_TOPICS.image, type, image(ok, 96, 32), 4n);
    await bag.close();
    const { chunks, metrics } = await replay(file, { pipeline, instruction: 'go' });
    expect(chunks).toHaveLength(2);
    expect(metrics.warnings).toEqual({ image_size_mismatch: 2, no_state: 2 });
    expect(chunks[0]?.actions).toEqual(chunks[1]?.actions);
  });

  it('rejects a missing bag and a bad rate with typed errors', async () => {
    await expect(replay(join(dir, 'nope.mcap'), { pipeline })).rejects.toMatchObject({
      name: 'BagError',
      field: 'bag',
    });
    await expect(replay(good, { pipeline, rate: 0 })).rejects.toMatchObject({
      name: 'InputError',
      field: 'rate',
    });
  });
});
