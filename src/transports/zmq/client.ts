/**
 * A TypeScript client of the bridge: one DEALER socket, any number of requests in flight, replies
 * matched by request id, a timeout per request.
 */

import { curveKeyPair, Dealer } from 'zeromq';
import type { Frame } from '../../ingest/index.js';
import { SerialQueue } from '../../runtime/serial-queue.js';
import { BridgeError } from './errors.js';
import { frameToImage } from './image.js';
import {
  arrayValues,
  encodeMessage,
  parseReply,
  PROTOCOL_VERSION,
  type ActionsReply,
  type PongReply,
  type Reply,
  type Request,
  type RequestId,
  type ServerTiming,
  type WelcomeReply,
  type WireArray,
} from './protocol.js';

export interface BridgeClientOptions {
  /** A request without a reply after this long rejects with code `timeout` (default 15000 ms). */
  readonly timeoutMs?: number;
  /** The server's Z85 CURVE public key, when the server uses CURVE. */
  readonly curveServerKey?: string;
  /**
   * This client's long-term Z85 CURVE key pair (with `curveServerKey`), for a server with a client
   * allow-list; default: a fresh pair per connection.
   */
  readonly curveKeyPair?: { readonly publicKey: string; readonly secretKey: string };
}

/** One observation as the client sends it: `frame` (one camera) or `cameras` (several). */
export interface ClientObservation {
  /** The image of a one-camera model (ignored when `cameras` is given). */
  readonly frame?: Frame;
  /**
   * One image per camera of a model that takes several, each sent with its `camera` name (the
   * welcome's `model.camera_names`; unnamed images are taken in the model's camera order), e.g.
   * `[{ camera: 'table', frame: table }, { camera: 'wrist', frame: wrist }]`.
   */
  readonly cameras?: readonly { readonly camera?: string; readonly frame: Frame }[];
  /** Seed of a flow-matching model's noise, an integer in [0, 2^32 - 1] (default: the server derives it from `stamp`). */
  readonly seed?: number;
  readonly instruction: string;
  /** Robot state in manifest units (sent as float64). */
  readonly state: ArrayLike<number>;
  /** Capture time, ms since the Unix epoch (default: now). */
  readonly stamp?: number;
  /** Visual tokens to keep for this request only. */
  readonly keepCount?: number;
}

/** A chunk as the client receives it. */
export interface ChunkResult {
  /** horizon × actionDim, row-major, manifest units. */
  readonly actions: Float32Array;
  readonly horizon: number;
  readonly actionDim: number;
  readonly sequence: number;
  readonly dt: number;
  readonly sourceStamp: number;
  readonly latencyMs: number;
  readonly tokens: { readonly total: number; readonly kept: number };
  readonly clamped: number;
  readonly serverTiming: ServerTiming;
}

/** The body of a request: what {@link BridgeClient.request} adds `v` and `id` to. */
export type RequestBody = {
  [K in Request['type']]: Omit<Extract<Request, { type: K }>, 'v' | 'id'>;
}[Request['type']];

interface Pending {
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: BridgeError) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * @example
 * const client = BridgeClient.connect('tcp://127.0.0.1:5555');
 * const meta = await client.hello();
 * const chunk = await client.infer({ frame, instruction: 'move to the red block', state: [0.5, 0.5] });
 * await client.close();
 */
export class BridgeClient {
  readonly endpoint: string;
  readonly #socket: Dealer;
  readonly #timeoutMs: number;
  readonly #pending = new Map<RequestId, Pending>();
  #nextId = 1;
  /** Requests one at a time on the socket, in the order they were made. */
  readonly #sends = new SerialQueue();
  #receiver: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(endpoint: string, options: BridgeClientOptions) {
    this.endpoint = endpoint;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    const curve =
      options.curveServerKey === undefined
        ? {}
        : (() => {
            const pair = options.curveKeyPair ?? curveKeyPair();
            return {
              curveServerKey: options.curveServerKey,
              curvePublicKey: pair.publicKey,
              curveSecretKey: pair.secretKey,
            };
          })();
    this.#socket = new Dealer({ linger: 0, maxMessageSize: 64 * 1024 * 1024, ...curve });
    this.#socket.connect(endpoint);
    this.#receiver = this.#receive();
  }

  /** Connect (in the background: the first request waits for the connection). */
  static connect(endpoint: string, options: BridgeClientOptions = {}): BridgeClient {
    return new BridgeClient(endpoint, options);
  }

  /** Requests waiting for a reply. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** The server's metadata. */
  async hello(client = 'vla-node-ts'): Promise<WelcomeReply> {
    return (await this.request({ type: 'hello', client })) as WelcomeReply;
  }

  async ping(): Promise<PongReply> {
    return (await this.request({ type: 'ping' })) as PongReply;
  }

  /** Forget this client's state on the server (e.g. the temporal pruning cache). */
  async reset(): Promise<void> {
    await this.request({ type: 'reset' });
  }

  /**
   * Send one observation and wait for its chunk.
   *
   * @throws {BridgeError} with the server's code (`invalid`, `busy`, `stale`, ...), or `timeout`.
   */
  async infer(obs: ClientObservation): Promise<ChunkResult> {
    const images =
      obs.cameras !== undefined
        ? obs.cameras.map((c) => frameToImage(c.frame, c.camera))
        : obs.frame !== undefined
          ? [frameToImage(obs.frame)]
          : undefined;
    if (images === undefined) {
      throw new BridgeError(
        'invalid',
        'Expected frame or cameras in the observation but received neither',
        { field: 'frame' },
      );
    }
    const state = Float64Array.from(obs.state);
    const wireState: WireArray = {
      dtype: 'float64',
      shape: [state.length],
      data: new Uint8Array(state.buffer),
    };
    const reply = (await this.request({
      type: 'infer',
      instruction: obs.instruction,
      state: wireState,
      images,
      stamp: obs.stamp ?? Date.now(),
      ...(obs.keepCount === undefined ? {} : { keep_count: obs.keepCount }),
      ...(obs.seed === undefined ? {} : { seed: obs.seed }),
    })) as ActionsReply;
    const c = reply.chunk;
    return {
      actions: Float32Array.from(arrayValues(reply.actions)),
      horizon: c.horizon,
      actionDim: c.action_dim,
      sequence: c.sequence,
      dt: c.dt,
      sourceStamp: c.source_stamp,
      latencyMs: c.latency_ms,
      tokens: { total: c.tokens_total, kept: c.tokens_kept },
      clamped: c.clamped,
      serverTiming: reply.server_timing,
    };
  }

  /**
   * Send any request (`v` and a fresh `id` are added) and resolve with its reply.
   *
   * @throws {BridgeError} for an `error` reply, a timeout, or a closed client.
   */
  request(body: RequestBody): Promise<Reply> {
    if (this.#closed) return Promise.reject(new BridgeError('closed', 'Expected an open client'));
    const id = this.#nextId++;
    const frame = encodeMessage({ ...body, v: PROTOCOL_VERSION, id });
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new BridgeError(
            'timeout',
            `Expected a reply to ${body.type} request ${id} from ${this.endpoint} within ${this.#timeoutMs} ms`,
          ),
        );
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#sends
        .run(() => this.#socket.send(frame))
        .catch((cause: unknown) => {
          this.#settle(
            id,
            new BridgeError('closed', `Could not send: ${String(cause)}`, { cause }),
          );
        });
    });
  }

  /** Reject what is in flight with `closed` and close the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#pending.keys()]) {
      this.#settle(id, new BridgeError('closed', 'Expected a reply but the client was closed'));
    }
    this.#socket.close();
    await this.#receiver;
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        const payload = frames[frames.length - 1];
        if (payload === undefined) continue;
        let reply: Reply;
        try {
          reply = parseReply(payload);
        } catch {
          continue; // not a v1 reply: nothing to match it to
        }
        if (reply.id === undefined) continue;
        this.#settle(reply.id, reply);
      }
    } catch {
      // the socket was closed
    }
  }

  #settle(id: RequestId, outcome: Reply | BridgeError): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (outcome instanceof BridgeError) pending.reject(outcome);
    else if (outcome.type === 'error') {
      pending.reject(
        new BridgeError(outcome.code, outcome.message, {
          ...(outcome.field === undefined ? {} : { field: outcome.field }),
        }),
      );
    } else pending.resolve(outcome);
  }
}
