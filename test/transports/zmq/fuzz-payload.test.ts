import { Dealer } from 'zeromq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BridgeServer,
  encodeMessage,
  parseReply,
  type ErrorReply,
} from '../../../src/transports/zmq/index.js';
import { Rng } from '../../../src/util/rng.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { fuzzCase, samples, type Samples } from '../../ingest/fuzz-cases.js';
import { inferRequest } from './support.js';

// Beyond fuzz.test.ts (malformed messages): well-formed requests whose payloads are hostile —
// corrupt, truncated, forged or foreign images, states of every magnitude, odd client names.
// Every reply must be finite actions within the limits, or `invalid` naming a request field:
// never `internal`, which tells a client to retry elsewhere.

const MESSAGES = 400;

let pipeline: VlaPipeline;
let server: BridgeServer;
let s: Samples;
const log: string[] = [];

beforeAll(async () => {
  s = await samples();
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  server = await BridgeServer.start(pipeline, {
    bind: 'tcp://127.0.0.1:*',
    maxMessageBytes: 1 << 20,
    log: (line) => log.push(line),
  });
});
afterAll(async () => {
  await server.close();
  await pipeline.release();
});

function wireImage(i: number): Record<string, unknown> {
  const { frame } = fuzzCase(s, 777, i);
  if (frame.kind === 'encoded') {
    return { encoding: frame.format === 'png' ? 'png' : 'jpeg', data: frame.data };
  }
  return {
    encoding: frame.encoding,
    width: frame.width,
    height: frame.height,
    step: frame.step,
    data: frame.data,
  };
}

function extreme(rng: Rng): number {
  const r = rng.int(6);
  if (r === 0) return rng.uniform(0, 1);
  if (r === 1) return (rng.int(2) === 0 ? -1 : 1) * 10 ** rng.uniform(0, 308);
  if (r === 2) return [Number.MAX_VALUE, -Number.MAX_VALUE, 3e37, 5e-324, -0][rng.int(5)] as number;
  if (r === 3) return [NaN, Infinity, -Infinity][rng.int(3)] as number;
  return rng.uniform(-50, 50);
}

function message(rng: Rng, i: number): Record<string, unknown> {
  const base = { ...inferRequest(3, i) } as Record<string, unknown>;
  const kind = i % 3;
  if (kind === 0) return { ...base, images: [wireImage(i)] };
  const state = Float64Array.from([extreme(rng), extreme(rng)]);
  const wire = { dtype: 'float64', shape: [2], data: new Uint8Array(state.buffer) };
  if (kind === 1) return { ...base, state: wire };
  return { ...base, state: wire, images: [wireImage(i)] };
}

describe('bridge payload fuzz', () => {
  it(`answers ${MESSAGES} hostile payloads with safe actions or invalid, never internal`, async () => {
    const rng = new Rng(4242);
    const m = pipeline.model.manifest;
    const socket = new Dealer({ linger: 0, receiveTimeout: 30_000 });
    socket.connect(server.endpoint);
    const counts: Record<string, number> = {};
    try {
      for (let i = 0; i < MESSAGES; i++) {
        const sent = message(rng, i);
        await socket.send(encodeMessage(sent as never));
        const frames = await socket.receive();
        const reply = parseReply(frames[frames.length - 1] as Buffer);
        const key = reply.type === 'error' ? reply.code : reply.type;
        counts[key] = (counts[key] ?? 0) + 1;
        if (reply.type === 'actions') {
          const actions = reply.actions;
          const values = new Float32Array(
            actions.data.buffer.slice(
              actions.data.byteOffset,
              actions.data.byteOffset + actions.data.byteLength,
            ),
          );
          values.forEach((v, j) => {
            const d = j % m.chunk.action_dim;
            expect(Number.isFinite(v), `message ${i}`).toBe(true);
            expect(v).toBeGreaterThanOrEqual(m.action.min[d] as number);
            expect(v).toBeLessThanOrEqual(m.action.max[d] as number);
          });
        } else {
          const e = reply as ErrorReply;
          expect(e.code, `message ${i}: ${e.message}`).toBe('invalid');
          expect(e.field, `message ${i}: ${e.message}`).toMatch(/^(images\[0\]|state)/);
        }
      }
    } finally {
      socket.close();
    }
    expect(counts.actions).toBeGreaterThan(0);
    expect(counts.invalid).toBeGreaterThan(MESSAGES / 3);
    expect(counts.internal).toBeUndefined();
    expect(log.filter((l) => l.includes('inference failed'))).toEqual([]);
  });

  it('logs hostile client names on one line each', async () => {
    const rng = new Rng(9);
    const socket = new Dealer({ linger: 0, receiveTimeout: 10_000 });
    socket.connect(server.endpoint);
    const before = log.length;
    try {
      for (let i = 0; i < 100; i++) {
        const name = String.fromCharCode(
          ...Array.from({ length: 1 + rng.int(60) }, () => rng.int(0x2100)),
        );
        await socket.send(encodeMessage({ v: 1, id: i, type: 'hello', client: name } as never));
        await socket.receive();
      }
    } finally {
      socket.close();
    }
    const lines = log.slice(before).filter((l) => l.includes('hello from'));
    expect(lines).toHaveLength(100);
    for (const line of lines) {
      expect(line).not.toMatch(
        // eslint-disable-next-line no-control-regex
        /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/,
      );
    }
  });
});
