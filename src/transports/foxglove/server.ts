/**
 * A Foxglove WebSocket server (protocol foxglove.websocket.v1, `@foxglove/ws-protocol` over the
 * `ws` package) that publishes JSON-encoded channels to any number of viewers.
 *
 * Two rules keep the robot first. A channel nobody subscribes to costs one set lookup: the message
 * is never built or serialised. A viewer that reads slower than messages come has its messages
 * dropped, not queued: each client's socket is gated on its `bufferedAmount` (bytes the kernel has
 * not taken yet), and messages above {@link LiveServerOptions.maxClientBufferBytes} are skipped and
 * counted.
 */

import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import wsProtocol, { type Channel, type ChannelId, type IWebSocket } from '@foxglove/ws-protocol';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConfigError, describe } from '../../errors.js';

const { FoxgloveServer, StatusLevel } = wsProtocol;
type FoxgloveServerInstance = InstanceType<typeof FoxgloveServer>;

/** The opcode of a server → client message-data frame (protocol spec, binary messages). */
const MESSAGE_DATA_OPCODE = 1;

export interface LiveServerOptions {
  /** Address to listen on; loopback by default (the protocol has no authentication). */
  readonly host: string;
  /** TCP port; 0 picks a free one (see {@link LiveServer.port}). */
  readonly port: number;
  /** A client whose socket holds more unsent bytes than this gets no messages until it drains. */
  readonly maxClientBufferBytes: number;
  /** Viewers connected at once at most; more are closed with code 1013 (try again later). */
  readonly maxClients: number;
  /** Largest message a client may send (they send only small JSON requests). */
  readonly maxClientMessageBytes: number;
  /** Name shown in the viewer's connection panel. */
  readonly name: string;
  readonly log?: (line: string) => void;
}

export const LIVE_SERVER_DEFAULTS = {
  maxClients: 8,
  maxClientMessageBytes: 65536,
  name: 'vla-node',
} as const;

/** What the server did, for reports and benchmarks. */
export interface LiveServerStats {
  readonly clients: number;
  /** Messages written to a client socket. */
  readonly sent: number;
  /** Messages skipped because a client's socket was over its buffer limit. */
  readonly dropped: number;
  /** Messages serialised (at most one per publish, whatever the number of subscribers). */
  readonly encoded: number;
  /** Messages not built at all because every viewer was over its buffer limit. */
  readonly unbuilt: number;
  /** Client messages answered with an error status. */
  readonly client_errors: number;
}

/**
 * The `IWebSocket` the protocol library writes to for one client: message data passes only while
 * the client's unsent bytes stay under the limit; control messages (JSON) always pass.
 */
class GatedSocket implements IWebSocket {
  readonly #ws: WebSocket;
  readonly #server: LiveServer;

  constructor(ws: WebSocket, server: LiveServer) {
    this.#ws = ws;
    this.#server = server;
  }

  get binaryType(): string {
    return this.#ws.binaryType;
  }
  set binaryType(value: string) {
    this.#ws.binaryType = value as WebSocket['binaryType'];
  }
  get protocol(): string {
    return this.#ws.protocol;
  }
  get onerror(): IWebSocket['onerror'] {
    return this.#ws.onerror;
  }
  set onerror(fn: IWebSocket['onerror']) {
    this.#ws.onerror = fn ?? null;
  }
  get onopen(): IWebSocket['onopen'] {
    return this.#ws.onopen;
  }
  set onopen(fn: IWebSocket['onopen']) {
    this.#ws.onopen = fn ?? null;
  }
  get onclose(): IWebSocket['onclose'] {
    return this.#ws.onclose;
  }
  set onclose(fn: IWebSocket['onclose']) {
    this.#ws.onclose = fn ?? null;
  }
  get onmessage(): IWebSocket['onmessage'] {
    return this.#ws.onmessage;
  }
  /** The library's handler runs with this socket marked current, so its errors reach this client. */
  set onmessage(fn: IWebSocket['onmessage']) {
    if (fn === null || fn === undefined) {
      this.#ws.onmessage = null;
      return;
    }
    this.#ws.onmessage = (event) => {
      this.#server.handleClientMessage(this, () => {
        fn(event);
      });
    };
  }

  close(): void {
    this.#ws.close();
  }

  /**
   * Declared with one parameter on purpose: the library then sends each message as one buffer
   * (header and payload copied together, one socket write) instead of two WebSocket fragments
   * (two writes), which is cheaper for the small messages that are most of the traffic, and lets
   * the gate decide on whole messages.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof data !== 'string' && isMessageData(data)) {
      if (this.#ws.bufferedAmount > this.#server.options.maxClientBufferBytes) {
        this.#server.countDrop();
        return;
      }
      this.#server.countSent();
    }
    this.#ws.send(data);
  }
}

function isMessageData(data: ArrayBuffer | ArrayBufferView): boolean {
  const bytes =
    data instanceof ArrayBuffer
      ? new Uint8Array(data, 0, Math.min(1, data.byteLength))
      : new Uint8Array(data.buffer, data.byteOffset, Math.min(1, data.byteLength));
  return bytes[0] === MESSAGE_DATA_OPCODE;
}

/** Wall-clock time in nanoseconds, the protocol's message timestamp. */
export function wallClockNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/**
 * The live-view server.
 *
 * @example
 * const server = await LiveServer.start({ host: '127.0.0.1', port: 8765, maxClientBufferBytes: 1 << 20 });
 * const id = server.addChannel('/vla/instruction', 'vla.Instruction', { type: 'object' });
 * server.publish(id, wallClockNs(), () => ({ text: 'move to the red block' }));
 */
export class LiveServer {
  readonly options: Required<Omit<LiveServerOptions, 'log'>>;
  readonly #wss: WebSocketServer;
  readonly #protocol: FoxgloveServerInstance;
  readonly #log: (line: string) => void;
  readonly #subscribed = new Set<ChannelId>();
  readonly #sockets = new Set<WebSocket>();
  #current: GatedSocket | undefined;
  #clientSeq = 0;
  #closed: Promise<void> | undefined;
  #stats = { sent: 0, dropped: 0, encoded: 0, unbuilt: 0, client_errors: 0 };

  private constructor(
    wss: WebSocketServer,
    protocol: FoxgloveServerInstance,
    options: LiveServer['options'],
    log: (line: string) => void,
  ) {
    this.#wss = wss;
    this.#protocol = protocol;
    this.options = options;
    this.#log = log;
    protocol.on('subscribe', (id) => this.#subscribed.add(id));
    protocol.on('unsubscribe', (id) => this.#subscribed.delete(id));
    protocol.on('error', (error) => {
      this.#clientError(error);
    });
    wss.on('connection', (ws, request) => {
      this.#accept(ws, `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? 0}`);
    });
  }

  /**
   * Listen on `options.host`:`options.port`.
   *
   * @throws {ConfigError} (field `foxglove.port` or `foxglove.host`) when the address cannot be
   * bound: port in use, host not local.
   */
  static async start(
    options: Partial<LiveServerOptions> &
      Pick<LiveServerOptions, 'host' | 'port' | 'maxClientBufferBytes'>,
  ): Promise<LiveServer> {
    const o = { ...LIVE_SERVER_DEFAULTS, ...options };
    const { log, ...settings } = o;
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new ConfigError(
        `Expected foxglove.port in [0, 65535] but received ${describe(o.port)}`,
        {
          field: 'foxglove.port',
        },
      );
    }
    const protocol = new FoxgloveServer({ name: o.name, capabilities: [] });
    const wss = new WebSocketServer({
      host: o.host,
      port: o.port,
      maxPayload: o.maxClientMessageBytes,
      handleProtocols: (protocols) => protocol.handleProtocols(protocols),
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        wss.off('listening', onListening);
        const inUse = error.code === 'EADDRINUSE';
        reject(
          new ConfigError(
            inUse
              ? `Expected a free port for the Foxglove live view but received ${o.port}, which is in use (pick another with --foxglove PORT)`
              : `Expected an address of this machine for foxglove.host but received ${describe(o.host)} (${error.message})`,
            { field: inUse ? 'foxglove.port' : 'foxglove.host', cause: error },
          ),
        );
      };
      const onListening = (): void => {
        wss.off('error', onError);
        resolve();
      };
      wss.once('error', onError);
      wss.once('listening', onListening);
    });
    return new LiveServer(wss, protocol, settings, log ?? (() => undefined));
  }

  /** The port listened on. */
  get port(): number {
    return (this.#wss.address() as AddressInfo).port;
  }

  /** The address a viewer connects to. */
  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `ws://${host}:${this.port}`;
  }

  /** Advertise a JSON channel; returns its id. */
  addChannel(topic: string, schemaName: string, schema: object): ChannelId {
    const channel: Omit<Channel, 'id'> = {
      topic,
      encoding: 'json',
      schemaName,
      schema: JSON.stringify(schema),
      schemaEncoding: 'jsonschema',
    };
    return this.#protocol.addChannel(channel);
  }

  /** Whether any client subscribes to the channel now. */
  subscribed(channel: ChannelId): boolean {
    return this.#subscribed.has(channel);
  }

  /**
   * Send a message to the channel's subscribers: `build` runs (and the result is serialised) only
   * when the channel has one and some viewer can take a message now (when every viewer is over its
   * buffer limit the gate would drop it anyway). Returns whether it was built.
   */
  publish(channel: ChannelId, stampNs: bigint, build: () => object): boolean {
    if (!this.#subscribed.has(channel)) return false;
    if (!this.#anyViewerReady()) {
      this.#stats.unbuilt++;
      return false;
    }
    const payload = Buffer.from(JSON.stringify(build()));
    this.#stats.encoded++;
    this.#protocol.sendMessage(channel, stampNs, payload);
    return true;
  }

  stats(): LiveServerStats {
    return { clients: this.#sockets.size, ...this.#stats };
  }

  /** Close every client connection and stop listening. Safe to call more than once. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      for (const ws of this.#sockets) ws.terminate();
      this.#wss.close(() => {
        resolve();
      });
    });
    return this.#closed;
  }

  /** @internal Run the library's handler for a message of `socket`; errors it reports go back to that client. */
  handleClientMessage(socket: GatedSocket, handle: () => void): void {
    this.#current = socket;
    try {
      handle();
    } finally {
      this.#current = undefined;
    }
  }

  /** @internal */
  countDrop(): void {
    this.#stats.dropped++;
  }

  /** @internal */
  countSent(): void {
    this.#stats.sent++;
  }

  #anyViewerReady(): boolean {
    const limit = this.options.maxClientBufferBytes;
    for (const ws of this.#sockets) if (ws.bufferedAmount <= limit) return true;
    return false;
  }

  #accept(ws: WebSocket, peer: string): void {
    if (ws.protocol !== FoxgloveServer.SUPPORTED_SUBPROTOCOL) {
      this.#log(
        `foxglove: refused ${peer}: no ${FoxgloveServer.SUPPORTED_SUBPROTOCOL} subprotocol`,
      );
      ws.close(1002, `subprotocol ${FoxgloveServer.SUPPORTED_SUBPROTOCOL} required`);
      return;
    }
    if (this.#sockets.size >= this.options.maxClients) {
      this.#log(`foxglove: refused ${peer}: ${this.options.maxClients} viewers already connected`);
      ws.close(1013, 'too many viewers');
      return;
    }
    this.#sockets.add(ws);
    ws.on('close', () => {
      this.#sockets.delete(ws);
      this.#log(`foxglove: viewer ${peer} disconnected`);
    });
    // A socket error (reset by the peer) ends that connection only.
    ws.on('error', (error) => {
      this.#log(`foxglove: viewer ${peer}: ${error.message}`);
    });
    const name = `${peer}#${++this.#clientSeq}`;
    this.#protocol.handleConnection(new GatedSocket(ws, this), name);
    this.#log(`foxglove: viewer ${peer} connected`);
  }

  #clientError(error: Error): void {
    this.#stats.client_errors++;
    const socket = this.#current;
    const text = `Expected a foxglove.websocket.v1 client message but received one that failed: ${error.message}`;
    if (socket === undefined) {
      this.#log(`foxglove: ${text}`);
      return;
    }
    this.#protocol.sendStatus({ level: StatusLevel.ERROR, message: text }, socket);
  }
}
