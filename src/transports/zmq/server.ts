/**
 * The ZeroMQ bridge server: a ROUTER socket speaking protocol v1 in front of one pipeline.
 * Requests are parsed and checked on arrival; `infer` requests wait in a bounded queue for the one
 * inference worker (the pipeline is not re-entrant), every other request is answered at once. With
 * `maxBatch` > 1 and a pipeline that takes batches, the worker runs up to `maxBatch` queued
 * requests (of any clients) in one batch, and their images are decoded as soon as they arrive,
 * while the previous batch runs. A pipeline that batches continuously (`continuous`) is instead
 * handed each request as soon as it is dequeued, up to `maxBatch` in flight, so that a request
 * joins the batch already decoding inside it.
 */

import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Context, Router } from 'zeromq';
import { ConfigError, InputError, VlaError } from '../../errors.js';
import type { ActionChunk } from '../../pipeline/pipeline.js';
import { printable } from '../../util/printable.js';
import { SerialQueue } from '../../runtime/serial-queue.js';
import { runBatch, type BatchOutcome } from './batch.js';
import { ClientTable } from './clients.js';
import { bindError, checkBind } from './endpoint.js';
import type { ErrorCode } from './errors.js';
import { requestField } from './image.js';
import { actionsReply, errorReply } from './replies.js';
import {
  admissionProblem,
  DecodeAhead,
  isReady,
  observationOf,
  staleMessage,
  type Job,
} from './jobs.js';
import { bridgeMetadata, type BridgeMetadata } from './metadata.js';
import {
  encodeMessage,
  parseRequest,
  PROTOCOL_VERSION,
  type Reply,
  type RequestId,
  type RequestLimits,
} from './protocol.js';
import { RequestQueue } from './queue.js';
import {
  BRIDGE_DEFAULTS,
  bridgeParameterDefaults,
  checkServerOptions,
  type BridgeServerOptions,
  type OptionalOption,
} from './server-options.js';
import { BridgeStatsBook, type BridgeStats } from './stats.js';
import type { BridgePipeline } from './served-pipeline.js';
import { ZapHandler } from './zap.js';

export {
  BRIDGE_DEFAULTS,
  bridgeParameterDefaults,
  type BridgeServerOptions,
} from './server-options.js';
export type { BridgePipeline } from './served-pipeline.js';
export type { BridgeStats } from './stats.js';

const EMPTY = Buffer.alloc(0);

/**
 * Serve a pipeline over ZeroMQ (protocol v1, docs/bridge.md).
 *
 * @example
 * const server = await BridgeServer.start(pipeline, { bind: 'tcp://127.0.0.1:5555' });
 * process.once('SIGINT', () => void server.close());
 */
export class BridgeServer {
  readonly options: Readonly<Required<Omit<BridgeServerOptions, OptionalOption>>>;
  /** Requests the worker runs in one batch at most: `options.maxBatch` capped by the pipeline's. */
  readonly maxBatch: number;
  readonly #pipeline: BridgePipeline;
  readonly #socket: Router;
  readonly #zap: ZapHandler | undefined;
  /** Decodes queued requests ahead of their batch (batching worker only). */
  readonly #decoder: DecodeAhead;
  /** Images decoded at once at most: `options.decodeConcurrency`, or one less than the cores. */
  readonly decodeConcurrency: number;
  readonly #queue: RequestQueue<Job>;
  readonly #limits: RequestLimits;
  readonly #clients: ClientTable;
  readonly #log: (line: string) => void;
  readonly #stats = new BridgeStatsBook();
  /** Replies one at a time on the socket, in the order they were made. */
  readonly #sends = new SerialQueue();
  #receiver: Promise<void> = Promise.resolve();
  #worker: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #endpoint = '';

  private constructor(
    pipeline: BridgePipeline,
    options: BridgeServer['options'],
    socket: Router,
    zap: ZapHandler | undefined,
    log: (line: string) => void,
  ) {
    this.#pipeline = pipeline;
    this.options = options;
    this.#socket = socket;
    this.#zap = zap;
    this.#log = log;
    this.maxBatch =
      pipeline.continuous !== true &&
      (pipeline.inferBatch === undefined || pipeline.prepare === undefined)
        ? 1
        : Math.min(options.maxBatch, pipeline.maxBatch ?? 1);
    this.decodeConcurrency =
      options.decodeConcurrency > 0
        ? options.decodeConcurrency
        : Math.max(1, availableParallelism() - 1);
    this.#queue = new RequestQueue(options.maxQueue);
    this.#decoder = new DecodeAhead(this.decodeConcurrency, pipeline, () => {
      this.#queue.notify();
    });
    this.#clients = new ClientTable(options.maxClients, (id) => {
      pipeline.pruner.reset(id);
    });
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
   * @throws {ConfigError} for a non-loopback bind without a CURVE key, a malformed key, or a client
   * allow-list without a CURVE key.
   */
  static async start(
    pipeline: BridgePipeline,
    options: Partial<BridgeServerOptions> = {},
  ): Promise<BridgeServer> {
    const { curveSecretKey, curveClientKeys, log: logOption, ...rest } = options;
    const log = logOption ?? (() => undefined);
    const o = { ...BRIDGE_DEFAULTS, ...bridgeParameterDefaults(), ...rest };
    checkServerOptions(o);
    checkBind(o.bind, curveSecretKey);
    if (curveClientKeys !== undefined && curveSecretKey === undefined) {
      throw new ConfigError(
        'Expected a CURVE secret key (--curve-secret-key or --curve-secret-key-file) with a client allow-list but received none: client keys are only checked in CURVE handshakes',
        { field: 'serve.curve_client_keys_file' },
      );
    }
    // The allow-list is a ZAP handler at a fixed inproc address, one per context: give the
    // server its own context so that other sockets of the process are not subject to it.
    const context = curveClientKeys === undefined ? undefined : new Context();
    const zap =
      context === undefined || curveClientKeys === undefined
        ? undefined
        : await ZapHandler.start(context, curveClientKeys, log);
    const socket = new Router({
      maxMessageSize: o.maxMessageBytes,
      linger: o.lingerMs,
      receiveHighWaterMark: 1000,
      sendHighWaterMark: 1000,
      ...(context === undefined ? {} : { context }),
      ...(curveSecretKey === undefined ? {} : { curveServer: true, curveSecretKey }),
    });
    try {
      await socket.bind(o.bind);
    } catch (error) {
      socket.close();
      await zap?.close();
      throw bindError(o.bind, error);
    }
    const server = new BridgeServer(pipeline, o, socket, zap, log);
    server.#endpoint = socket.lastEndpoint ?? o.bind;
    if (o.maxBatch > 1 && server.maxBatch === 1) {
      log(
        `bridge: max_batch ${o.maxBatch} asked for, but ${pipeline.model.manifest.name} takes one observation per run (${pipeline.inferBatch === undefined || pipeline.prepare === undefined ? 'its pipeline runs no batches' : 'its manifest declares no batch dimension'}): serving one request at a time`,
      );
    }
    server.#receiver = server.#receive();
    server.#worker = server.continuous
      ? server.#workContinuous()
      : server.maxBatch > 1
        ? server.#workBatches()
        : server.#work();
    return server;
  }

  /** The bound endpoint, with the port the system chose for `:*`. */
  get endpoint(): string {
    return this.#endpoint;
  }

  /** Whether requests join a batch already running (a continuously batching pipeline). */
  get continuous(): boolean {
    return this.#pipeline.continuous === true && this.maxBatch > 1;
  }

  /** Infer requests waiting for the worker. */
  get queued(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Replace the CURVE client allow-list of a server started with one (`curveClientKeys`). New
   * connections are checked against the new list; connected clients stay until they reconnect.
   *
   * @throws {ConfigError} for a server without an allow-list, a malformed key or an empty list
   *   (the current list stays).
   */
  replaceClientKeys(clientKeys: readonly string[]): void {
    if (this.#zap === undefined) {
      throw new ConfigError(
        'Expected a server started with a CURVE client allow-list (curveClientKeys) but this one has none',
        { field: 'serve.curve_client_keys_file' },
      );
    }
    this.#zap.replaceKeys(clientKeys);
  }

  stats(): BridgeStats {
    return this.#stats.snapshot(this.#clients.size, this.#zap?.stats());
  }

  /** Zero the counters and histograms of {@link stats} (e.g. after a warm-up). */
  resetStats(): void {
    this.#stats.reset();
  }

  /** The metadata a `hello` returns (without the per-client fields). */
  metadata(): BridgeMetadata {
    return bridgeMetadata(this.#pipeline, this.options);
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
    this.#decoder.clear();
    for (const job of this.#queue.drain()) {
      job.client.pending--;
      this.#error(job.route, job.request.id, 'internal', 'server shutting down');
    }
    this.#queue.close();
    await this.#worker;
    await this.#sends.idle();
    this.#socket.close();
    await this.#receiver;
    await this.#zap?.close();
    this.#log(`bridge on ${this.#endpoint} closed`);
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        try {
          this.#handle(frames);
        } catch (error) {
          // A bug, not the request's fault: keep serving the others.
          this.#log(`bridge: could not handle a message: ${printable(String(error))}`);
        }
      }
    } catch (error) {
      if (!this.#socket.closed)
        this.#log(`bridge receive loop failed: ${printable(String(error))}`);
    }
  }

  async #work(): Promise<void> {
    for (;;) {
      const batch = await this.#queue.take(1);
      if (batch.length === 0) return;
      for (const job of batch) await this.#run(job);
    }
  }

  /** The batching worker: up to `maxBatch` requests per run, waiting up to `maxWaitMs` to fill. */
  async #workBatches(): Promise<void> {
    for (;;) {
      const batch = await this.#queue.take(this.maxBatch, this.options.maxWaitMs, isReady);
      if (batch.length === 0) return;
      await this.#runBatch(batch);
    }
  }

  /**
   * The continuous worker: each request goes to the pipeline as soon as it is dequeued, with up to
   * `maxBatch` in flight (the pipeline batches them, a new one joining those decoding); the queue
   * holds the rest, so `busy` and `stale` work as with the other workers.
   */
  async #workContinuous(): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      while (inFlight.size >= this.maxBatch) await Promise.race(inFlight);
      const [job] = await this.#queue.take(1);
      if (job === undefined) break;
      const run = this.#run(job).finally(() => inFlight.delete(run));
      inFlight.add(run);
    }
    await Promise.all(inFlight);
  }

  #handle(frames: Buffer[]): void {
    const receivedAt = performance.now();
    const [identity, ...rest] = frames;
    if (identity === undefined) return;
    this.#stats.request();
    const client = this.#clients.touch(identity);
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
          `bridge: hello from ${client.id}${client.name === undefined ? '' : ` (${printable(client.name, 64)})`}`,
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
    const problem = admissionProblem(
      request,
      this.#pipeline.model.manifest,
      this.#pipeline.totalTokens,
      this.#pipeline.cameras,
    );
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
    if (this.maxBatch > 1 && !this.continuous) this.#decoder.add(job);
  }

  /** Answer `stale` and return true when the request is older than `maxRequestAgeMs`. */
  #isStale(job: Job): boolean {
    const answer = this.#staleAnswer(job);
    answer?.();
    return answer !== undefined;
  }

  /** The `stale` answer of a request older than `maxRequestAgeMs` (to send), else undefined. */
  #staleAnswer(job: Job): (() => void) | undefined {
    const message = staleMessage(job, this.options.maxRequestAgeMs);
    if (message === undefined) return undefined;
    return () => {
      this.#error(job.route, job.request.id, 'stale', message, 'stamp');
    };
  }

  async #run(job: Job): Promise<void> {
    const started = performance.now();
    try {
      if (this.#isStale(job)) return;
      let chunk: ActionChunk;
      try {
        chunk = await this.#pipeline.infer(observationOf(job));
      } catch (error) {
        this.#failed(job, error);
        return;
      }
      this.#reply(job, chunk, started);
    } finally {
      job.client.pending--;
    }
  }

  /**
   * Run a batch of requests (decoded on arrival) through `inferBatch` and answer each, in arrival
   * order once the batch has run: a request that fails early (stale, undecodable) is answered
   * after the requests before it, as one at a time would.
   */
  async #runBatch(jobs: readonly Job[]): Promise<void> {
    const started = performance.now();
    const stale = jobs.map((job) => this.#staleAnswer(job));
    const live = jobs.filter((_, at) => stale[at] === undefined);
    const outcomes = new Map<Job, BatchOutcome>();
    try {
      if (live.length === 0) return;
      this.#stats.batch(live.length);
      await runBatch(this.#pipeline, live, outcomes);
    } finally {
      jobs.forEach((job, at) => {
        try {
          const outcome = outcomes.get(job);
          const staleAnswer = stale[at];
          if (staleAnswer !== undefined) staleAnswer();
          else if (outcome !== undefined && 'chunk' in outcome) {
            this.#reply(job, outcome.chunk, started);
          } else {
            this.#failed(
              job,
              outcome?.error ?? new Error('the batch returned no result for this request'),
            );
          }
        } catch (error) {
          this.#log(
            `bridge: could not answer request of client ${job.client.id}: ${printable(String(error))}`,
          );
        } finally {
          job.client.pending--;
        }
      });
    }
  }

  /** Answer a request whose inference failed: `invalid` for its own fault, else `internal`. */
  #failed(job: Job, error: unknown): void {
    const { request, route } = job;
    if (error instanceof InputError) {
      this.#error(route, request.id, 'invalid', error.message, requestField(error.field));
    } else {
      const message = error instanceof VlaError ? error.message : String(error);
      this.#log(`bridge: inference failed for client ${job.client.id}: ${printable(message)}`);
      this.#error(route, request.id, 'internal', `inference failed: ${message}`);
    }
  }

  /** Send a request's chunk, recording its queue wait and round trip. */
  #reply(job: Job, chunk: ActionChunk, started: number): void {
    const { request, route } = job;
    const queueMs = started - job.receivedAt;
    const totalMs = performance.now() - job.receivedAt;
    this.#stats.answered(queueMs, totalMs);
    this.#send(route, actionsReply(request, chunk, queueMs, totalMs));
  }

  #error(
    route: readonly Buffer[],
    id: RequestId | undefined,
    code: ErrorCode,
    message: string,
    field?: string,
  ): void {
    this.#stats.error(code);
    this.#send(route, errorReply(id, code, message, field));
  }

  #send(route: readonly Buffer[], reply: Reply): void {
    this.#stats.reply(reply.type);
    const frames = [...route, encodeMessage(reply)];
    // One send at a time on a socket; a ROUTER never blocks (unroutable replies are dropped).
    this.#sends
      .run(() => this.#socket.send(frames))
      .catch((error: unknown) => {
        if (!this.#socket.closed) this.#log(`bridge: send failed: ${printable(String(error))}`);
      });
  }
}
