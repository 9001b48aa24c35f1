import { resolvePackagePath } from '../config/index.js';
import { ConfigError, describe } from '../errors.js';
import { isArPackage } from '../model/ar-manifest.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import type { LatencySummary } from '../runtime/latency.js';
import { batchDimension } from '../model/manifest.js';
import {
  BRIDGE_DEFAULTS,
  BridgeServer,
  type BridgeErrorCode,
  type BridgeServerOptions,
  type BridgeStats,
} from '../transports/zmq/index.js';
import { JPEG_QUALITY } from '../bench/frames.js';
import { benchServeAr } from './bench-serve-ar.js';
import {
  fleetFlags,
  startFleet,
  type ClientFleet,
  type FleetOptions,
} from './bench-serve-clients.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import {
  BATCH_FLAG_KEYS,
  BATCH_OPTIONS,
  batchOptions,
  BRIDGE_OPTIONS,
  bridgeLimits,
} from './serve-options.js';
import {
  CONFIG_OPTIONS,
  configFromArgs,
  MODEL_FLAG_KEYS,
  MODEL_OPTIONS,
  modelFromConfig,
  pipelineOptions,
} from './setup.js';
import { median, round } from '../util/stats.js';
import { performance } from 'node:perf_hooks';
import { TabletopSim } from '../sim/tabletop.js';

/** One measured run of the bridge at one batch setting. */
export interface BenchServeRun {
  /** `single`: one request at a time (max_batch 1); `batched`: up to max_batch per inference. */
  readonly mode: 'single' | 'batched';
  /** 1-based round (the modes alternate when --rounds > 1). */
  readonly round: number;
  /** Requests run together at most (the server's, after the model's cap). */
  readonly max_batch: number;
  readonly max_wait_ms: number;
  /** Images decoded at once ahead of their batch (0: one at a time, decoded in the pipeline). */
  readonly decode_concurrency: number;
  /** Where the clients ran: a worker thread of their own, or the server's main thread. */
  readonly client_thread: ClientFleet['thread'];
  /** Chunks received. */
  readonly requests: number;
  readonly errors: Partial<Record<BridgeErrorCode, number>>;
  readonly duration_s: number;
  readonly throughput_rps: number;
  /** Client-measured round trips (send → chunk decoded), ms. */
  readonly round_trip_ms: LatencySummary;
  readonly server: {
    /** The pipeline's own frame → chunk latency, ms (in a batch: the stages each request spent). */
    readonly pipeline_ms: LatencySummary;
    readonly stage_mean_ms: Record<string, number>;
    /** Time requests waited in the server's queue, ms. */
    readonly queue_ms: LatencySummary;
    /** Request received → reply handed to the socket, ms. */
    readonly round_trip_ms: LatencySummary;
    /** Batches run and their sizes. */
    readonly batches: BridgeStats['batches'];
  };
  /** Client round trip p50 minus the server's own round trip p50: sockets and codec, ms. */
  readonly transport_p50_ms: number;
  /** Resident memory of the process during the measured run (MB); growth = last / first. */
  readonly rss_mb: ReturnType<typeof rssSummary>;
}

/** The model's cost per observation at one batch size. */
export interface BatchCost {
  readonly size: number;
  /** Median time of one `inferBatch` call, ms. */
  readonly batch_ms: number;
  /** `batch_ms / size`. */
  readonly per_observation_ms: number;
  /** `per_observation_ms` relative to batch size 1. */
  readonly relative: number;
}

/**
 * Time `inferBatch` on `sizes` decoded simulator frames (prepared once, so no decode), median of
 * `calls` calls per size after a warm-up of a tenth as many. Every frame keeps the pipeline's
 * current token budget, so a latency-budget controller cannot change it between sizes.
 */
async function batchCosts(
  pipeline: VlaPipeline,
  sizes: readonly number[],
  calls: number,
  camera: { width: number; height: number },
  seed: number,
): Promise<BatchCost[]> {
  const largest = Math.max(...sizes);
  const prepared = await Promise.all(
    Array.from({ length: largest }, (_, i) => {
      const o = new TabletopSim({
        seed: seed + i,
        cameraWidth: camera.width,
        cameraHeight: camera.height,
      }).observe();
      return pipeline.prepare({
        frame: o.image,
        instruction: o.instruction,
        state: o.state,
        stream: `bench-${i}`,
        keepCount: pipeline.tokenBudget,
      });
    }),
  );
  const costs: BatchCost[] = [];
  let single: number | undefined;
  for (const size of sizes) {
    const batch = prepared.slice(0, size);
    const times: number[] = [];
    const warmup = Math.ceil(calls / 10);
    for (let i = 0; i < calls + warmup; i++) {
      const t0 = performance.now();
      const results = await pipeline.inferBatch(batch);
      if (i >= warmup) times.push(performance.now() - t0);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    }
    const batchMs = median(times);
    single ??= batchMs / size;
    costs.push({
      size,
      batch_ms: round(batchMs),
      per_observation_ms: round(batchMs / size),
      relative: round(batchMs / size / single),
    });
  }
  return costs;
}

export interface BenchServeReport {
  readonly clients: number;
  readonly requests_per_client: number;
  readonly rounds: number;
  readonly model: string;
  /** The name of the model's batch dimension, or null when its manifest declares none. */
  readonly batch_dimension: string | null;
  readonly provider: string;
  readonly precision: string;
  readonly max_queue: number;
  readonly frame: { readonly width: number; readonly height: number; readonly encoding: string };
  /** The Node/V8 flags the server ran with (`bin/vla-node.js` adds src/cli/node-flags.ts's). */
  readonly node_flags: readonly string[];
  /** The NODE_OPTIONS variable the server ran with, or null. */
  readonly node_options: string | null;
  /**
   * The model alone (`inferBatch` on decoded frames: normalise, encoder, pruning, policy) per
   * observation, by batch size up to the batched runs' largest batch: how much a batch saves on
   * this machine, without sockets or decode. Empty with `--batch-calls 0` or no batched run.
   */
  readonly model_batch_ms: readonly BatchCost[];
  /** Every measured run, in the order they ran. */
  readonly runs: readonly BenchServeRun[];
  /** Throughput and p99 round trip per mode, one value per round, and the median speed-up. */
  readonly summary: {
    readonly single_rps: readonly number[];
    readonly batched_rps: readonly number[];
    readonly single_p99_ms: readonly number[];
    readonly batched_p99_ms: readonly number[];
    /** Median batched throughput / median single throughput; null without a batched run. */
    readonly speedup: number | null;
  };
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
  const mb = (b: number): number => round(b / 1048576, 1);
  const ratio = (a: number, b: number): number => round(b / a);
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

interface RunSetup {
  readonly pipeline: VlaPipeline;
  readonly limits: Partial<BridgeServerOptions>;
  readonly clients: number;
  readonly requests: number;
  readonly warmup: number;
  readonly seed: number;
  readonly camera: FleetOptions['camera'];
  readonly thread: ClientFleet['thread'];
  readonly io: CommandIo;
}

/** Start a server with `batch`, run the clients against it (warm-up, then measured), stop it. */
async function measure(
  setup: RunSetup,
  mode: BenchServeRun['mode'],
  roundNumber: number,
  batch: { maxBatch: number; maxWaitMs: number },
): Promise<BenchServeRun> {
  const { pipeline, clients, requests, warmup, seed, camera, io } = setup;
  const server = await BridgeServer.start(pipeline, {
    ...setup.limits,
    ...batch,
    bind: 'tcp://127.0.0.1:*',
  });
  let fleet: ClientFleet | undefined;
  try {
    const started = await startFleet(
      { endpoint: server.endpoint, clients, seed, camera },
      setup.thread,
    );
    fleet = started.fleet;
    if (started.note !== undefined) io.progress(started.note);
    io.progress(
      `${mode} (max_batch ${server.maxBatch}), round ${roundNumber}: ${clients} clients (${fleet.thread} thread) × ${warmup} warm-up + ${requests} requests...`,
    );
    await fleet.warmup(warmup);
    pipeline.latency.reset();
    server.resetStats();
    // Resident memory once a second (server and clients share this process): a leak shows as
    // growth between the first and last samples.
    const rss: number[] = [process.memoryUsage().rss];
    const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 1000);
    const result = await fleet.measure(requests).finally(() => {
      clearInterval(sampler);
    });
    rss.push(process.memoryUsage().rss);
    const stats = server.stats();
    const roundTrip = result.round_trip_ms;
    return {
      mode,
      round: roundNumber,
      max_batch: server.maxBatch,
      max_wait_ms: server.options.maxWaitMs,
      decode_concurrency: server.maxBatch > 1 ? server.decodeConcurrency : 0,
      client_thread: fleet.thread,
      requests: result.requests,
      errors: result.errors,
      duration_s: round(result.duration_s),
      throughput_rps: round(result.requests / result.duration_s, 1),
      round_trip_ms: roundTrip,
      server: {
        pipeline_ms: pipeline.latency.total.summary(),
        stage_mean_ms: pipeline.latency.stageMeans(),
        queue_ms: stats.queue_ms,
        round_trip_ms: stats.round_trip_ms,
        batches: stats.batches,
      },
      transport_p50_ms: round(roundTrip.p50 - stats.round_trip_ms.p50),
      rss_mb: rssSummary(rss),
    };
  } finally {
    await fleet?.close();
    await server.close();
  }
}

/** One run's line; `encoded` says whether frames were decoded ahead (raw frames skip that step). */
function runLine(r: BenchServeRun, encoded: boolean): string {
  const ahead = encoded ? `, ${r.decode_concurrency} decoding ahead` : '';
  const what =
    r.mode === 'single'
      ? 'one at a time (max_batch 1)'
      : `batched (max_batch ${r.max_batch}, wait ≤ ${r.max_wait_ms} ms${ahead}, mean batch ${r.server.batches.mean_size})`;
  const rt = r.round_trip_ms;
  const errors = Object.keys(r.errors).length === 0 ? '' : `; errors ${JSON.stringify(r.errors)}`;
  return `  ${what}: ${r.throughput_rps} requests/s; round trip p50 ${rt.p50} ms, p95 ${rt.p95} ms, p99 ${rt.p99} ms, max ${rt.max} ms; pipeline p50 ${r.server.pipeline_ms.p50} ms, queue wait p50 ${r.server.queue_ms.p50} ms${errors}`;
}

export const benchServeCommand: CommandSpec = {
  name: 'bench serve',
  summary:
    'throughput and round-trip latency of the ZeroMQ bridge: N concurrent loopback clients sending simulator frames, one request at a time and batched',
  options: {
    clients: {
      type: 'string',
      help: 'concurrent clients (one request in flight each); default 4, an autoregressive package 1,2,4 (a list: one run per count)',
    },
    requests: { type: 'string', default: '100', help: 'measured requests per client' },
    warmup: { type: 'string', default: '3', help: 'unmeasured requests per client first' },
    seed: { type: 'string', default: '1', help: 'seed of the first client’s scenes' },
    rounds: {
      type: 'string',
      default: '1',
      help: 'measure each mode this many times, alternating (the machine’s noise shows as spread)',
    },
    modes: {
      type: 'string',
      default: 'both',
      help: 'both: one at a time, then batched; single or batched: that mode only (e.g. a long soak of the batched server). An autoregressive package: both = batched (batch at once) and continuous; all; or a list of single,batched,continuous',
    },
    'batch-calls': {
      type: 'string',
      default: '300',
      help: 'inferBatch calls timed per batch size for model_batch_ms (0: skip; a large model takes long)',
    },
    encoding: {
      type: 'string',
      default: 'rgb8',
      help: `camera frames the clients send: rgb8 (raw) or jpeg (quality ${JPEG_QUALITY}, encoded by each client before the request is timed)`,
    },
    'client-thread': {
      type: 'string',
      default: 'worker',
      help: 'worker: clients on a thread of their own (as clients in other processes); main: on the server’s event loop',
    },
    ...BRIDGE_OPTIONS,
    ...BATCH_OPTIONS,
    ...MODEL_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs(values, { ...MODEL_FLAG_KEYS, ...BATCH_FLAG_KEYS });
    const dir = resolvePackagePath(config.model.path);
    if (await isArPackage(dir)) return benchServeAr(values, io, config, dir);
    const clients = count({ ...values, clients: values.clients ?? '4' }, 'clients');
    const requests = count(values, 'requests');
    const warmup = values.warmup === '0' ? 0 : count(values, 'warmup');
    const seed = count(values, 'seed');
    const rounds = count(values, 'rounds');
    const batchCalls = values['batch-calls'] === '0' ? 0 : count(values, 'batch-calls');
    const { thread, camera } = fleetFlags(values, {
      width: config.sim.camera_width,
      height: config.sim.camera_height,
    });
    const modes = values.modes ?? 'both';
    if (modes !== 'both' && modes !== 'single' && modes !== 'batched') {
      throw new ConfigError(
        `Expected both|single|batched for --modes but received ${describe(modes)}`,
        { field: 'modes' },
      );
    }
    const limits = bridgeLimits(values);
    const model = await modelFromConfig(config);
    io.progress(`loading ${model.manifest.name} and warming up...`);
    const pipeline = await VlaPipeline.create(
      model,
      pipelineOptions(config, (line) => {
        io.progress(line);
      }),
    );
    try {
      const batch = batchOptions(config);
      const batched = Math.min(batch.maxBatch, pipeline.maxBatch) > 1;
      if (batch.maxBatch > 1 && !batched) {
        io.progress(
          `${model.manifest.name} takes one observation per run (its manifest declares no batch dimension): measuring one request at a time only`,
        );
      }
      const setup: RunSetup = {
        pipeline,
        limits,
        clients,
        requests,
        warmup,
        seed,
        camera,
        thread,
        io,
      };
      const runs: BenchServeRun[] = [];
      for (let round = 1; round <= rounds; round++) {
        if (modes !== 'batched' || !batched)
          runs.push(await measure(setup, 'single', round, { maxBatch: 1, maxWaitMs: 0 }));
        if (batched && modes !== 'single') runs.push(await measure(setup, 'batched', round, batch));
      }
      // Powers of two up to the batched runs' largest batch, and that batch.
      const largest =
        batched && modes !== 'single' ? Math.min(batch.maxBatch, pipeline.maxBatch) : 1;
      const sizes = [
        ...new Set([1, 2, 4, 8, 16, 32, 64].filter((n) => n < largest).concat(largest)),
      ];
      let modelBatch: BatchCost[] = [];
      if (batchCalls > 0 && largest > 1) {
        io.progress(`the model alone, batches of ${sizes.join(', ')}...`);
        modelBatch = await batchCosts(pipeline, sizes, batchCalls, camera, seed);
      }
      const of = (mode: BenchServeRun['mode']): BenchServeRun[] =>
        runs.filter((r) => r.mode === mode);
      const singleRps = of('single').map((r) => r.throughput_rps);
      const batchedRps = of('batched').map((r) => r.throughput_rps);
      const speedup =
        batchedRps.length === 0 || singleRps.length === 0
          ? null
          : round(median(batchedRps) / median(singleRps), 2);
      const report: BenchServeReport = {
        clients,
        requests_per_client: requests,
        rounds,
        model: model.manifest.name,
        batch_dimension: batchDimension(model.manifest) ?? null,
        provider: pipeline.provider,
        precision: pipeline.precision,
        max_queue: limits.maxQueue ?? BRIDGE_DEFAULTS.maxQueue,
        frame: camera,
        node_flags: process.execArgv,
        node_options: process.env.NODE_OPTIONS ?? null,
        model_batch_ms: modelBatch,
        runs,
        summary: {
          single_rps: singleRps,
          batched_rps: batchedRps,
          single_p99_ms: of('single').map((r) => r.round_trip_ms.p99),
          batched_p99_ms: of('batched').map((r) => r.round_trip_ms.p99),
          speedup,
        },
      };
      const last = runs[runs.length - 1];
      io.result(
        report,
        [
          `${clients} concurrent clients × ${requests} requests, ${model.manifest.name} on ${pipeline.provider}, ${camera.width}×${camera.height} ${camera.encoding} frames over loopback TCP${process.execArgv.length > 0 ? `, node ${process.execArgv.join(' ')}` : ''}:`,
          ...runs.map(
            (r) =>
              `${rounds > 1 ? `round ${r.round} ` : ''}${runLine(r, camera.encoding !== 'rgb8')}`,
          ),
          speedup === null
            ? modes === 'both'
              ? '  no batched run (max_batch 1 or a model without a batch dimension)'
              : `  --modes ${modes}: no comparison`
            : `  batched / one at a time: ${speedup}× the throughput${rounds > 1 ? ' (medians of the rounds)' : ''}`,
          modelBatch.length === 0
            ? ''
            : `  the model alone (inferBatch on decoded frames) per observation: ${modelBatch.map((c) => `${c.per_observation_ms} ms in batches of ${c.size}${c.size === 1 ? '' : ` (${c.relative}×)`}`).join(', ')}`,
          last === undefined
            ? ''
            : `  resident memory: ${last.rss_mb.first} MB at the start of the last run, ${last.rss_mb.last} MB at its end (max ${last.rss_mb.max})`,
        ].join('\n'),
      );
      return 0;
    } finally {
      await pipeline.release();
    }
  },
};
