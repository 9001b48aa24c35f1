import { pack } from 'msgpackr';
import { Dealer } from 'zeromq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BridgeClient,
  BridgeServer,
  encodeMessage,
  parseReply,
  type ErrorReply,
} from '../../../src/transports/zmq/index.js';
import { Rng } from '../../../src/util/rng.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { inferRequest, simObservation } from './support.js';

const MESSAGES = 3000;
const BATCH = 250;

let pipeline: VlaPipeline;
let server: BridgeServer;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  server = await BridgeServer.start(pipeline, {
    bind: 'tcp://127.0.0.1:*',
    maxMessageBytes: 1 << 20,
  });
});
afterAll(async () => {
  await server.close();
  await pipeline.release();
});

function bytes(rng: Rng, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => rng.int(256));
}

/** A valid infer request as a plain object (so fields can be broken one at a time). */
function validInfer(): Record<string, unknown> {
  const small = { encoding: 'rgb8', width: 8, height: 8, data: new Uint8Array(192).fill(120) };
  return { ...inferRequest(3, 1), images: [small] };
}

const JUNK: readonly unknown[] = [
  null,
  true,
  -1,
  2 ** 40,
  1.5,
  'x',
  '',
  [],
  [1, 'a'],
  {},
  { a: 1 },
  new Uint8Array(3),
];
const FIELDS = ['v', 'type', 'instruction', 'state', 'images', 'stamp', 'keep_count', 'id'];

/** One malformed message (one or more frames); every kind the fuzz covers. */
function malformed(rng: Rng, i: number): Uint8Array[] {
  const base = validInfer();
  switch (i % 12) {
    case 0: // random bytes
      return [bytes(rng, rng.int(300))];
    case 1: // wrong top-level types
      return [pack(rng.pick([[1, 2], 'infer', 42, null, true, 3.5, new Uint8Array(4)]))];
    case 2: {
      // a field of the wrong type
      const f = rng.pick(FIELDS);
      // Only junk that is wrong for the field: a string is a fine instruction, a number a fine stamp.
      const wrong = JUNK.filter((j) =>
        f === 'instruction'
          ? typeof j !== 'string'
          : f === 'stamp'
            ? typeof j !== 'number'
            : f === 'id'
              ? typeof j !== 'string' && !(typeof j === 'number' && j >= 0 && Number.isInteger(j))
              : true,
      );
      const junk = rng.pick(wrong);
      if (f === 'keep_count')
        return [pack({ ...base, keep_count: rng.pick([0, -1, 1.5, 'all', 1e9]) })];
      return [pack({ ...base, [f]: junk })];
    }
    case 3: {
      // a missing required field
      const f = rng.pick(['v', 'type', 'instruction', 'state', 'images', 'stamp']);
      return [pack(Object.fromEntries(Object.entries(base).filter(([k]) => k !== f)))];
    }
    case 4: {
      // truncated
      const full = encodeMessage(inferRequest(3, i));
      return [full.subarray(0, 1 + rng.int(full.length - 1))];
    }
    case 5: {
      // dtype / shape / byte-length mismatches in the state
      const states = [
        { dtype: 'float32', shape: [2], data: new Uint8Array(7) },
        { dtype: 'float64', shape: [2], data: new Uint8Array(8) },
        { dtype: 'float128', shape: [2], data: new Uint8Array(32) },
        { dtype: 'float32', shape: [2, 1], data: new Uint8Array(8) },
        { dtype: 'float32', shape: ['2'], data: new Uint8Array(8) },
        { dtype: 'float32', shape: [3], data: new Uint8Array(12) },
        { dtype: 'int8', shape: [], data: new Uint8Array(1) },
        { dtype: 'float32', shape: [2], data: 'abcdefgh' },
      ];
      return [pack({ ...base, state: rng.pick(states) })];
    }
    case 6: {
      // huge declared sizes: container and bin headers, shapes, image geometry
      const headers = [
        [0x81, 0xa1, 0x76, 0xdd, 0xff, 0xff, 0xff, 0xff],
        [0x81, 0xa1, 0x76, 0xdf, 0x7f, 0xff, 0xff, 0xff],
        [0x81, 0xa1, 0x76, 0xc6, 0xff, 0xff, 0xff, 0xf0, 0x00],
        [0x81, 0xa1, 0x76, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
        [0xdf, 0xff, 0xff, 0xff, 0xff],
      ];
      const pick = rng.int(4);
      if (pick === 0) return [Uint8Array.from(rng.pick(headers))];
      if (pick === 1) {
        return [
          pack({
            ...base,
            state: { dtype: 'float32', shape: [2 ** 31, 2 ** 31], data: new Uint8Array(8) },
          }),
        ];
      }
      const image = { encoding: 'rgb8', width: 100_000, height: 100_000, data: new Uint8Array(12) };
      return [
        pack({
          ...base,
          images: [pick === 2 ? image : { ...image, width: 2, height: 2, step: 2 ** 40 }],
        }),
      ];
    }
    case 7: // unknown versions
      return [pack({ ...base, v: rng.pick([0, 2, 3, 99, -1, 2 ** 31]) })];
    case 8: {
      // extension types anywhere: fixext 1..16 and ext 8/16/32, including msgpackr's own
      const type = rng.pick([0x00, 0x42, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff]);
      const ext = rng.pick([
        [0xd4, type, 0],
        [0xd5, type, 0, 0],
        [0xd6, type, 0, 0, 0, 0],
        [0xd7, type, ...Array<number>(8).fill(0)],
        [0xd8, type, ...Array<number>(16).fill(0)],
        [0xc7, 2, type, 0, 0],
        [0xc8, 0, 1, type, 0],
        [0xc9, 0, 0, 0, 1, type, 0],
      ]);
      const ok = pack({ v: 1, type: 'ping' });
      // {v:1, type:'ping', x: <ext>}: a fixmap of 3 entries.
      return [Uint8Array.from([0x83, ...ok.subarray(1), 0xa1, 0x78, ...ext])];
    }
    case 9: {
      // multi-frame garbage
      const n = 3 + rng.int(3);
      return Array.from({ length: n }, () => bytes(rng, rng.int(40)));
    }
    case 10: {
      // images that lie: short pixels, wrong encodings, unreadable compressed bytes
      const images = [
        { encoding: 'rgb8', width: 128, height: 128, data: new Uint8Array(100) },
        { encoding: 'rgb9', width: 4, height: 4, data: new Uint8Array(48) },
        { encoding: 'jpeg', data: bytes(rng, 64) },
        { encoding: 'png', data: Uint8Array.from([0x89, 0x50, 0x4e, 0x47]) },
        { encoding: 'rgb8', width: -4, height: 4, data: new Uint8Array(48) },
        'not an image',
      ];
      return [pack({ ...base, images: [rng.pick(images)] })];
    }
    default: {
      // a non-string map key, deep nesting, trailing bytes
      const kind = rng.int(3);
      if (kind === 0) return [Uint8Array.from([0x82, 0xa1, 0x76, 0x01, 0x05, 0x06])];
      if (kind === 1)
        return [Uint8Array.from([0x81, 0xa1, 0x76, ...Array<number>(64).fill(0x91), 0x01])];
      return [Uint8Array.from([...pack({ v: 1, type: 'ping' }), ...bytes(rng, 1 + rng.int(4))])];
    }
  }
}

describe('bridge fuzz', () => {
  it(`answers ${MESSAGES} malformed messages with error codes, stays up and then serves correctly`, async () => {
    const rng = new Rng(20260707);
    const socket = new Dealer({ linger: 0, receiveTimeout: 10_000 });
    socket.connect(server.endpoint);
    const codes: Record<string, number> = {};
    const started = Date.now();
    try {
      for (let sent = 0; sent < MESSAGES; sent += BATCH) {
        const n = Math.min(BATCH, MESSAGES - sent);
        for (let i = 0; i < n; i++) {
          await socket.send(malformed(rng, sent + i).map((f) => Buffer.from(f)));
        }
        for (let i = 0; i < n; i++) {
          const frames = await socket.receive();
          const reply = parseReply(frames[frames.length - 1] as Buffer);
          expect(reply.type).toBe('error');
          const code = (reply as ErrorReply).code;
          expect(['invalid', 'incompatible']).toContain(code);
          codes[code] = (codes[code] ?? 0) + 1;
        }
      }
    } finally {
      socket.close();
    }
    expect((codes.invalid ?? 0) + (codes.incompatible ?? 0)).toBe(MESSAGES);
    expect(codes.incompatible).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(30_000);

    const client = BridgeClient.connect(server.endpoint, { timeoutMs: 10_000 });
    try {
      const { obs } = simObservation(7);
      const expected = await pipeline.infer(obs);
      const got = await client.infer({ ...obs, stamp: Date.now() });
      expect(got.actions.length).toBe(expected.actions.length);
      for (const [i, v] of expected.actions.entries()) {
        expect(Math.abs((got.actions[i] ?? NaN) - v)).toBeLessThan(1e-5);
      }
      expect((await client.ping()).type).toBe('pong');
    } finally {
      await client.close();
    }
  });
});
