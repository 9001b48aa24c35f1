/**
 * Corrupt bags, generated: byte flips, cuts, inserted and repeated ranges of a real record-sim bag,
 * random metadata.yaml files, and message definitions mutated line by line. Whatever the bag, a
 * replay either completes with finite actions or stops with a typed error whose message is safe
 * for a terminal. Each property runs for a few seconds at most (a bounded number of cases,
 * interrupted after a time limit without failing).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { McapWriter } from '@mcap/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VlaError } from '../../src/errors.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline } from '../../src/pipeline/pipeline.js';
import { DEFAULT_TOPICS, recordSim, replay, schemaText } from '../../src/transports/mcap/index.js';
import { testPipelineOptions, TINY_VLA } from '../helpers.js';

/** Bounded: at most this many cases, and stop (passing) after this many milliseconds. */
const BOUND = { numRuns: 150, interruptAfterTimeLimit: 4000, markInterruptAsFailure: false };

let pipeline: VlaPipeline;
let dir: string;
let bytes: Uint8Array;
let frames: number;
let counter = 0;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  dir = mkdtempSync(join(tmpdir(), 'vla-bag-fuzz-'));
  const r = await recordSim({
    out: join(dir, 'seed'),
    episodes: 1,
    seed: 2,
    maxSteps: 5,
    controlRateHz: 10,
    horizon: 8,
  });
  frames = r.frames;
  bytes = new Uint8Array(readFileSync(join(dir, 'seed', 'seed_0.mcap')));
});
afterAll(async () => {
  await pipeline.release();
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line no-control-regex -- what must never reach the terminal raw
const RAW = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Replay `path`: completes with finite actions, or a typed error with a printable message. */
async function outcome(path: string): Promise<'ok' | 'typed'> {
  try {
    const { chunks } = await replay(path, { pipeline, instruction: 'go' });
    for (const c of chunks) expect(c.actions.every(Number.isFinite)).toBe(true);
    return 'ok';
  } catch (error) {
    if (!(error instanceof VlaError)) throw error;
    expect(error.message).not.toMatch(RAW);
    return 'typed';
  }
}

function file(data: Uint8Array, ext = '.mcap'): string {
  const path = join(dir, `case-${counter++}${ext}`);
  writeFileSync(path, data);
  return path;
}

type Mutation =
  | { kind: 'flip'; at: number; mask: number; count: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; data: Uint8Array }
  | { kind: 'repeat'; from: number; length: number; to: number };

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  const pos = (x: number): number => Math.floor(x * n);
  switch (m.kind) {
    case 'flip': {
      const out = input.slice();
      for (let i = 0; i < m.count && pos(m.at) + i < n; i++) {
        const at = pos(m.at) + i;
        out[at] = (out[at] ?? 0) ^ m.mask;
      }
      return out;
    }
    case 'cut':
      return input.slice(0, pos(m.at));
    case 'insert':
      return Buffer.concat([input.subarray(0, pos(m.at)), m.data, input.subarray(pos(m.at))]);
    case 'repeat': {
      const from = pos(m.from);
      const piece = input.subarray(from, Math.min(n, from + m.length));
      return Buffer.concat([input.subarray(0, pos(m.to)), piece, input.subarray(pos(m.to))]);
    }
  }
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: unit,
    mask: fc.integer({ min: 1, max: 255 }),
    count: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ kind: fc.constant('cut' as const), at: unit }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: unit,
    data: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('repeat' as const),
    from: unit,
    length: fc.integer({ min: 1, max: 4096 }),
    to: unit,
  }),
);

describe('corrupt bag files', () => {
  it('replays or stops with a typed error, for any mix of flips, cuts, inserts and repeats', async () => {
    let typed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (ms) => {
        const data = ms.reduce(mutate, bytes);
        if ((await outcome(file(data))) === 'typed') typed++;
      }),
      BOUND,
    );
    // The generator does reach the error paths, not only harmless bytes.
    expect(typed).toBeGreaterThan(0);
  });

  it('never replays more frames than the bag holds when ranges are repeated', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), unit, unit, async (copies, from, to) => {
        // A whole chunk region copied in place: the messages repeat exactly.
        let data = bytes;
        for (let i = 0; i < copies; i++)
          data = mutate(data, { kind: 'repeat', from, length: bytes.length, to });
        try {
          const { chunks } = await replay(file(data), { pipeline, instruction: 'go' });
          expect(chunks.length).toBeLessThanOrEqual(frames);
        } catch (error) {
          expect(error).toBeInstanceOf(VlaError);
        }
      }),
      { ...BOUND, numRuns: 40 },
    );
  });

  it('reads any metadata.yaml as a typed error or a valid bag', async () => {
    const names = fc.oneof(
      fc.constant('bag_0.mcap'),
      fc.constant('missing.mcap'),
      fc.constant('../bag_0.mcap'),
      fc.string({ unit: 'binary', maxLength: 20 }),
    );
    const yaml = fc.oneof(
      fc
        .array(names, { maxLength: 4 })
        .map(
          (list) =>
            `rosbag2_bagfile_information:\n  relative_file_paths: ${JSON.stringify(list)}\n`,
        ),
      fc.string({ unit: 'binary', maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(yaml, async (text) => {
        const bag = join(dir, `folder-${counter++}`);
        mkdirSync(bag);
        writeFileSync(join(bag, 'bag_0.mcap'), bytes);
        writeFileSync(join(bag, 'metadata.yaml'), text);
        await outcome(bag);
      }),
      { ...BOUND, numRuns: 80 },
    );
  });
});

describe('mutated message definitions', () => {
  const TYPES: [string, string][] = [
    [DEFAULT_TOPICS.image, 'sensor_msgs/msg/Image'],
    [DEFAULT_TOPICS.instruction, 'std_msgs/msg/String'],
    [DEFAULT_TOPICS.state, 'sensor_msgs/msg/JointState'],
    [DEFAULT_TOPICS.reference, 'std_msgs/msg/Float32MultiArray'],
  ];
  const lineEdit = fc.record({
    line: fc.nat(),
    op: fc.constantFrom('drop', 'rename', 'retype', 'garbage'),
    text: fc.string({ unit: 'binary', maxLength: 12 }),
    type: fc.constantFrom('int32', 'uint64', 'string', 'float32[]', 'uint8', 'bool', 'time'),
  });

  it('gives a typed error or a replay for any edit of the standard definitions', async () => {
    const encoder = new TextEncoder();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...TYPES),
        fc.array(lineEdit, { minLength: 1, maxLength: 3 }),
        fc.uint8Array({ maxLength: 64 }),
        async ([topic, type], edits, payload) => {
          const lines = schemaText(type).split('\n');
          for (const e of edits) {
            const i = e.line % lines.length;
            const [ftype, fname] = (lines[i] ?? '').split(' ');
            if (e.op === 'drop') lines.splice(i, 1);
            else if (e.op === 'rename') lines[i] = `${ftype ?? ''} ${e.text}`;
            else if (e.op === 'retype') lines[i] = `${e.type} ${fname ?? 'x'}`;
            else lines[i] = e.text;
          }
          const parts: Uint8Array[] = [];
          let position = 0n;
          const w = new McapWriter({
            writable: {
              write: (b) => {
                parts.push(b.slice());
                position += BigInt(b.length);
                return Promise.resolve();
              },
              position: () => position,
            },
          });
          await w.start({ profile: 'ros2', library: 'fuzz' });
          const schemaId = await w.registerSchema({
            name: type,
            encoding: 'ros2msg',
            data: encoder.encode(lines.join('\n')),
          });
          const channelId = await w.registerChannel({
            schemaId,
            topic,
            messageEncoding: 'cdr',
            metadata: new Map(),
          });
          await w.addMessage({
            channelId,
            sequence: 0,
            logTime: 1n,
            publishTime: 1n,
            data: payload,
          });
          await w.end();
          await outcome(file(Buffer.concat(parts)));
        },
      ),
      BOUND,
    );
  });
});
