import { pack } from 'msgpackr';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import {
  arrayValues,
  BridgeError,
  checkArray,
  checkBind,
  DTYPE_SIZES,
  encodeMessage,
  isLocalEndpoint,
  parseReply,
  parseRequest,
  RequestQueue,
  type Dtype,
  type Reply,
  type Request,
  type RequestLimits,
} from '../../../src/transports/zmq/index.js';
import { compressedSize } from '../../../src/transports/zmq/image.js';
import { checkMsgpack } from '../../../src/transports/zmq/msgpack-guard.js';
import { inferRequest } from './support.js';

const LIMITS: RequestLimits = {
  maxMessageBytes: 1 << 20,
  maxImageWidth: 4096,
  maxImageHeight: 4096,
  maxImageBytes: 512 * 1024,
  maxInstructionLength: 1024,
  maxImages: 16,
  maxStateValues: 4096,
};

let jpeg: Uint8Array;
let png: Uint8Array;
beforeAll(async () => {
  const raw = { width: 40, height: 30, channels: 3 } as const;
  const pixels = Buffer.alloc(40 * 30 * 3, 90);
  jpeg = await sharp(pixels, { raw }).jpeg().toBuffer();
  png = await sharp(pixels, { raw }).png().toBuffer();
});

function parse(message: unknown, limits = LIMITS) {
  return parseRequest(message instanceof Uint8Array ? message : pack(message), limits);
}

function expectError(
  result: ReturnType<typeof parseRequest>,
  code: string,
  field?: string,
): BridgeError {
  expect(result.error).toBeInstanceOf(BridgeError);
  const e = result.error as BridgeError;
  expect(e.code).toBe(code);
  if (field !== undefined) expect(e.field).toBe(field);
  expect(e.message).toMatch(/^Expected /);
  return e;
}

describe('request codec', () => {
  const requests: [string, () => Request][] = [
    ['hello', () => ({ v: 1, id: 7, type: 'hello', client: 'test' })],
    ['ping', () => ({ v: 1, id: 'p-1', type: 'ping' })],
    ['reset', () => ({ v: 1, id: 0, type: 'reset' })],
    ['infer (raw rgb8, wire-array state)', () => inferRequest(3, 9)],
    [
      'infer (list state, keep_count)',
      () => ({ ...inferRequest(4, 10), state: [0.25, 0.75], keep_count: 12 }),
    ],
    [
      'infer (jpeg)',
      () => ({ ...inferRequest(5, 11), images: [{ encoding: 'jpeg', data: jpeg }] }),
    ],
    [
      'infer (png, camera name)',
      () => ({ ...inferRequest(5, 12), images: [{ encoding: 'png', data: png, camera: 'top' }] }),
    ],
  ];

  it.each(requests)('round-trips %s', (_name, make) => {
    const request = make();
    const result = parseRequest(encodeMessage(request), LIMITS);
    expect(result.error).toBeUndefined();
    const decoded = JSON.parse(JSON.stringify(result.request, bytesAsArrays)) as unknown;
    expect(decoded).toEqual(JSON.parse(JSON.stringify(request, bytesAsArrays)));
  });

  it('never revives extension types: a Date (timestamp extension) is rejected', () => {
    const bytes = pack({ v: 1, type: 'ping', when: new Date(0) });
    expectError(parse(bytes), 'invalid', 'message');
    expect(parse(bytes).error?.message).toMatch(/extension/);
  });
});

/** JSON replacer: byte buffers (Buffer.toJSON has run already for Buffers) as number arrays. */
function bytesAsArrays(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (
    typeof value === 'object' &&
    value !== null &&
    (value as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return (value as { data: unknown }).data;
  }
  return value;
}

describe('reply codec', () => {
  const actions = new Float32Array([0.1, 0.2, 0.3, 0.4]);
  const replies: [string, Reply][] = [
    [
      'welcome',
      {
        v: 1,
        id: 1,
        type: 'welcome',
        protocol: 1,
        supported_versions: [1],
        server: 'vla-node',
        server_version: '0.1.0',
        client_id: '00aabbccdd',
        model: {
          name: 'm',
          image: { width: 96, height: 96, resize: 'stretch' },
          cameras: 1,
          action_dim: 2,
          chunk_length: 2,
          control_rate_hz: 10,
          action_names: ['x', 'y'],
          state_names: ['x', 'y'],
          visual_tokens: 144,
          keep_count: 144,
        },
        limits: {
          max_message_bytes: 1,
          max_image_width: 1,
          max_image_height: 1,
          max_image_bytes: 1,
          max_queue: 8,
          max_request_age_ms: 1000,
          max_instruction_length: 1024,
        },
        encodings: ['rgb8'],
      },
    ],
    ['pong', { v: 1, id: 2, type: 'pong', server_time: 1.5, queued: 0 }],
    ['reset_ok', { v: 1, id: 3, type: 'reset_ok' }],
    [
      'actions',
      {
        v: 1,
        id: 4,
        type: 'actions',
        actions: { dtype: 'float32', shape: [2, 2], data: new Uint8Array(actions.buffer) },
        chunk: {
          sequence: 3,
          dt: 0.1,
          source_stamp: 1234.5,
          latency_ms: 2,
          horizon: 2,
          action_dim: 2,
          tokens_total: 144,
          tokens_kept: 36,
          clamped: 0,
        },
        server_timing: {
          queue_ms: 0,
          preprocess_ms: 1,
          encode_ms: 1,
          prune_ms: 0,
          policy_ms: 1,
          postprocess_ms: 0,
          pipeline_ms: 3,
          total_ms: 3.5,
        },
      },
    ],
    ['error', { v: 1, id: 5, type: 'error', code: 'busy', message: 'Expected room' }],
  ];

  it.each(replies)('round-trips %s', (_name, reply) => {
    const bytes = encodeMessage(reply);
    expect(() => {
      checkMsgpack(bytes);
    }).not.toThrow();
    const decoded = parseReply(bytes);
    expect(JSON.parse(JSON.stringify(decoded, bytesAsArrays))).toEqual(
      JSON.parse(JSON.stringify(reply, bytesAsArrays)),
    );
  });

  it('rejects replies of another version as incompatible', () => {
    expect(() => parseReply(pack({ v: 2, type: 'pong' }))).toThrow(
      expect.objectContaining({ code: 'incompatible' }),
    );
  });
});

describe('typed arrays', () => {
  const dtypes = Object.keys(DTYPE_SIZES) as Dtype[];
  it.each(dtypes)('decodes little-endian %s', (dtype) => {
    const values = [0, 1, 2, 100, 7];
    const size = DTYPE_SIZES[dtype];
    const data = new Uint8Array(values.length * size);
    const view = new DataView(data.buffer);
    values.forEach((v, i) => {
      const o = i * size;
      if (dtype === 'float32') view.setFloat32(o, v, true);
      else if (dtype === 'float64') view.setFloat64(o, v, true);
      else if (dtype === 'int64') view.setBigInt64(o, BigInt(v), true);
      else if (dtype === 'uint64') view.setBigUint64(o, BigInt(v), true);
      else if (size === 4) view.setUint32(o, v, true);
      else if (size === 2) view.setUint16(o, v, true);
      else view.setUint8(o, v);
    });
    const a = checkArray({ dtype, shape: [5], data }, 'x', 100);
    expect(Array.from(arrayValues(a))).toEqual(values);
  });

  it.each([
    ['unknown dtype', { dtype: 'complex64', shape: [1], data: new Uint8Array(8) }, 'x.dtype'],
    ['byte-length mismatch', { dtype: 'float32', shape: [3], data: new Uint8Array(8) }, 'x.data'],
    [
      'huge declared shape',
      { dtype: 'uint8', shape: [2 ** 31], data: new Uint8Array(1) },
      'x.shape[0]',
    ],
    [
      'too many elements',
      { dtype: 'uint8', shape: [50, 50], data: new Uint8Array(2500) },
      'x.shape',
    ],
    ['negative dimension', { dtype: 'uint8', shape: [-1], data: new Uint8Array(0) }, 'x.shape[0]'],
    ['data not bytes', { dtype: 'uint8', shape: [1], data: [1] }, 'x.data'],
    ['not a map', [1, 2, 3], 'x'],
  ])('rejects %s', (_name, raw, field) => {
    expect(() => checkArray(raw, 'x', 100)).toThrow(
      expect.objectContaining({ code: 'invalid', field }),
    );
  });
});

describe('request validation', () => {
  // Keys patched to undefined are left out (msgpackr would send undefined as an extension).
  const infer = (patch: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries({ ...inferRequest(3, 1), ...patch } as Record<string, unknown>).filter(
        ([, v]) => v !== undefined,
      ),
    );
  const image = (patch: Record<string, unknown>) =>
    infer({
      images: [{ encoding: 'rgb8', width: 4, height: 4, data: new Uint8Array(48), ...patch }],
    });

  it.each<[string, () => unknown, string, string]>([
    ['a missing version', () => ({ type: 'ping' }), 'invalid', 'v'],
    ['a string version', () => ({ v: '1', type: 'ping' }), 'invalid', 'v'],
    ['version 2', () => ({ v: 2, type: 'ping' }), 'incompatible', 'v'],
    ['version 0', () => ({ v: 0, type: 'ping' }), 'incompatible', 'v'],
    ['an unknown type', () => ({ v: 1, type: 'reboot' }), 'invalid', 'type'],
    ['a missing type', () => ({ v: 1 }), 'invalid', 'type'],
    ['an id that is a map', () => ({ v: 1, type: 'ping', id: { a: 1 } }), 'invalid', 'id'],
    ['a negative id', () => ({ v: 1, type: 'ping', id: -3 }), 'invalid', 'id'],
    ['a missing instruction', () => infer({ instruction: undefined }), 'invalid', 'instruction'],
    ['a numeric instruction', () => infer({ instruction: 5 }), 'invalid', 'instruction'],
    ['a missing stamp', () => infer({ stamp: undefined }), 'invalid', 'stamp'],
    ['a string stamp', () => infer({ stamp: 'now' }), 'invalid', 'stamp'],
    ['a state of strings', () => infer({ state: ['a', 'b'] }), 'invalid', 'state[0]'],
    [
      'a 2-D state',
      () => infer({ state: { dtype: 'float64', shape: [1, 2], data: new Uint8Array(16) } }),
      'invalid',
      'state.shape',
    ],
    [
      'a non-finite state',
      () =>
        infer({
          state: {
            dtype: 'float64',
            shape: [2],
            data: new Uint8Array(new Float64Array([NaN, 0]).buffer),
          },
        }),
      'invalid',
      'state[0]',
    ],
    [
      'a state shape/bytes mismatch',
      () => infer({ state: { dtype: 'float32', shape: [2], data: new Uint8Array(16) } }),
      'invalid',
      'state.data',
    ],
    ['no images', () => infer({ images: [] }), 'invalid', 'images'],
    ['images not an array', () => infer({ images: 'cam' }), 'invalid', 'images'],
    ['an unknown encoding', () => image({ encoding: 'yuv420' }), 'invalid', 'images[0].encoding'],
    ['a zero width', () => image({ width: 0 }), 'invalid', 'images[0].width'],
    ['a width over the limit', () => image({ width: 5000 }), 'invalid', 'images[0].width'],
    ['a fractional height', () => image({ height: 1.5 }), 'invalid', 'images[0].height'],
    ['too few pixel bytes', () => image({ data: new Uint8Array(47) }), 'invalid', 'images[0].data'],
    ['a step below the row size', () => image({ step: 11 }), 'invalid', 'images[0].step'],
    [
      'a string is_bigendian',
      () => image({ is_bigendian: 'no' }),
      'invalid',
      'images[0].is_bigendian',
    ],
    ['pixels that are not bytes', () => image({ data: [1, 2, 3] }), 'invalid', 'images[0].data'],
    [
      'image bytes over the limit',
      () => image({ width: 400, height: 500, data: new Uint8Array(400 * 500 * 3) }),
      'invalid',
      'images[0].data',
    ],
    [
      'JPEG bytes that are not a JPEG',
      () => infer({ images: [{ encoding: 'jpeg', data: new Uint8Array([1, 2, 3, 4, 5]) }] }),
      'invalid',
      'images[0].data',
    ],
    [
      'a PNG header over the size limit',
      () => {
        const big = Uint8Array.from(png);
        new DataView(big.buffer).setUint32(16, 100_000);
        return infer({ images: [{ encoding: 'png', data: big }] });
      },
      'invalid',
      'images[0].data',
    ],
    ['keep_count 0', () => infer({ keep_count: 0 }), 'invalid', 'keep_count'],
    ['a fractional keep_count', () => infer({ keep_count: 1.5 }), 'invalid', 'keep_count'],
    [
      'an instruction over the limit',
      () => infer({ instruction: 'x'.repeat(2000) }),
      'invalid',
      'instruction',
    ],
  ])('answers %s', (_name, make, code, field) => {
    expectError(parse(make()), code, field);
  });

  it.each<[string, Uint8Array]>([
    ['an empty frame', new Uint8Array(0)],
    ['random bytes', Uint8Array.from([0xc1, 0x00, 0x13])],
    ['a top-level array', pack([1, 2, 3])],
    ['a top-level string', pack('ping')],
    ['trailing bytes', Uint8Array.from([...pack({ v: 1, type: 'ping' }), 0x00])],
    ['a truncated map', pack({ v: 1, type: 'ping' }).subarray(0, 5)],
    [
      'an array32 declaring 2^32-1 elements',
      Uint8Array.from([0x81, 0xa1, 0x61, 0xdd, 0xff, 0xff, 0xff, 0xff]),
    ],
    [
      'a bin32 declaring 4 GiB',
      Uint8Array.from([0x81, 0xa1, 0x61, 0xc6, 0xff, 0xff, 0xff, 0xff, 1]),
    ],
    ['a map32 declaring 2^32-1 entries', Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff])],
    ['an integer map key', Uint8Array.from([0x81, 0x01, 0x02])],
    ['a fixext', Uint8Array.from([0x81, 0xa1, 0x61, 0xd4, 0x65, 0x00])],
    ['an ext8 record definition', Uint8Array.from([0x81, 0xa1, 0x61, 0xc7, 0x01, 0x72, 0x00])],
    ['deep nesting', Uint8Array.from([0x81, 0xa1, 0x61, ...Array<number>(40).fill(0x91), 0x01])],
  ])('answers %s with invalid', (_name, bytes) => {
    expectError(parse(bytes), 'invalid', 'message');
  });

  it('refuses messages over max_message_bytes', () => {
    expectError(
      parse(pack({ v: 1, type: 'ping', pad: 'x'.repeat(300) }), {
        ...LIMITS,
        maxMessageBytes: 100,
      }),
      'invalid',
      'message',
    );
  });

  it('echoes the id of a request it rejects', () => {
    const result = parse({ v: 1, id: 42, type: 'infer' });
    expect(result.error?.code).toBe('invalid');
    expect(result.request === undefined && result.id).toBe(42);
  });
});

describe('image headers', () => {
  it('reads the size of PNG and JPEG bytes', () => {
    expect(compressedSize(png)).toEqual({ format: 'png', width: 40, height: 30 });
    expect(compressedSize(jpeg)).toEqual({ format: 'jpeg', width: 40, height: 30 });
    expect(compressedSize(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]))).toBeUndefined();
  });
});

describe('bind policy', () => {
  it.each([
    'tcp://127.0.0.1:5555',
    'tcp://127.0.0.1:*',
    'tcp://127.1.2.3:80',
    'tcp://localhost:5555',
    'tcp://[::1]:5555',
    'ipc:///tmp/vla.sock',
    'inproc://vla',
  ])('binds %s without keys', (endpoint) => {
    expect(isLocalEndpoint(endpoint)).toBe(true);
    expect(() => {
      checkBind(endpoint, undefined);
    }).not.toThrow();
  });

  it.each([
    'tcp://0.0.0.0:5555',
    'tcp://*:5555',
    'tcp://192.168.1.20:5555',
    'tcp://[::]:5555',
    'tcp://eth0:5555',
    'tcp://127.0.0.1.example.com:5555',
  ])('refuses %s without a CURVE key', (endpoint) => {
    expect(isLocalEndpoint(endpoint)).toBe(false);
    expect(() => {
      checkBind(endpoint, undefined);
    }).toThrow(ConfigError);
    expect(() => {
      checkBind(endpoint, undefined);
    }).toThrow(/CURVE/);
    expect(() => {
      checkBind(endpoint, undefined);
    }).toThrow(expect.objectContaining({ field: 'bind' }));
  });

  it('accepts a non-loopback bind with a well-formed key and refuses a malformed key', () => {
    const key = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6';
    expect(() => {
      checkBind('tcp://0.0.0.0:5555', key);
    }).not.toThrow();
    expect(() => {
      checkBind('tcp://0.0.0.0:5555', 'short');
    }).toThrow(expect.objectContaining({ field: 'curve_secret_key' }));
    expect(() => {
      checkBind('udp://127.0.0.1:5555', undefined);
    }).toThrow(expect.objectContaining({ field: 'bind' }));
  });
});

describe('RequestQueue', () => {
  it('refuses beyond its capacity, hands out batches in order and ends when closed', async () => {
    const q = new RequestQueue<number>(2);
    expect(q.offer(1)).toBe(true);
    expect(q.offer(2)).toBe(true);
    expect(q.offer(3)).toBe(false);
    expect(await q.take(5)).toEqual([1, 2]);
    const waiting = q.take(1);
    q.offer(4);
    expect(await waiting).toEqual([4]);
    const last = q.take(1);
    q.close();
    expect(await last).toEqual([]);
    expect(q.offer(5)).toBe(false);
  });

  it('waits up to waitMs after the first job for a batch to fill', async () => {
    const q = new RequestQueue<number>(8);
    q.offer(1);
    const t0 = performance.now();
    const partial = await q.take(3, 40);
    expect(partial).toEqual([1]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    q.offer(2);
    const filling = q.take(3, 1000);
    setTimeout(() => q.offer(3), 5);
    setTimeout(() => q.offer(4), 10);
    const started = performance.now();
    expect(await filling).toEqual([2, 3, 4]);
    expect(performance.now() - started).toBeLessThan(500); // full before the wait ran out
    // The wait counts from when the first job was offered, not from the take.
    q.offer(5);
    await new Promise((r) => setTimeout(r, 30));
    const late = performance.now();
    expect(await q.take(3, 20)).toEqual([5]);
    expect(performance.now() - late).toBeLessThan(15);
  });

  it('takes the longest ready prefix, in order, when given a readiness test', async () => {
    const q = new RequestQueue<{ id: number; ready: boolean }>(8);
    const jobs = [1, 2, 3].map((id) => ({ id, ready: false }));
    for (const j of jobs) q.offer(j);
    const taking = q.take(3, 0, (j) => j.ready);
    const [a, b, c] = jobs as [(typeof jobs)[0], (typeof jobs)[0], (typeof jobs)[0]];
    b.ready = true; // not the head: nothing can be taken yet
    q.notify();
    await new Promise((r) => setTimeout(r, 10));
    a.ready = true;
    q.notify();
    expect((await taking).map((j) => j.id)).toEqual([1, 2]);
    c.ready = true;
    expect((await q.take(3, 0, (j) => j.ready)).map((j) => j.id)).toEqual([3]);
    const never = q.take(1, 0, (j) => j.ready);
    q.close();
    expect(await never).toEqual([]);
  });
});
