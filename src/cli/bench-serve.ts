import { performance } from 'node:perf_hooks';
import { ConfigError, describe } from '../errors.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import { LatencyHistogram, type LatencySummary } from '../runtime/latency.js';
import { TabletopSim } from '../sim/tabletop.js';
import {
  BridgeClient,
  BridgeError,
  BridgeServer,
  type BridgeErrorCode,
} from '../transports/zmq/index.js';
import type { CommandSpec, OptionValues } from './command.js';
import { BRIDGE_OPTIONS, bridgeLimits } from './serve.js';
import {
  CONFIG_OPTIONS,
  configFromArgs,
  MODEL_FLAG_KEYS,
  MODEL_OPTIONS,
  modelFromConfig,
  pipelineOptions,
} from './setup.js';

export interface BenchServeReport {
  /** Resident memory of the process during the measured run (MB); growth = last / first. */
  readonly rss_mb: ReturnType<typeof rssSummary>;
  readonly clients: number;
  readonly requests_per_client: number;
  /** Chunks received. */
  readonly requests: number;
  readonly errors: Partial<Record<BridgeErrorCode, number>>;
  readonly duration_s: number;
  readonly throughput_rps: number;
  /** Client-measured round trips (send → chunk decoded), ms. */
  readonly round_trip_ms: LatencySummary;
  readonly server: {
    /** The pipeline's own frame → chunk latency, ms. */
    readonly pipeline_ms: LatencySummary;
    readonly stage_mean_ms: Record<string, number>;
    /** Time requests waited in the server's queue, ms. */
    readonly queue_ms: LatencySummary;
    /** Request received → reply handed to the socket, ms. */
    readonly round_trip_ms: LatencySummary;
  };
  /** Client round trip p50 minus the server's own round trip p50: sockets and codec, ms. */
  readonly transport_p50_ms: number;
  readonly endpoint: string;
  readonly model: string;
  readonly provider: string;
  readonly precision: string;
  readonly max_queue: number;
  readonly frame: { readonly width: number; readonly height: number; readonly encoding: string };
}

function count(values: OptionValues, flag: string): number {
  const raw = values[flag];
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(
      `Expected a positive integer for --${flag} but received ${describe(raw)}`,
      {
        field: flag,
      },
    );
  }
  return n;
}

/** One client's closed loop: observe, infer, step the simulator with the first action. */
async function clientLoop(
  client: BridgeClient,
  seed: number,
  requests: number,
  camera: { width: number; height: number },
  record: ((ms: number) => void) | undefined,
  errors: Partial<Record<BridgeErrorCode, number>>,
): Promise<number> {
  let episode = 0;
  let sim = new TabletopSim({ seed, cameraWidth: camera.width, cameraHeight: camera.height });
  let ok = 0;
  for (let r = 0; r < requests; r++) {
    const obs = sim.observe();
    const t0 = performance.now();
    try {
      const chunk = await client.infer({
        frame: obs.image,
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

/** First, last and largest resident memory of the measured run, in MB. */
function rssSummary(samples: readonly number[]): {
  first: number;
  after_60s: number | null;
  last: number;
  max: number;
  growth: number;
  growth_after_60s: number | null;
  samples: number;
} {
  const mb = (b: number): number => Math.round((b / 1048576) * 10) / 10;
  const ratio = (a: number, b: number): number => Math.round((b / a) * 1000) / 1000;
  const first = samples[0] ?? 0;
  const minute = samples.length > 61 ? samples[60] : undefined;
  const last = samples[samples.length - 1] ?? 0;
  return {
    first: mb(first),
    after_60s: minute === undefined ? null : mb(minute),
    last: mb(last),
    max: mb(Math.max(...samples)),
    growth: first === 0 ? 0 : ratio(first, last),
    // The first minute includes the JIT and buffer pools settling; a leak keeps growing after it.
    growth_after_60s: minute === undefined ? null : ratio(minute, last),
    samples: samples.length,
  };
}

export const benchServeCommand: CommandSpec = {
  name: 'bench serve',
  summary:
    'throughput and round-trip latency of the ZeroMQ bridge: N concurrent loopback clients sending simulator frames',
  options: {
    clients: {
      type: 'string',
      default: '4',
      help: 'concurrent clients (one request in flight each)',
    },
    requests: { type: 'string', default: '100', help: 'measured requests per client' },
    warmup: { type: 'string', default: '3', help: 'unmeasured requests per client first' },
    seed: { type: 'string', default: '1', help: 'seed of the first client’s scenes' },
    ...BRIDGE_OPTIONS,
    ...MODEL_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const clients = count(values, 'clients');
    const requests = count(values, 'requests');
    const warmup = values.warmup === '0' ? 0 : count(values, 'warmup');
    const seed = count(values, 'seed');
    const limits = bridgeLimits(values);
    const config = await configFromArgs(values, MODEL_FLAG_KEYS);
    const model = await modelFromConfig(config);
    io.progress(`loading ${model.manifest.name} and warming up...`);
    const pipeline = await VlaPipeline.create(
      model,
      pipelineOptions(config, (line) => {
        io.progress(line);
      }),
    );
    const server = await BridgeServer.start(pipeline, { ...limits, bind: 'tcp://127.0.0.1:*' });
    const connected = Array.from({ length: clients }, () =>
      BridgeClient.connect(server.endpoint, { timeoutMs: 60_000 }),
    );
    try {
      await Promise.all(connected.map((c) => c.hello('bench serve')));
      const camera = { width: config.sim.camera_width, height: config.sim.camera_height };
      io.progress(`${clients} clients on ${server.endpoint}: ${warmup} warm-up requests each...`);
      await Promise.all(
        connected.map((c, i) => clientLoop(c, seed + i, warmup, camera, undefined, {})),
      );
      pipeline.latency.reset();
      server.resetStats();
      const rtt = new LatencyHistogram();
      const record = (ms: number): void => {
        rtt.record(ms);
      };
      const errors: Partial<Record<BridgeErrorCode, number>> = {};
      io.progress(`${clients} clients × ${requests} requests...`);
      // Resident memory once a second (server and clients share this process): a leak shows as
      // growth between the first and last samples.
      const rss: number[] = [process.memoryUsage().rss];
      const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 1000);
      const t0 = performance.now();
      const done = await Promise.all(
        connected.map((c, i) => clientLoop(c, seed + i, requests, camera, record, errors)),
      ).finally(() => {
        clearInterval(sampler);
      });
      rss.push(process.memoryUsage().rss);
      const seconds = (performance.now() - t0) / 1000;
      const ok = done.reduce((a, b) => a + b, 0);
      const stats = server.stats();
      const roundTrip = rtt.summary();
      const pipelineMs = pipeline.latency.total.summary();
      const report: BenchServeReport = {
        clients,
        requests_per_client: requests,
        requests: ok,
        errors,
        duration_s: Math.round(seconds * 1000) / 1000,
        throughput_rps: Math.round((ok / seconds) * 10) / 10,
        round_trip_ms: roundTrip,
        server: {
          pipeline_ms: pipelineMs,
          stage_mean_ms: pipeline.latency.stageMeans(),
          queue_ms: stats.queue_ms,
          round_trip_ms: stats.round_trip_ms,
        },
        transport_p50_ms: Math.round((roundTrip.p50 - stats.round_trip_ms.p50) * 1000) / 1000,
        endpoint: server.endpoint,
        model: model.manifest.name,
        provider: pipeline.provider,
        precision: pipeline.precision,
        max_queue: server.options.maxQueue,
        frame: { ...camera, encoding: 'rgb8' },
        rss_mb: rssSummary(rss),
      };
      io.result(
        report,
        [
          `${clients} clients × ${requests} requests over ${server.endpoint}: ${report.throughput_rps} requests/s (${ok} chunks in ${report.duration_s} s)`,
          `  round trip (client): p50 ${roundTrip.p50} ms, p95 ${roundTrip.p95} ms, p99 ${roundTrip.p99} ms, max ${roundTrip.max} ms`,
          `  pipeline (server):   p50 ${pipelineMs.p50} ms, p95 ${pipelineMs.p95} ms, p99 ${pipelineMs.p99} ms on ${pipeline.provider}`,
          `  queue wait (server): p50 ${stats.queue_ms.p50} ms, p95 ${stats.queue_ms.p95} ms; sockets + codec p50 ${report.transport_p50_ms} ms; errors ${JSON.stringify(errors)}`,
          `  resident memory: ${report.rss_mb.first} MB after warm-up, ${report.rss_mb.last} MB at the end (max ${report.rss_mb.max}; ${report.rss_mb.samples} samples)`,
        ].join('\n'),
      );
      return 0;
    } finally {
      await Promise.all(connected.map((c) => c.close()));
      await server.close();
      await pipeline.release();
    }
  },
};
