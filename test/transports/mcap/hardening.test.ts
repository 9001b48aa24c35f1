/**
 * Bags an outsider made: split files that are missing, message definitions that differ from the
 * standard ones, chunks written twice, bytes meant for the terminal. Each is a typed BagError or a
 * counted warning, never a TypeError, an ENOENT stack or raw escape codes.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { McapIndexedReader, McapWriter } from '@mcap/core';
import { MessageWriter } from '@foxglove/rosmsg2-serialization';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BagError,
  DEFAULT_TOPICS,
  parseSchema,
  recordSim,
  replay,
  schemaText,
  SCHEMA_SEPARATOR,
} from '../../../src/transports/mcap/index.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { TINY } from './support.js';

let pipeline: VlaPipeline;
let dir: string;
let recorded: string;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  dir = mkdtempSync(join(tmpdir(), 'vla-mcap-hardening-'));
  await recordSim({ out: join(dir, 'good'), episodes: 1, seed: 3, maxSteps: 6, ...TINY });
  recorded = join(dir, 'good', 'good_0.mcap');
});
afterAll(async () => {
  await pipeline.release();
  rmSync(dir, { recursive: true, force: true });
});

interface TopicSpec {
  readonly topic: string;
  readonly type: string;
  readonly schema: string;
  /** Messages, encoded with `schema` (or given as bytes). */
  readonly messages: readonly (Uint8Array | Record<string, unknown>)[];
  /** Each message's log time (ns); by default 1 ms after the bag's previous message. */
  readonly logTimes?: readonly bigint[];
}

/** An MCAP file of the given topics, each with its own schema text; one message per chunk. */
async function customBag(
  name: string,
  topics: readonly TopicSpec[],
  chunkSize = 1,
): Promise<string> {
  const parts: Uint8Array[] = [];
  let position = 0n;
  const w = new McapWriter({
    chunkSize,
    writable: {
      write: (b) => {
        parts.push(b.slice());
        position += BigInt(b.length);
        return Promise.resolve();
      },
      position: () => position,
    },
  });
  await w.start({ profile: 'ros2', library: 'test' });
  let time = 1n;
  for (const t of topics) {
    const schemaId = await w.registerSchema({
      name: t.type,
      encoding: 'ros2msg',
      data: new TextEncoder().encode(t.schema),
    });
    const channelId = await w.registerChannel({
      schemaId,
      topic: t.topic,
      messageEncoding: 'cdr',
      metadata: new Map(),
    });
    let writer: MessageWriter | undefined;
    for (const [i, m] of t.messages.entries()) {
      if (!(m instanceof Uint8Array)) writer ??= new MessageWriter(parseSchema(t.schema));
      const data = m instanceof Uint8Array ? m : (writer as MessageWriter).writeMessage(m);
      time = t.logTimes?.[i] ?? time;
      await w.addMessage({ channelId, sequence: i, logTime: time, publishTime: time, data });
      time += 1_000_000n;
    }
  }
  await w.end();
  const file = join(dir, name);
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

const IMAGE = 'sensor_msgs/msg/Image';
const header = { stamp: { sec: 1, nanosec: 0 }, frame_id: '' };
const pixels = {
  header,
  height: 4,
  width: 4,
  encoding: 'rgb8',
  is_bigendian: 0,
  step: 12,
  data: new Uint8Array(48),
};

async function rejection(file: string): Promise<BagError> {
  const error = await replay(file, { pipeline, instruction: 'go' }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BagError);
  return error as BagError;
}

describe('bag folders', () => {
  it('names a split file that metadata.yaml lists but the folder lacks', async () => {
    const bag = join(dir, 'split');
    mkdirSync(bag);
    writeFileSync(join(bag, 'split_0.mcap'), readFileSync(recorded));
    writeFileSync(
      join(bag, 'metadata.yaml'),
      'rosbag2_bagfile_information:\n  relative_file_paths: [split_0.mcap, split_1.mcap]\n',
    );
    const error = await rejection(bag);
    expect(error.field).toBe('bag.metadata.relative_file_paths[1]');
    expect(error.message).toMatch(/split file split_1\.mcap .* does not exist/);
  });

  it('refuses a split file listed twice and a listed entry that is not a file name', async () => {
    const bag = join(dir, 'twice');
    mkdirSync(bag);
    writeFileSync(join(bag, 'twice_0.mcap'), readFileSync(recorded));
    writeFileSync(
      join(bag, 'metadata.yaml'),
      'rosbag2_bagfile_information:\n  relative_file_paths: [twice_0.mcap, ./twice_0.mcap]\n',
    );
    expect((await rejection(bag)).message).toMatch(/listed twice/);
    writeFileSync(
      join(bag, 'metadata.yaml'),
      'rosbag2_bagfile_information:\n  relative_file_paths: [twice_0.mcap, 7]\n',
    );
    expect((await rejection(bag)).field).toBe('bag.metadata.relative_file_paths[1]');
  });

  it('reads a record that claims more bytes than the file holds as a file cut short', async () => {
    // Bytes 9-16: the Header record's content length (u64 LE), past 2^31 and past the file. The
    // read of that length once aborted the process (fs.read takes an Int32), beyond any catch.
    for (const claimed of [0x7fffffffn, 0x80000000n, 0xfffffff0n]) {
      const bytes = Buffer.from(readFileSync(recorded));
      bytes.writeBigUInt64LE(claimed, 9);
      const file = join(dir, `lying-${claimed}.mcap`);
      writeFileSync(file, bytes);
      const result = await replay(file, { pipeline, instruction: 'go' });
      expect(result.metrics.warnings).toEqual({ truncated: 1 });
      expect(result.metrics.frames).toBe(0);
    }
  });

  it('refuses a bag path that is not a regular file (a FIFO or a device would block or never end)', async () => {
    const error = await rejection('/dev/zero');
    expect(error.field).toBe('bag');
    expect(error.message).toMatch(/neither a regular file nor a folder/);
  });
});

describe('message definitions that differ from the standard ones', () => {
  const std = (type: string): string => schemaText(type);
  const cases: [string, TopicSpec, string, RegExp][] = [
    [
      'string data declared as int32',
      {
        topic: DEFAULT_TOPICS.instruction,
        type: 'std_msgs/msg/String',
        schema: 'int32 data\n',
        messages: [{ data: 5 }],
      },
      'topics.instruction.schema.data',
      /Expected field string data .* but it declares int32 data/,
    ],
    [
      'an empty String definition',
      { topic: DEFAULT_TOPICS.instruction, type: 'std_msgs/msg/String', schema: '', messages: [] },
      'topics.instruction.schema.data',
      /has no field data \(fields: none\)/,
    ],
    [
      'a renamed JointState name',
      {
        topic: DEFAULT_TOPICS.state,
        type: 'sensor_msgs/msg/JointState',
        schema: std('sensor_msgs/msg/JointState').replace('string[] name', 'string[] names'),
        messages: [],
      },
      'topics.state.schema.name',
      /Expected field string\[\] name/,
    ],
    [
      'a renamed JointState position',
      {
        topic: DEFAULT_TOPICS.state,
        type: 'sensor_msgs/msg/JointState',
        schema: std('sensor_msgs/msg/JointState').replace('float64[] position', 'float64[] pos'),
        messages: [],
      },
      'topics.state.schema.position',
      /Expected field float64\[\] position/,
    ],
    [
      'JointState positions as float32',
      {
        topic: DEFAULT_TOPICS.state,
        type: 'sensor_msgs/msg/JointState',
        schema: std('sensor_msgs/msg/JointState').replace(
          'float64[] position',
          'float32[] position',
        ),
        messages: [],
      },
      'topics.state.schema.position',
      /but it declares float32\[\] position/,
    ],
    [
      'a renamed Image header',
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema: std(IMAGE).replace('std_msgs/Header header', 'std_msgs/Header hdr'),
        messages: [],
      },
      'topics.image.schema.header',
      /Expected field std_msgs\/Header header/,
    ],
    [
      'a Header whose stamp is an int64',
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema: std(IMAGE).replace('builtin_interfaces/Time stamp', 'int64 stamp'),
        messages: [],
      },
      'topics.image.schema.header.stamp',
      /Expected field builtin_interfaces\/Time header\.stamp .* declares int64 header\.stamp/,
    ],
    [
      'an Image whose header type has no definition',
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema: std(IMAGE).split(SCHEMA_SEPARATOR)[0] ?? '',
        messages: [],
      },
      'topics.image.schema',
      /Expected a parsable ros2msg definition of sensor_msgs\/msg\/Image .*'std_msgs\/Header'/,
    ],
    [
      'Image data declared as a string',
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema: std(IMAGE).replace('uint8[] data', 'string data'),
        messages: [],
      },
      'topics.image.schema.data',
      /Expected field uint8\[\] data .* declares string data/,
    ],
    [
      'a reference whose data is renamed',
      {
        topic: DEFAULT_TOPICS.reference,
        type: 'std_msgs/msg/Float32MultiArray',
        schema: 'int32 DATA=1\nfloat32[] values\n',
        messages: [],
      },
      'topics.reference.schema.data',
      /has no field data \(fields: DATA, values\)/,
    ],
    [
      'a garbage definition',
      {
        topic: DEFAULT_TOPICS.instruction,
        type: 'std_msgs/msg/String',
        schema: 'this is not a message definition !!\n',
        messages: [],
      },
      'topics.instruction.schema',
      /Expected a parsable ros2msg definition/,
    ],
  ];
  it.each(cases)('%s: a BagError naming the field', async (name, spec, field, message) => {
    const file = await customBag(
      `${name.replaceAll(' ', '_')}.mcap`,
      [
        spec,
        { topic: DEFAULT_TOPICS.image, type: IMAGE, schema: schemaText(IMAGE), messages: [pixels] },
      ].filter((t, i) => i === 0 || t.topic !== spec.topic),
    );
    const error = await rejection(file);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('accepts a definition with extra fields and spelling variants (byte for uint8)', async () => {
    const schema = std(IMAGE)
      .replace('uint8[] data', 'byte[] data\nstring extra')
      .replace('string encoding', 'string encoding\nfloat64 exposure');
    const file = await customBag('extended.mcap', [
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema,
        messages: [{ ...pixels, extra: 'x', exposure: 0.5 }],
      },
    ]);
    const { chunks } = await replay(file, { pipeline, instruction: 'go' });
    expect(chunks).toHaveLength(1);
  });
});

describe("an instruction past the transports' limit", () => {
  it('is skipped with a warning, the previous instruction kept', async () => {
    const STRING = 'std_msgs/msg/String';
    const file = await customBag('long-instruction.mcap', [
      {
        topic: DEFAULT_TOPICS.instruction,
        type: STRING,
        schema: schemaText(STRING),
        messages: [{ data: 'go left' }, { data: 'x'.repeat(1025) }],
      },
      { topic: DEFAULT_TOPICS.image, type: IMAGE, schema: schemaText(IMAGE), messages: [pixels] },
    ]);
    const infer = vi.spyOn(pipeline, 'infer');
    try {
      const { chunks, metrics } = await replay(file, { pipeline });
      expect(chunks).toHaveLength(1);
      expect(metrics.warnings).toMatchObject({ long_instruction: 1 });
      expect(infer.mock.calls.map(([o]) => o.instruction)).toEqual(['go left']);
    } finally {
      infer.mockRestore();
    }
  });
});

describe("a jump of the bag's clock", () => {
  it('restarts the pacing of --rate with a warning instead of sleeping through it', async () => {
    // Two frames 1e15 ns (11.6 days) apart: at rate 1 the second once waited that long.
    const file = await customBag('jump.mcap', [
      {
        topic: DEFAULT_TOPICS.image,
        type: IMAGE,
        schema: schemaText(IMAGE),
        messages: [pixels, pixels, pixels],
        logTimes: [1_000_000n, 1_000_000_000_000_000n, 1_000_000_050_000_000n],
      },
    ]);
    const started = performance.now();
    const { chunks, metrics } = await replay(file, { pipeline, instruction: 'go', rate: 1 });
    expect(chunks).toHaveLength(3);
    expect(metrics.warnings).toMatchObject({ time_jump: 1 });
    // The 50 ms after the jump are still paced.
    expect(performance.now() - started).toBeGreaterThanOrEqual(40);
  });
});

describe('duplicated chunks', () => {
  const frames = [1, 2, 3].map((v) => ({ ...pixels, data: new Uint8Array(48).fill(v * 40) }));
  async function duplicated(name: string): Promise<string> {
    const parts: Uint8Array[] = [];
    let position = 0n;
    const w = new McapWriter({
      chunkSize: 1,
      writable: {
        write: (b) => {
          parts.push(b.slice());
          position += BigInt(b.length);
          return Promise.resolve();
        },
        position: () => position,
      },
    });
    await w.start({ profile: 'ros2', library: 'test' });
    const schemaId = await w.registerSchema({
      name: IMAGE,
      encoding: 'ros2msg',
      data: new TextEncoder().encode(schemaText(IMAGE)),
    });
    const channelId = await w.registerChannel({
      schemaId,
      topic: DEFAULT_TOPICS.image,
      messageEncoding: 'cdr',
      metadata: new Map(),
    });
    const writer = new MessageWriter(parseSchema(schemaText(IMAGE)));
    // The three messages, then the same three again (a chunk copied), then one that differs from
    // the first only in its bytes (kept).
    const messages = [0, 1, 2, 0, 1, 2].map((i) => ({ i, data: frames[i] as object }));
    messages.push({ i: 0, data: { ...pixels, data: new Uint8Array(48).fill(7) } });
    for (const { i, data } of messages) {
      const t = BigInt(i + 1) * 1_000_000n;
      await w.addMessage({
        channelId,
        sequence: i,
        logTime: t,
        publishTime: t,
        data: writer.writeMessage(data),
      });
    }
    await w.end();
    const file = join(dir, name);
    writeFileSync(file, Buffer.concat(parts));
    return file;
  }

  it('replays each message once and counts the copies (indexed file)', async () => {
    const file = await duplicated('duplicated.mcap');
    const { chunks, metrics } = await replay(file, { pipeline, instruction: 'go' });
    expect(chunks).toHaveLength(4);
    expect(metrics.warnings.duplicate_message).toBe(3);
    expect(metrics.messages[DEFAULT_TOPICS.image]).toBe(4);
  });

  it('replays each message once and counts the copies (streamed, no summary)', async () => {
    const file = await duplicated('duplicated-stream.mcap');
    const bytes = readFileSync(file);
    const reader = await McapIndexedReader.Initialize({
      readable: {
        size: () => Promise.resolve(BigInt(bytes.length)),
        read: (o, s) => Promise.resolve(bytes.subarray(Number(o), Number(o + s))),
      },
    });
    // Cut the file before its DataEnd record: the reader streams it up to the last chunk.
    const cut = join(dir, 'duplicated-cut.mcap');
    writeFileSync(cut, bytes.subarray(0, Number(reader.footer.summaryStart) - 13));
    const { chunks, metrics } = await replay(cut, { pipeline, instruction: 'go' });
    expect(chunks).toHaveLength(4);
    expect(metrics.warnings).toMatchObject({ duplicate_message: 3, truncated: 1 });
  });
});

describe('bytes meant for the terminal', () => {
  const hostile = '\u001b[2J\u001b]0;pwned\u0007\u0000\u009b31m\u202e';
  function clean(text: string): void {
    // eslint-disable-next-line no-control-regex -- the characters that must not get through
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
  }

  it('escapes control characters of a schema name, a definition and a field list', async () => {
    const a = await rejection(
      await customBag('evil-type.mcap', [
        { topic: DEFAULT_TOPICS.image, type: `evil${hostile}`, schema: '', messages: [] },
      ]),
    );
    clean(a.message);
    expect(a.message).toContain('evil\\x1b[2J');
    const b = await rejection(
      await customBag('evil-schema.mcap', [
        {
          topic: DEFAULT_TOPICS.instruction,
          type: 'std_msgs/msg/String',
          schema: `int32 x${hostile}\n`,
          messages: [],
        },
      ]),
    );
    clean(b.message);
    const c = await rejection(
      await customBag('evil-field.mcap', [
        {
          topic: DEFAULT_TOPICS.instruction,
          type: 'std_msgs/msg/String',
          schema: 'int32 data\n',
          messages: [],
        },
      ]),
    );
    clean(c.message);
  });

  it('escapes a split file name from metadata.yaml', async () => {
    const bag = join(dir, 'evil-split');
    mkdirSync(bag);
    writeFileSync(
      join(bag, 'metadata.yaml'),
      `rosbag2_bagfile_information:\n  relative_file_paths: ["x\\e[2J\\0.mcap"]\n`,
    );
    const error = await rejection(bag);
    clean(error.message);
    expect(error.message).toContain('x\\x1b[2J\\x00.mcap');
  });
});
