/**
 * The closed-loop clients of `vla-node bench serve`, on the main thread or on a worker thread of
 * their own. On a worker, their work (rendering scenes, encoding requests) does not share the
 * server's event loop, as with clients in other processes; CPU cores are still shared.
 */

import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { jpegFrame } from '../bench/frames.js';
import { ConfigError, describe } from '../errors.js';
import type { Frame, RawFrame } from '../ingest/index.js';
import { LatencyHistogram, type LatencySummary } from '../runtime/latency.js';
import { TabletopSim } from '../sim/tabletop.js';
import { BridgeClient, BridgeError, type BridgeErrorCode } from '../transports/zmq/index.js';

export interface FleetOptions {
  readonly endpoint: string;
  readonly clients: number;
  /** Seed of the first client's scenes (client i uses seed + i). */
  readonly seed: number;
  readonly camera: {
    readonly width: number;
    readonly height: number;
    /** rgb8: the simulator's raw frame; jpeg: encoded by the client before the request's clock starts. */
    readonly encoding: 'rgb8' | 'jpeg';
  };
}

/**
 * The fleet's flags, checked: `--client-thread` (worker|main) and `--encoding` (rgb8|jpeg) of the
 * frames, at the simulator camera's `size`.
 */
export function fleetFlags(
  values: Readonly<Record<string, unknown>>,
  size: { readonly width: number; readonly height: number },
): { readonly thread: ClientFleet['thread']; readonly camera: FleetOptions['camera'] } {
  const thread = values['client-thread'] ?? 'worker';
  if (thread !== 'worker' && thread !== 'main') {
    throw new ConfigError(
      `Expected worker|main for --client-thread but received ${describe(thread)}`,
      { field: 'client-thread' },
    );
  }
  const encoding = values.encoding ?? 'rgb8';
  if (encoding !== 'rgb8' && encoding !== 'jpeg') {
    throw new ConfigError(`Expected rgb8|jpeg for --encoding but received ${describe(encoding)}`, {
      field: 'encoding',
    });
  }
  return { thread, camera: { width: size.width, height: size.height, encoding } };
}

/** The simulator's frame as `camera.encoding` says the client sends it. */
function sentFrame(image: RawFrame, encoding: FleetOptions['camera']['encoding']): Promise<Frame> {
  return encoding === 'rgb8'
    ? Promise.resolve(image)
    : jpegFrame(image.data, image.width, image.height);
}

/** What a measured run of the clients gave. */
export interface FleetResult {
  /** Chunks received. */
  readonly requests: number;
  readonly errors: Partial<Record<BridgeErrorCode, number>>;
  readonly duration_s: number;
  /** Send → chunk decoded, ms. */
  readonly round_trip_ms: LatencySummary;
}

/** N connected clients, one request in flight each. */
export interface ClientFleet {
  /** Where the clients run. */
  readonly thread: 'worker' | 'main';
  /** `requests` per client, not measured. */
  warmup(requests: number): Promise<void>;
  /** `requests` per client, measured. */
  measure(requests: number): Promise<FleetResult>;
  close(): Promise<void>;
}

/** One client's closed loop: observe, infer, step the simulator with the first action. */
async function clientLoop(
  client: BridgeClient,
  seed: number,
  requests: number,
  camera: FleetOptions['camera'],
  record: ((ms: number) => void) | undefined,
  errors: Partial<Record<BridgeErrorCode, number>>,
): Promise<number> {
  let episode = 0;
  let sim = new TabletopSim({ seed, cameraWidth: camera.width, cameraHeight: camera.height });
  let ok = 0;
  for (let r = 0; r < requests; r++) {
    const obs = sim.observe();
    const frame = await sentFrame(obs.image, camera.encoding);
    const t0 = performance.now();
    try {
      const chunk = await client.infer({
        frame,
        instruction: obs.instruction,
        state: obs.state,
      });
      record?.(performance.now() - t0);
      ok++;
      if (sim.step(chunk.actions.subarray(0, 2))) {
        episode++;
        sim = new TabletopSim({
          seed: seed + 1000 * episode,
          cameraWidth: camera.width,
          cameraHeight: camera.height,
        });
      }
    } catch (error) {
      if (!(error instanceof BridgeError)) throw error;
      errors[error.code] = (errors[error.code] ?? 0) + 1;
    }
  }
  return ok;
}

/** The clients on this thread. */
class LocalFleet implements ClientFleet {
  readonly thread = 'main' as const;
  readonly #options: FleetOptions;
  readonly #clients: BridgeClient[];

  private constructor(options: FleetOptions) {
    this.#options = options;
    this.#clients = Array.from({ length: options.clients }, () =>
      BridgeClient.connect(options.endpoint, { timeoutMs: 60_000 }),
    );
  }

  static async start(options: FleetOptions): Promise<LocalFleet> {
    const fleet = new LocalFleet(options);
    await Promise.all(fleet.#clients.map((c) => c.hello('bench serve')));
    return fleet;
  }

  async warmup(requests: number): Promise<void> {
    const { seed, camera } = this.#options;
    await Promise.all(
      this.#clients.map((c, i) => clientLoop(c, seed + i, requests, camera, undefined, {})),
    );
  }

  async measure(requests: number): Promise<FleetResult> {
    const { seed, camera } = this.#options;
    const rtt = new LatencyHistogram();
    const record = (ms: number): void => {
      rtt.record(ms);
    };
    const errors: Partial<Record<BridgeErrorCode, number>> = {};
    const t0 = performance.now();
    const done = await Promise.all(
      this.#clients.map((c, i) => clientLoop(c, seed + i, requests, camera, record, errors)),
    );
    const seconds = (performance.now() - t0) / 1000;
    return {
      requests: done.reduce((a, b) => a + b, 0),
      errors,
      duration_s: seconds,
      round_trip_ms: rtt.summary(),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}

const ROLE = 'vla-node bench serve clients';

type Command =
  { readonly type: 'warmup' | 'measure'; readonly requests: number } | { readonly type: 'close' };
type Answer =
  | { readonly type: 'ready' | 'warm' | 'closed' }
  | { readonly type: 'result'; readonly result: FleetResult }
  | { readonly type: 'error'; readonly message: string };

/** The clients on a worker thread, driven by messages. */
class WorkerFleet implements ClientFleet {
  readonly thread = 'worker' as const;
  readonly #worker: Worker;
  readonly #answers: Answer[] = [];
  #waiter: (() => void) | undefined;
  #exited = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
    const push = (answer: Answer): void => {
      this.#answers.push(answer);
      const w = this.#waiter;
      this.#waiter = undefined;
      w?.();
    };
    worker.on('message', (answer: Answer) => {
      push(answer);
    });
    worker.on('error', (error: Error) => {
      push({ type: 'error', message: error.message });
    });
    worker.on('exit', () => {
      this.#exited = true;
      push({ type: 'error', message: 'the client thread exited' });
    });
  }

  static async start(options: FleetOptions): Promise<WorkerFleet> {
    const fleet = new WorkerFleet(
      new Worker(new URL(import.meta.url), { workerData: { role: ROLE, options } }),
    );
    await fleet.#expect('ready');
    return fleet;
  }

  async warmup(requests: number): Promise<void> {
    this.#worker.postMessage({ type: 'warmup', requests } satisfies Command);
    await this.#expect('warm');
  }

  async measure(requests: number): Promise<FleetResult> {
    this.#worker.postMessage({ type: 'measure', requests } satisfies Command);
    const answer = await this.#expect('result');
    if (answer.type !== 'result') throw new Error('unreachable');
    return answer.result;
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    this.#worker.postMessage({ type: 'close' } satisfies Command);
    await this.#expect('closed');
  }

  async #expect(type: Answer['type']): Promise<Answer> {
    for (;;) {
      const answer = this.#answers.shift();
      if (answer !== undefined) {
        if (answer.type === 'error') {
          throw new Error(`bench serve client thread: ${answer.message}`);
        }
        if (answer.type === type) return answer;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
  }
}

/** The worker side: run the commands of the main thread on a {@link LocalFleet}. */
async function serveCommands(options: FleetOptions): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const fleet = await LocalFleet.start(options);
  const commands: Command[] = [];
  let wake: (() => void) | undefined;
  port.on('message', (command: Command) => {
    commands.push(command);
    const w = wake;
    wake = undefined;
    w?.();
  });
  port.postMessage({ type: 'ready' } satisfies Answer);
  for (;;) {
    const command = commands.shift();
    if (command === undefined) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      continue;
    }
    if (command.type === 'warmup') {
      await fleet.warmup(command.requests);
      port.postMessage({ type: 'warm' } satisfies Answer);
    } else if (command.type === 'measure') {
      const result = await fleet.measure(command.requests);
      port.postMessage({ type: 'result', result } satisfies Answer);
    } else {
      await fleet.close();
      port.postMessage({ type: 'closed' } satisfies Answer);
      port.close();
      return;
    }
  }
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE) {
  const { options } = workerData as { options: FleetOptions };
  serveCommands(options).catch((error: unknown) => {
    parentPort?.postMessage({
      type: 'error',
      message: error instanceof Error ? error.message : String(error),
    } satisfies Answer);
  });
}

/**
 * Connect `options.clients` clients (hello each) on a worker thread, or on this thread when
 * `thread` is `main` or a worker cannot run this module (TypeScript sources, as under vitest; the
 * second value says why).
 */
export async function startFleet(
  options: FleetOptions,
  thread: 'worker' | 'main',
): Promise<{ fleet: ClientFleet; note?: string }> {
  if (thread === 'main') return { fleet: await LocalFleet.start(options) };
  if (!fileURLToPath(import.meta.url).endsWith('.js')) {
    return {
      fleet: await LocalFleet.start(options),
      note: 'clients run on the main thread: a worker thread needs the compiled module (npm run build)',
    };
  }
  return { fleet: await WorkerFleet.start(options) };
}
