/**
 * The ZeroMQ bridge server: a ROUTER socket speaking protocol v1 in front of one pipeline.
 * Requests are parsed and checked on arrival; `infer` requests wait in a bounded queue for the one
 * inference worker (the pipeline is not re-entrant), every other request is answered at once.
 */

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Router } from 'zeromq';
import { InputError, VlaError } from '../../errors.js';
import type { Manifest } from '../../model/manifest.js';
import type { ActionChunk, Observation } from '../../pipeline/pipeline.js';
import { SUPPORTED_ENCODINGS } from '../../ingest/index.js';
import { LatencyHistogram, type LatencySummary } from '../../runtime/latency.js';
import { checkBind } from './endpoint.js';
import type { ErrorCode } from './errors.js';
import { COMPRESSED_ENCODINGS, imageToFrame } from './image.js';
import {
  encodeMessage,
  float32Array,
  parseRequest,
  PROTOCOL_VERSION,
  serverTiming,
  stateValues,
  SUPPORTED_VERSIONS,
  type InferRequest,
  type Reply,
  type RequestId,
  type RequestLimits,
  type WelcomeReply,
} from './protocol.js';
import { RequestQueue } from './queue.js';

/** What the server needs of a pipeline ({@link VlaPipeline} is one; tests pass doubles). */
export interface BridgePipeline {
  readonly model: { readonly manifest: Manifest };
  /** Visual tokens per frame before pruning. */
  readonly totalTokens: number;
  /** Tokens kept per frame under the configured budget. */
  readonly tokenBudget: number;
  readonly pruner: { reset(stream?: string): void };
  infer(obs: Observation): Promise<ActionChunk>;
}

export interface BridgeServerOptions {
  /** ZeroMQ endpoint to bind; `tcp://127.0.0.1:*` picks a free port (see {@link BridgeServer.endpoint}). */
  readonly bind: string;
  /** Infer requests that may wait for the worker; more get `busy`. */
  readonly maxQueue: number;
  /** An infer request whose `stamp` is older than this when it is dequeued gets `stale`; 0 = off. */
  readonly maxRequestAgeMs: number;
  /** Largest message accepted (ZMQ_MAXMSGSIZE disconnects senders of larger ones). */
  readonly maxMessageBytes: number;
  readonly maxImageWidth: number;
  readonly maxImageHeight: number;
  readonly maxImageBytes: number;
  readonly maxInstructionLength: number;
  /** Per-client states kept; the least recently seen idle one is forgotten beyond this. */
  readonly maxClients: number;
  /** How long replies still queued in ZeroMQ may take to leave after close, ms. */
  readonly lingerMs: number;
  /** Z85 CURVE secret key; required to bind an address other machines can reach. */
  readonly curveSecretKey?: string;
  /** Where the server's log lines go. */
  readonly log?: (line: string) => void;
}

/** The defaults of every option but the key and the log. */
export const BRIDGE_DEFAULTS = Object.freeze({
  bind: 'tcp://127.0.0.1:5555',
  maxQueue: 8,
  maxRequestAgeMs: 1000,
  maxMessageBytes: 34 * 1024 * 1024,
  maxImageWidth: 4096,
  maxImageHeight: 4096,
  maxImageBytes: 32 * 1024 * 1024,
  maxInstructionLength: 1024,
  maxClients: 256,
  lingerMs: 1000,
}) satisfies Omit<BridgeServerOptions, 'curveSecretKey' | 'log'>;

/** Counters and latency of a server since it started. */
export interface BridgeStats {
  readonly requests: number;
  readonly replies: Readonly<Record<Reply['type'], number>>;
  readonly errors: Readonly<Record<ErrorCode, number>>;
  readonly clients: number;
  /** Infer requests: received → reply handed to the socket, ms. */
  readonly round_trip_ms: LatencySummary;
  /** Infer requests: time waiting in the queue, ms. */
  readonly queue_ms: LatencySummary;
}

interface ClientState {
  readonly id: string;
  name: string | undefined;
  lastSeen: number;
  /** Infer requests of this client queued or running. */
  pending: number;
}

interface Job {
  readonly client: ClientState;
  readonly route: readonly Buffer[];
  readonly request: InferRequest;
  readonly receivedAt: number;
}

const EMPTY = Buffer.alloc(0);

let version: string | undefined;
function serverVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(
        readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
      ) as { version?: unknown };
      version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
  return value;
}

/**
 * Serve a pipeline over ZeroMQ (protocol v1, docs/bridge.md).
 *
 * @example
 * const server = await BridgeServer.start(pipeline, { bind: 'tcp://127.0.0.1:5555' });
 * process.once('SIGINT', () => void server.close());
 */
export class BridgeServer {
  readonly options: Readonly<Required<Omit<BridgeServerOptions, 'curveSecretKey' | 'log'>>>;
  readonly #pipeline: BridgePipeline;
  readonly #socket: Router;
  readonly #queue: RequestQueue<Job>;
  readonly #limits: RequestLimits;
  readonly #clients = new Map<string, ClientState>();
  readonly #log: (line: string) => void;
  readonly #roundTrip = new LatencyHistogram();
  readonly #queueWait = new LatencyHistogram();
  readonly #replies: Record<Reply['type'], number> = {
    welcome: 0,
    pong: 0,
    actions: 0,
    reset_ok: 0,
    error: 0,
  };
  readonly #errors: Record<ErrorCode, number> = {
    invalid: 0,
    busy: 0,
    stale: 0,
    incompatible: 0,
    internal: 0,
  };
  #requests = 0;
  #sending: Promise<void> = Promise.resolve();
  #receiver: Promise<void> = Promise.resolve();
  #worker: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #endpoint = '';

  private constructor(
    pipeline: BridgePipeline,
    options: BridgeServer['options'],
    socket: Router,
    log: (line: string) => void,
  ) {
    this.#pipeline = pipeline;
    this.options = options;
    this.#socket = socket;
    this.#log = log;
    this.#queue = new RequestQueue(options.maxQueue);
    this.#limits = {
      maxMessageBytes: options.maxMessageBytes,
      maxImageWidth: options.maxImageWidth,
      maxImageHeight: options.maxImageHeight,
      maxImageBytes: options.maxImageBytes,
      maxInstructionLength: options.maxInstructionLength,
      maxImages: 16,
      maxStateValues: 4096,
    };
  }

  /**
   * Check the options, bind and start serving.
   *
   * @throws {ConfigError} for a non-loopback bind without a CURVE key or a malformed key.
   */
  static async start(
    pipeline: BridgePipeline,
    options: Partial<BridgeServerOptions> = {},
  ): Promise<BridgeServer> {
    const { curveSecretKey, log, ...rest } = options;
    const o = { ...BRIDGE_DEFAULTS, ...rest };
    for (const key of [
      'maxQueue',
      'maxMessageBytes',
      'maxImageWidth',
      'maxImageHeight',
      'maxImageBytes',
      'maxInstructionLength',
      'maxClients',
    ] as const) {
      positiveInteger(key, o[key]);
    }
    checkBind(o.bind, curveSecretKey);
    const socket = new Router({
      maxMessageSize: o.maxMessageBytes,
      linger: o.lingerMs,
      receiveHighWaterMark: 1000,
      sendHighWaterMark: 1000,
      ...(curveSecretKey === undefined ? {} : { curveServer: true, curveSecretKey }),
    });
    try {
      await socket.bind(o.bind);
    } catch (error) {
      socket.close();
      throw error;
    }
    const server = new BridgeServer(pipeline, o, socket, log ?? (() => undefined));
    server.#endpoint = socket.lastEndpoint ?? o.bind;
    server.#receiver = server.#receive();
    server.#worker = server.#work();
    return server;
  }

  /** The bound endpoint, with the port the system chose for `:*`. */
  get endpoint(): string {
    return this.#endpoint;
  }

  /** Infer requests waiting for the worker. */
  get queued(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  stats(): BridgeStats {
    return {
      requests: this.#requests,
      replies: { ...this.#replies },
      errors: { ...this.#errors },
      clients: this.#clients.size,
      round_trip_ms: this.#roundTrip.summary(),
      queue_ms: this.#queueWait.summary(),
    };
  }

  /** Zero the counters and histograms of {@link stats} (e.g. after a warm-up). */
  resetStats(): void {
    this.#requests = 0;
    for (const k of Object.keys(this.#replies)) this.#replies[k as Reply['type']] = 0;
    for (const k of Object.keys(this.#errors)) this.#errors[k as ErrorCode] = 0;
    this.#roundTrip.reset();
    this.#queueWait.reset();
  }

  /** The metadata a `hello` returns (without the per-client fields). */
  metadata(): Omit<WelcomeReply, 'v' | 'type' | 'id' | 'client_id'> {
    const m = this.#pipeline.model.manifest;
    const o = this.options;
    return {
      protocol: PROTOCOL_VERSION,
      supported_versions: SUPPORTED_VERSIONS,
      server: 'vla-node',
      server_version: serverVersion(),
      model: {
        name: m.name,
        image: { width: m.image.width, height: m.image.height, resize: m.image.resize },
        cameras: 1,
        action_dim: m.chunk.action_dim,
        chunk_length: m.chunk.horizon,
        control_rate_hz: m.control_rate_hz,
        action_names: m.action.names,
        state_names: m.state.names,
        visual_tokens: this.#pipeline.totalTokens,
        keep_count: this.#pipeline.tokenBudget,
      },
      limits: {
        max_message_bytes: o.maxMessageBytes,
        max_image_width: o.maxImageWidth,
        max_image_height: o.maxImageHeight,
        max_image_bytes: o.maxImageBytes,
        max_queue: o.maxQueue,
        max_request_age_ms: o.maxRequestAgeMs,
        max_instruction_length: o.maxInstructionLength,
      },
      encodings: [...SUPPORTED_ENCODINGS, ...COMPRESSED_ENCODINGS],
    };
  }

  /**
   * Stop: answer queued requests with `internal` ("server shutting down"), let the running
   * inference finish and answer it, answer anything arriving meanwhile with `internal`, then close
   * the socket (replies still queued get `lingerMs` to leave). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    for (const job of this.#queue.drain()) {
      job.client.pending--;
      this.#error(job.route, job.request.id, 'internal', 'server shutting down');
    }
    this.#queue.close();
    await this.#worker;
    await this.#sending;
    this.#socket.close();
    await this.#receiver;
    this.#log(`bridge on ${this.#endpoint} closed`);
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        try {
          this.#handle(frames);
        } catch (error) {
          // A bug, not the request's fault: keep serving the others.
          this.#log(`bridge: could not handle a message: ${String(error)}`);
        }
      }
    } catch (error) {
      if (!this.#socket.closed) this.#log(`bridge receive loop failed: ${String(error)}`);
    }
  }

  async #work(): Promise<void> {
    for (;;) {
      const batch = await this.#queue.take(1);
      if (batch.length === 0) return;
      for (const job of batch) await this.#run(job);
    }
  }

  #handle(frames: Buffer[]): void {
    const receivedAt = performance.now();
    const [identity, ...rest] = frames;
    if (identity === undefined) return;
    this.#requests++;
    const client = this.#client(identity);
    const delimited = rest.length >= 1 && rest[0]?.length === 0;
    const route = delimited ? [identity, EMPTY] : [identity];
    const payload =
      rest.length === 1 ? rest[0] : rest.length === 2 && delimited ? rest[1] : undefined;
    if (payload === undefined) {
      this.#error(
        route,
        undefined,
        'invalid',
        `Expected one message frame (DEALER) or an empty delimiter frame and one message frame (REQ) but received ${rest.length} frames`,
        'message',
      );
      return;
    }
    const parsed = parseRequest(payload, this.#limits);
    if (parsed.error !== undefined) {
      this.#error(
        route,
        parsed.id,
        parsed.error.code as ErrorCode,
        parsed.error.message,
        parsed.error.field,
      );
      return;
    }
    const request = parsed.request;
    const id = request.id;
    if (this.#closing !== undefined) {
      this.#error(route, id, 'internal', 'server shutting down');
      return;
    }
    const base = { v: PROTOCOL_VERSION, ...(id === undefined ? {} : { id }) } as const;
    switch (request.type) {
      case 'hello':
        client.name = request.client;
        this.#log(
          `bridge: hello from ${client.id}${client.name === undefined ? '' : ` (${client.name})`}`,
        );
        this.#send(route, { ...base, type: 'welcome', client_id: client.id, ...this.metadata() });
        return;
      case 'ping':
        this.#send(route, {
          ...base,
          type: 'pong',
          server_time: Date.now(),
          queued: this.#queue.length,
        });
        return;
      case 'reset':
        this.#pipeline.pruner.reset(client.id);
        this.#send(route, { ...base, type: 'reset_ok' });
        return;
      case 'infer':
        this.#admit({ client, route, request, receivedAt });
        return;
    }
  }

  /** Check an infer request against the model, then queue it or answer `busy`. */
  #admit(job: Job): void {
    const { request, route } = job;
    const m = this.#pipeline.model.manifest;
    const stateLength = Array.isArray(request.state)
      ? request.state.length
      : stateValues(request.state).length;
    let problem: [string, string] | undefined;
    if (request.images.length !== 1) {
      problem = [
        'images',
        `Expected 1 image (model ${m.name} takes one camera) but received ${request.images.length}`,
      ];
    } else if (stateLength !== m.state.names.length) {
      problem = [
        'state',
        `Expected ${m.state.names.length} state values (${m.state.names.join(', ')}) but received ${stateLength}`,
      ];
    } else if (
      request.keep_count !== undefined &&
      request.keep_count > this.#pipeline.totalTokens
    ) {
      problem = [
        'keep_count',
        `Expected keep_count in [1, ${this.#pipeline.totalTokens}] (the model has ${this.#pipeline.totalTokens} visual tokens) but received ${request.keep_count}`,
      ];
    }
    if (problem !== undefined) {
      this.#error(route, request.id, 'invalid', problem[1], problem[0]);
      return;
    }
    if (this.#isStale(job)) return;
    if (!this.#queue.offer(job)) {
      this.#error(
        route,
        request.id,
        'busy',
        `Expected room in the request queue but all ${this.#queue.capacity} places are taken; retry later`,
      );
      return;
    }
    job.client.pending++;
  }

  /** Answer `stale` and return true when the request is older than `maxRequestAgeMs`. */
  #isStale(job: Job): boolean {
    const max = this.options.maxRequestAgeMs;
    if (max <= 0) return false;
    const age = Date.now() - job.request.stamp;
    if (age <= max) return false;
    this.#error(
      job.route,
      job.request.id,
      'stale',
      `Expected a request at most ${max} ms old but its stamp ${job.request.stamp} is ${Math.round(age)} ms old`,
      'stamp',
    );
    return true;
  }

  async #run(job: Job): Promise<void> {
    const { client, request, route } = job;
    const started = performance.now();
    try {
      if (this.#isStale(job)) return;
      let chunk: ActionChunk;
      try {
        const image = request.images[0];
        if (image === undefined) throw new InputError('Expected 1 image', { field: 'images' });
        chunk = await this.#pipeline.infer({
          frame: imageToFrame(image),
          instruction: request.instruction,
          state: stateValues(request.state),
          stamp: request.stamp,
          stream: client.id,
          ...(request.keep_count === undefined ? {} : { keepCount: request.keep_count }),
        });
      } catch (error) {
        if (error instanceof InputError) {
          this.#error(route, request.id, 'invalid', error.message, error.field);
        } else {
          const message = error instanceof VlaError ? error.message : String(error);
          this.#log(`bridge: inference failed for client ${client.id}: ${message}`);
          this.#error(route, request.id, 'internal', `inference failed: ${message}`);
        }
        return;
      }
      const queueMs = started - job.receivedAt;
      const totalMs = performance.now() - job.receivedAt;
      this.#queueWait.record(queueMs);
      this.#roundTrip.record(totalMs);
      this.#send(route, {
        v: PROTOCOL_VERSION,
        ...(request.id === undefined ? {} : { id: request.id }),
        type: 'actions',
        actions: float32Array(chunk.actions, [chunk.horizon, chunk.actionDim]),
        chunk: {
          sequence: chunk.sequence,
          dt: chunk.dt,
          source_stamp: request.stamp,
          latency_ms: chunk.latencyMs,
          horizon: chunk.horizon,
          action_dim: chunk.actionDim,
          tokens_total: chunk.tokens.total,
          tokens_kept: chunk.tokens.kept,
          clamped: chunk.clamped,
        },
        server_timing: serverTiming(chunk.stages, chunk.latencyMs, queueMs, totalMs),
      });
    } finally {
      client.pending--;
    }
  }

  #client(identity: Buffer): ClientState {
    const id = identity.toString('hex');
    let state = this.#clients.get(id);
    if (state === undefined) {
      state = { id, name: undefined, lastSeen: 0, pending: 0 };
      this.#clients.set(id, state);
      if (this.#clients.size > this.options.maxClients) this.#evict();
    } else {
      // Map order is insertion order: move to the end, so the first entries are the least recent.
      this.#clients.delete(id);
      this.#clients.set(id, state);
    }
    state.lastSeen = Date.now();
    return state;
  }

  /** Forget the least recently seen client with nothing queued, and its pruning state. */
  #evict(): void {
    for (const [id, state] of this.#clients) {
      if (state.pending === 0) {
        this.#clients.delete(id);
        this.#pipeline.pruner.reset(id);
        return;
      }
    }
  }

  #error(
    route: readonly Buffer[],
    id: RequestId | undefined,
    code: ErrorCode,
    message: string,
    field?: string,
  ): void {
    this.#errors[code]++;
    this.#send(route, {
      v: PROTOCOL_VERSION,
      ...(id === undefined ? {} : { id }),
      type: 'error',
      code,
      message,
      ...(field === undefined ? {} : { field }),
    });
  }

  #send(route: readonly Buffer[], reply: Reply): void {
    this.#replies[reply.type]++;
    const frames = [...route, encodeMessage(reply)];
    // One send at a time on a socket; a ROUTER never blocks (unroutable replies are dropped).
    this.#sending = this.#sending
      .then(() => this.#socket.send(frames))
      .catch((error: unknown) => {
        if (!this.#socket.closed) this.#log(`bridge: send failed: ${String(error)}`);
      });
  }
}
