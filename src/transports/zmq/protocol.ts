/**
 * Bridge protocol v1: the codec and the typed-array encoding, with the messages (message-types.ts)
 * re-exported, so that importers take the whole protocol from here. Every message is one
 * MessagePack map with `v` (the protocol version) and `type` (the discriminant). Nothing is ever
 * revived into code or class instances: the bytes are checked by {@link checkMsgpack} (no
 * extension types) before msgpackr decodes them into plain maps, arrays, strings, numbers and
 * bytes. docs/bridge.md is the specification.
 */

import { endianness } from 'node:os';
import { FLOAT32_OPTIONS, Packr, Unpackr } from 'msgpackr';
import { describe } from '../../errors.js';
import type { StageTimings } from '../../runtime/latency.js';
import { BridgeError, ERROR_CODES } from './errors.js';
import { checkImage } from './image.js';
import { checkMsgpack } from './msgpack-guard.js';
import {
  DTYPE_SIZES,
  PROTOCOL_VERSION,
  REQUEST_TYPES,
  SUPPORTED_VERSIONS,
  type ActionsReply,
  type Dtype,
  type ErrorReply,
  type InferRequest,
  type Reply,
  type Request,
  type RequestId,
  type RequestLimits,
  type ServerTiming,
  type WireArray,
} from './message-types.js';

// The messages are the protocol too: importers take them and the codec from this one module.
export * from './message-types.js';

const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  int64AsType: 'number',
  copyBuffers: false,
});
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  useFloat32: FLOAT32_OPTIONS.NEVER,
});

const LITTLE_ENDIAN = endianness() === 'LE';

function invalid(field: string, message: string): BridgeError {
  return new BridgeError('invalid', message, { field });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Encode any protocol message (request or reply) as one MessagePack frame. */
export function encodeMessage(message: Request | Reply): Buffer {
  return packr.pack(message);
}

/**
 * Decode one frame into a plain object after the structural check.
 *
 * @throws {BridgeError} `invalid` when the bytes are not one extension-free MessagePack map.
 */
export function decodeFrame(bytes: Uint8Array): Record<string, unknown> {
  checkMsgpack(bytes);
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (cause) {
    throw new BridgeError(
      'invalid',
      `Expected a MessagePack map but decoding failed: ${(cause as Error).message}`,
      { field: 'message', cause },
    );
  }
  if (!isRecord(value)) {
    throw invalid('message', `Expected a MessagePack map but received ${describe(value)}`);
  }
  return value;
}

/** A float32 wire array of `values` (a view on little-endian hosts, a byte-swapped copy otherwise). */
export function float32Array(values: Float32Array, shape: readonly number[]): WireArray {
  let data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (!LITTLE_ENDIAN) {
    data = new Uint8Array(values.byteLength);
    const view = new DataView(data.buffer);
    for (const [i, v] of values.entries()) view.setFloat32(4 * i, v, true);
  }
  return { dtype: 'float32', shape, data };
}

/**
 * Check a wire array: known dtype, a shape of non-negative integers whose product is at most
 * `maxElements`, and exactly product × itemsize bytes.
 *
 * @throws {BridgeError} `invalid` naming `field`.
 */
export function checkArray(raw: unknown, field: string, maxElements: number): WireArray {
  if (!isRecord(raw)) {
    throw invalid(
      field,
      `Expected a map {dtype, shape, data} for ${field} but received ${describe(raw)}`,
    );
  }
  const { dtype, shape, data } = raw;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    throw invalid(
      `${field}.dtype`,
      `Expected dtype ${Object.keys(DTYPE_SIZES).join('|')} for ${field}.dtype but received ${describe(dtype)}`,
    );
  }
  if (!Array.isArray(shape) || shape.length > 8) {
    throw invalid(
      `${field}.shape`,
      `Expected an array of at most 8 dimensions for ${field}.shape but received ${describe(shape)}`,
    );
  }
  let count = 1;
  for (const [i, d] of (shape as unknown[]).entries()) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > maxElements) {
      throw invalid(
        `${field}.shape[${i}]`,
        `Expected an integer in [0, ${maxElements}] for ${field}.shape[${i}] but received ${describe(d)}`,
      );
    }
    count *= d;
  }
  if (count > maxElements) {
    throw invalid(
      `${field}.shape`,
      `Expected at most ${maxElements} elements in ${field} but its shape [${shape.join(', ')}] has ${count}`,
    );
  }
  if (!(data instanceof Uint8Array)) {
    throw invalid(
      `${field}.data`,
      `Expected bin bytes for ${field}.data but received ${describe(data)}`,
    );
  }
  const size = DTYPE_SIZES[dtype as Dtype];
  if (data.length !== count * size) {
    throw invalid(
      `${field}.data`,
      `Expected ${count * size} bytes for ${field}.data (${count} × ${dtype}) but received ${data.length}`,
    );
  }
  return { dtype: dtype as Dtype, shape: shape as number[], data };
}

/** The elements of a checked wire array as numbers (64-bit integers beyond 2^53 lose precision). */
export function arrayValues(a: WireArray): Float64Array {
  const size = DTYPE_SIZES[a.dtype];
  const n = a.data.length / size;
  const out = new Float64Array(n);
  const view = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const read: (o: number) => number = {
    uint8: (o: number) => view.getUint8(o),
    int8: (o: number) => view.getInt8(o),
    uint16: (o: number) => view.getUint16(o, true),
    int16: (o: number) => view.getInt16(o, true),
    uint32: (o: number) => view.getUint32(o, true),
    int32: (o: number) => view.getInt32(o, true),
    uint64: (o: number) => Number(view.getBigUint64(o, true)),
    int64: (o: number) => Number(view.getBigInt64(o, true)),
    float32: (o: number) => view.getFloat32(o, true),
    float64: (o: number) => view.getFloat64(o, true),
  }[a.dtype];
  for (let i = 0; i < n; i++) out[i] = read(i * size);
  return out;
}

/** The state of an infer request as numbers. */
export function stateValues(state: InferRequest['state']): ArrayLike<number> {
  return Array.isArray(state) ? (state as readonly number[]) : arrayValues(state as WireArray);
}

/** The request id of a decoded map, when it has a valid one. */
export function requestIdOf(raw: Record<string, unknown>): RequestId | undefined {
  const id = raw.id;
  if (typeof id === 'string' && id.length <= 128) return id;
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  return undefined;
}

/** The outcome of parsing a request: the request, or the error to reply with. */
export type ParseResult =
  | { readonly request: Request; readonly error?: undefined }
  | {
      readonly request?: undefined;
      readonly error: BridgeError;
      readonly id: RequestId | undefined;
    };

/**
 * Decode and validate one request frame. Never throws: a malformed request gives the error to
 * answer with (and its id, when one could be read).
 */
export function parseRequest(bytes: Uint8Array, limits: RequestLimits): ParseResult {
  let id: RequestId | undefined;
  try {
    if (bytes.length > limits.maxMessageBytes) {
      throw invalid(
        'message',
        `Expected a message of at most ${limits.maxMessageBytes} bytes but received ${bytes.length}`,
      );
    }
    const raw = decodeFrame(bytes);
    id = requestIdOf(raw);
    return { request: validateRequest(raw, limits) };
  } catch (error) {
    const e =
      error instanceof BridgeError
        ? error
        : new BridgeError('internal', `Unexpected error while parsing: ${String(error)}`);
    return { error: e, id };
  }
}

function validateRequest(raw: Record<string, unknown>, limits: RequestLimits): Request {
  const { v, type } = raw;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw invalid(
      'v',
      `Expected an integer protocol version v (${PROTOCOL_VERSION}) but received ${describe(v)}`,
    );
  }
  if (!SUPPORTED_VERSIONS.includes(v)) {
    throw new BridgeError(
      'incompatible',
      `Expected protocol version v in [${SUPPORTED_VERSIONS.join(', ')}] but received ${v}`,
      { field: 'v' },
    );
  }
  if (raw.id !== undefined && requestIdOf(raw) === undefined) {
    throw invalid(
      'id',
      `Expected a non-negative safe integer or a string of at most 128 characters for id but received ${describe(raw.id)}`,
    );
  }
  const id = requestIdOf(raw);
  const base = { v: PROTOCOL_VERSION, ...(id === undefined ? {} : { id }) } as const;
  switch (type) {
    case 'hello': {
      const client = raw.client;
      if (client !== undefined && (typeof client !== 'string' || client.length > 256)) {
        throw invalid(
          'client',
          `Expected a string of at most 256 characters for client but received ${describe(client)}`,
        );
      }
      return { ...base, type, ...(typeof client === 'string' ? { client } : {}) };
    }
    case 'ping':
    case 'reset':
      return { ...base, type };
    case 'infer':
      return { ...base, ...validateInfer(raw, limits) };
    default:
      throw invalid(
        'type',
        `Expected type ${REQUEST_TYPES.join('|')} but received ${describe(type)}`,
      );
  }
}

function validateInfer(
  raw: Record<string, unknown>,
  limits: RequestLimits,
): Omit<InferRequest, 'v' | 'id'> {
  const { instruction, state, images, stamp, keep_count, seed } = raw;
  if (typeof instruction !== 'string' || instruction.length > limits.maxInstructionLength) {
    throw invalid(
      'instruction',
      `Expected a string of at most ${limits.maxInstructionLength} characters for instruction but received ${describe(instruction)}`,
    );
  }
  if (typeof stamp !== 'number' || !Number.isFinite(stamp)) {
    throw invalid(
      'stamp',
      `Expected a finite number (ms since the Unix epoch) for stamp but received ${describe(stamp)}`,
    );
  }
  let wireState: InferRequest['state'];
  if (Array.isArray(state)) {
    if (state.length > limits.maxStateValues) {
      throw invalid(
        'state',
        `Expected at most ${limits.maxStateValues} state values but received ${state.length}`,
      );
    }
    for (const [i, x] of (state as unknown[]).entries()) {
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        throw invalid(
          `state[${i}]`,
          `Expected a finite number for state[${i}] but received ${describe(x)}`,
        );
      }
    }
    wireState = state as number[];
  } else {
    wireState = checkArray(state, 'state', limits.maxStateValues);
    if (wireState.shape.length !== 1) {
      throw invalid(
        'state.shape',
        `Expected a 1-D state array but received shape [${wireState.shape.join(', ')}]`,
      );
    }
    for (const [i, x] of arrayValues(wireState).entries()) {
      if (!Number.isFinite(x)) {
        throw invalid(`state[${i}]`, `Expected a finite number for state[${i}] but received ${x}`);
      }
    }
  }
  if (!Array.isArray(images) || images.length < 1 || images.length > limits.maxImages) {
    throw invalid(
      'images',
      `Expected an array of 1 to ${limits.maxImages} images for images but received ${describe(images)}`,
    );
  }
  const checked = (images as unknown[]).map((img, i) => checkImage(img, `images[${i}]`, limits));
  if (
    keep_count !== undefined &&
    (typeof keep_count !== 'number' || !Number.isInteger(keep_count) || keep_count < 1)
  ) {
    throw invalid(
      'keep_count',
      `Expected a positive integer for keep_count but received ${describe(keep_count)}`,
    );
  }
  if (
    seed !== undefined &&
    (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
  ) {
    throw invalid(
      'seed',
      `Expected an integer in [0, 4294967295] for seed but received ${describe(seed)}`,
    );
  }
  return {
    type: 'infer',
    instruction,
    state: wireState,
    images: checked,
    stamp,
    ...(keep_count === undefined ? {} : { keep_count }),
    ...(seed === undefined ? {} : { seed }),
  };
}

/** Server timing of a request from the pipeline's stage timings. */
export function serverTiming(
  stages: StageTimings,
  pipelineMs: number,
  queueMs: number,
  totalMs: number,
): ServerTiming {
  return {
    queue_ms: queueMs,
    preprocess_ms: stages.preprocess,
    encode_ms: stages.encode,
    prune_ms: stages.prune,
    policy_ms: stages.policy,
    postprocess_ms: stages.postprocess,
    pipeline_ms: pipelineMs,
    total_ms: totalMs,
  };
}

/**
 * Decode and check one reply frame (the client side of the codec).
 *
 * @throws {BridgeError} `invalid` when the frame is not a v1 reply.
 */
export function parseReply(bytes: Uint8Array): Reply {
  const raw = decodeFrame(bytes);
  if (raw.v !== PROTOCOL_VERSION) {
    throw new BridgeError(
      'incompatible',
      `Expected a reply with v ${PROTOCOL_VERSION} but received ${describe(raw.v)}`,
      { field: 'v' },
    );
  }
  switch (raw.type) {
    case 'welcome':
    case 'pong':
    case 'reset_ok':
      return raw as unknown as Reply;
    case 'actions': {
      const actions = checkArray(raw.actions, 'actions', 1 << 24);
      if (actions.dtype !== 'float32' || actions.shape.length !== 2) {
        throw invalid(
          'actions',
          `Expected float32 actions of shape [horizon, action_dim] but received ${actions.dtype} [${actions.shape.join(', ')}]`,
        );
      }
      if (!isRecord(raw.chunk) || !isRecord(raw.server_timing)) {
        throw invalid('chunk', 'Expected chunk and server_timing maps in an actions reply');
      }
      return { ...(raw as unknown as ActionsReply), actions };
    }
    case 'error': {
      const code = raw.code;
      if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) {
        throw invalid(
          'code',
          `Expected error code ${ERROR_CODES.join('|')} but received ${describe(code)}`,
        );
      }
      return raw as unknown as ErrorReply;
    }
    default:
      throw invalid(
        'type',
        `Expected reply type welcome|pong|actions|reset_ok|error but received ${describe(raw.type)}`,
      );
  }
}
