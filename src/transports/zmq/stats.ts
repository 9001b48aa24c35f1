/** The bridge server's statistics: request, reply and error counters, latency and batch sizes. */
import { LatencyHistogram, type LatencySummary } from '../../runtime/latency.js';
import type { ErrorCode } from './errors.js';
import type { Reply } from './protocol.js';
import type { ZapStats } from './zap.js';

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
  /** Batches run (with batching on: `maxBatch` > 1), and how many requests each held. */
  readonly batches: {
    readonly count: number;
    readonly mean_size: number;
    /** Batches by size: `{"1": 10, "4": 90}`. */
    readonly sizes: Readonly<Record<string, number>>;
  };
  /** CURVE handshakes the client allow-list admitted and refused (absent without one). */
  readonly curve_clients?: ZapStats;
}

/** The counters behind {@link BridgeStats}, updated by the server as it works. */
export class BridgeStatsBook {
  readonly #batchSizes = new Map<number, number>();
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

  /** A request arrived. */
  request(): void {
    this.#requests++;
  }

  /** A reply of `type` was handed to the socket. */
  reply(type: Reply['type']): void {
    this.#replies[type]++;
  }

  /** An error reply with `code` was sent. */
  error(code: ErrorCode): void {
    this.#errors[code]++;
  }

  /** A batch of `size` requests ran. */
  batch(size: number): void {
    this.#batchSizes.set(size, (this.#batchSizes.get(size) ?? 0) + 1);
  }

  /** An infer request was answered after `queueMs` in the queue and `totalMs` in all. */
  answered(queueMs: number, totalMs: number): void {
    this.#queueWait.record(queueMs);
    this.#roundTrip.record(totalMs);
  }

  /** The statistics now, with the server's client count and CURVE allow-list figures. */
  snapshot(clients: number, curveClients: ZapStats | undefined): BridgeStats {
    return {
      requests: this.#requests,
      replies: { ...this.#replies },
      errors: { ...this.#errors },
      clients,
      round_trip_ms: this.#roundTrip.summary(),
      queue_ms: this.#queueWait.summary(),
      batches: this.#batchStats(),
      ...(curveClients === undefined ? {} : { curve_clients: curveClients }),
    };
  }

  /** Zero every counter and histogram. */
  reset(): void {
    this.#requests = 0;
    for (const k of Object.keys(this.#replies)) this.#replies[k as Reply['type']] = 0;
    for (const k of Object.keys(this.#errors)) this.#errors[k as ErrorCode] = 0;
    this.#roundTrip.reset();
    this.#queueWait.reset();
    this.#batchSizes.clear();
  }

  #batchStats(): BridgeStats['batches'] {
    let count = 0;
    let requests = 0;
    const sizes: Record<string, number> = {};
    for (const [size, n] of [...this.#batchSizes].sort((a, b) => a[0] - b[0])) {
      count += n;
      requests += size * n;
      sizes[String(size)] = n;
    }
    return {
      count,
      mean_size: count === 0 ? 0 : Math.round((requests / count) * 1000) / 1000,
      sizes,
    };
  }
}
