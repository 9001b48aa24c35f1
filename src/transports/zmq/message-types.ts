/**
 * Bridge protocol v1's messages: the requests a client sends, the replies the server gives, and
 * the wire array they carry tensors in (docs/bridge.md is the specification; protocol.ts is the
 * codec).
 */
import type { ErrorCode } from './errors.js';
import type { ImageLimits, WireImage } from './image.js';

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;
/** Versions this build answers (anything else gets `incompatible`). */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([PROTOCOL_VERSION]);

/** Element types of wire arrays and their sizes in bytes (data is always little-endian). */
export const DTYPE_SIZES = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  int64: 8,
  float32: 4,
  float64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

/** An n-dimensional array: row-major, little-endian bytes. */
export interface WireArray {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** Chosen by the client, echoed in the reply: a non-negative safe integer or a short string. */
export type RequestId = number | string;

interface Envelope {
  readonly v: typeof PROTOCOL_VERSION;
  readonly id?: RequestId;
}

export interface HelloRequest extends Envelope {
  readonly type: 'hello';
  /** Informative client name for the server's log. */
  readonly client?: string;
}
export interface PingRequest extends Envelope {
  readonly type: 'ping';
}
export interface InferRequest extends Envelope {
  readonly type: 'infer';
  readonly instruction: string;
  /** Robot state in manifest units: a wire array of S numbers, or a MessagePack array. */
  readonly state: WireArray | readonly number[];
  /** One image per camera the model takes (see `model.cameras` in the welcome). */
  readonly images: readonly WireImage[];
  /** Client timestamp in ms since the Unix epoch (capture time of the images). */
  readonly stamp: number;
  /** Visual tokens to keep for this request, in [1, model.visual_tokens]. */
  readonly keep_count?: number;
  /**
   * Seed of a flow-matching model's initial noise, an integer in [0, 2^32 - 1]: the same request
   * and seed give the same chunk (absent: derived from `stamp`). Models without noise ignore it.
   */
  readonly seed?: number;
}
export interface ResetRequest extends Envelope {
  readonly type: 'reset';
}
export type Request = HelloRequest | PingRequest | InferRequest | ResetRequest;
export type RequestType = Request['type'];
export const REQUEST_TYPES: readonly RequestType[] = ['hello', 'ping', 'infer', 'reset'];

/** Server metadata, the answer to `hello`. */
export interface WelcomeReply extends Envelope {
  readonly type: 'welcome';
  readonly protocol: number;
  readonly supported_versions: readonly number[];
  readonly server: string;
  readonly server_version: string;
  /** The server's name for this connection (hex of the ROUTER routing id). */
  readonly client_id: string;
  readonly model: {
    readonly name: string;
    readonly image: { readonly width: number; readonly height: number; readonly resize: string };
    readonly cameras: number;
    /** The cameras' names in the model's order (an image's `camera` field), when it takes several. */
    readonly camera_names?: readonly string[];
    readonly action_dim: number;
    readonly chunk_length: number;
    readonly control_rate_hz: number;
    readonly action_names: readonly string[];
    readonly state_names: readonly string[];
    readonly visual_tokens: number;
    readonly keep_count: number;
  };
  readonly limits: {
    readonly max_message_bytes: number;
    readonly max_image_width: number;
    readonly max_image_height: number;
    readonly max_image_bytes: number;
    readonly max_queue: number;
    readonly max_request_age_ms: number;
    readonly max_instruction_length: number;
  };
  readonly encodings: readonly string[];
}
export interface PongReply extends Envelope {
  readonly type: 'pong';
  /** Server clock, ms since the Unix epoch. */
  readonly server_time: number;
  /** Requests waiting in the queue now. */
  readonly queued: number;
}
/** Server-side timing of one request, ms. */
export interface ServerTiming {
  readonly queue_ms: number;
  readonly preprocess_ms: number;
  readonly encode_ms: number;
  readonly prune_ms: number;
  readonly policy_ms: number;
  readonly postprocess_ms: number;
  readonly pipeline_ms: number;
  /** Request received → reply handed to the socket. */
  readonly total_ms: number;
}
export interface ChunkMeta {
  /** Server-wide chunk counter, +1 per chunk computed. */
  readonly sequence: number;
  /** Seconds between consecutive actions. */
  readonly dt: number;
  /** The request's `stamp`, echoed. */
  readonly source_stamp: number;
  /** Frame in → chunk out inside the pipeline, ms. */
  readonly latency_ms: number;
  readonly horizon: number;
  readonly action_dim: number;
  readonly tokens_total: number;
  readonly tokens_kept: number;
  /** Action values changed by the safety clamp. */
  readonly clamped: number;
}
export interface ActionsReply extends Envelope {
  readonly type: 'actions';
  /** float32, shape [horizon, action_dim], manifest units. */
  readonly actions: WireArray;
  readonly chunk: ChunkMeta;
  readonly server_timing: ServerTiming;
}
export interface ResetReply extends Envelope {
  readonly type: 'reset_ok';
}
export interface ErrorReply extends Envelope {
  readonly type: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly field?: string;
}
export type Reply = WelcomeReply | PongReply | ActionsReply | ResetReply | ErrorReply;

/** Bounds the codec enforces on one request. */
export interface RequestLimits extends ImageLimits {
  readonly maxMessageBytes: number;
  readonly maxInstructionLength: number;
  /** Most images per request. */
  readonly maxImages: number;
  /** Most elements of the state array. */
  readonly maxStateValues: number;
}
