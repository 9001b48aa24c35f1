/** A test viewer: the protocol's own client (`@foxglove/ws-protocol` FoxgloveClient over `ws`). */

import wsProtocol, {
  type Channel,
  type IWebSocket,
  type MessageData,
  type StatusMessage,
} from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';

const { FoxgloveClient } = wsProtocol;

export interface Received {
  readonly topic: string;
  readonly stampNs: bigint;
  readonly message: Record<string, unknown>;
  readonly bytes: number;
}

/** A connected viewer that records everything it receives. */
export class TestViewer {
  readonly ws: WebSocket;
  readonly client: InstanceType<typeof FoxgloveClient>;
  readonly channels = new Map<number, Channel>();
  readonly statuses: StatusMessage[] = [];
  readonly received: Received[] = [];
  readonly #subscriptions = new Map<number, Channel>();
  readonly #waiters: (() => void)[] = [];

  private constructor(url: string) {
    this.ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
    // ws's WebSocket is what the library's IWebSocket describes (its README pairs them), but its
    // send() overloads take a callback where IWebSocket's takes options.
    this.client = new FoxgloveClient({ ws: this.ws as unknown as IWebSocket });
    this.client.on('advertise', (channels) => {
      for (const c of channels) this.channels.set(c.id, c);
      this.#notify();
    });
    this.client.on('status', (s) => {
      this.statuses.push(s);
      this.#notify();
    });
    this.client.on('message', (m: MessageData) => {
      const channel = this.#subscriptions.get(m.subscriptionId);
      if (channel === undefined) return;
      const text = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString();
      this.received.push({
        topic: channel.topic,
        stampNs: m.timestamp,
        message: JSON.parse(text) as Record<string, unknown>,
        bytes: m.data.byteLength,
      });
      this.#notify();
    });
  }

  /** Connect and wait for the server's channel advertisement. */
  static async connect(url: string, channels = 1): Promise<TestViewer> {
    const viewer = new TestViewer(url);
    await viewer.until(() => viewer.channels.size >= channels);
    return viewer;
  }

  channel(topic: string): Channel {
    const c = [...this.channels.values()].find((x) => x.topic === topic);
    if (c === undefined) throw new Error(`no channel ${topic}`);
    return c;
  }

  subscribe(...topics: string[]): void {
    for (const topic of topics) {
      const channel = this.channel(topic);
      this.#subscriptions.set(this.client.subscribe(channel.id), channel);
    }
  }

  on(topic: string): Record<string, unknown>[] {
    return this.received.filter((r) => r.topic === topic).map((r) => r.message);
  }

  /** Resolve once `done()` holds (checked on every event), or fail after `ms`. */
  until(done: () => boolean, ms = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('timed out waiting for the viewer'));
      }, ms);
      const check = (): void => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.#waiters.push(check);
        }
      };
      check();
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) {
        resolve();
        return;
      }
      this.ws.once('close', () => {
        resolve();
      });
      this.ws.close();
    });
  }

  #notify(): void {
    const waiting = this.#waiters.splice(0);
    for (const w of waiting) w();
  }
}

/** Let the sockets deliver what is in flight: wait until `viewer` has seen a round trip. */
export async function flush(viewer: TestViewer): Promise<void> {
  // A subscription to a channel that does not exist is answered with a status: once that arrives,
  // everything the server sent before it has arrived too (one ordered connection).
  const before = viewer.statuses.length;
  viewer.client.subscribe(999_999);
  await viewer.until(() => viewer.statuses.length > before);
}
