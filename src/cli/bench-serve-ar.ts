/**
 * `vla-node bench serve` with an autoregressive package: N closed-loop robots (simulator frames
 * over loopback TCP) against the bridge, for each N and each way of serving them: one request at
 * a time (`single`), the ready requests decoded together to the end (`batched`, batch at once),
 * and continuous batching (`continuous`: a request joins the batch decoding between two decoder
 * calls). Round trips, chunks per second, decoder calls per chunk and the scheduler's counts.
 */
import type { VlaConfig } from '../config/index.js';
import { ConfigError, describe } from '../errors.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import type { ArPipeline } from '../policy/autoregressive/pipeline.js';
import type { SchedulerStats } from '../policy/autoregressive/scheduler.js';
import type { LatencySummary } from '../runtime/latency.js';
import {
  BridgeServer,
  type BridgeErrorCode,
  type BridgeServerOptions,
  type BridgeStats,
} from '../transports/zmq/index.js';
import { median, round } from '../util/stats.js';
import {
  fleetFlags,
  startFleet,
  type ClientFleet,
  type FleetOptions,
} from './bench-serve-clients.js';
import type { CommandIo, OptionValues } from './command.js';
import { batchOptions, bridgeLimits } from './serve-options.js';

/** How the bridge serves the robots. */
export const AR_SERVE_MODES = ['single', 'batched', 'continuous'] as const;
export type ArServeMode = (typeof AR_SERVE_MODES)[number];

/** One measured run: N robots against one way of serving them. */
export interface ArServeRun {
  readonly mode: ArServeMode;
  readonly clients: number;
  /** 1-based round (the modes alternate within a round). */
  readonly round: number;
  /** Requests decoded together at most (the server's). */
  readonly max_batch: number;
  readonly client_thread: ClientFleet['thread'];
  /** Chunks received. */
  readonly chunks: number;
  readonly errors: Partial<Record<BridgeErrorCode, number>>;
  readonly duration_s: number;
  readonly chunks_per_s: number;
  /** Client-measured round trips (send → chunk decoded), ms. */
  readonly round_trip_ms: LatencySummary;
  readonly server: {
    /** The pipeline's frame → chunk latency, ms (continuous: the wait for a place included). */
    readonly pipeline_ms: LatencySummary;
    readonly queue_ms: LatencySummary;
    readonly round_trip_ms: LatencySummary;
    /** Batches the batch-at-once worker ran (none in the other modes). */
    readonly batches: BridgeStats['batches'];
  };
  /** Sequential decoder calls per chunk, as each sequence counts them. */
  readonly decoder_calls_per_chunk: number;
  /** Continuous batching: shared decoder calls, admissions, joins and sequences per call. */
  readonly continuous: SchedulerStats | null;
}

export interface ArBenchServeReport {
  readonly model: string;
  readonly family: 'autoregressive';
  readonly decoding: string;
  readonly window: number;
  readonly tokens_per_chunk: number;
  readonly max_batch: number;
  readonly max_wait_ms: number;
  readonly clients: readonly number[];
  readonly requests_per_client: number;
  readonly rounds: number;
  readonly frame: { readonly width: number; readonly height: number; readonly encoding: string };
  readonly node_flags: readonly string[];
  readonly runs: readonly ArServeRun[];
  /** Per robot count and mode: medians over the rounds. */
  readonly summary: readonly {
    readonly clients: number;
    readonly mode: ArServeMode;
    readonly chunks_per_s: number;
    readonly p50_ms: number;
    readonly p99_ms: number;
  }[];
}

/** `--clients 1,2,4`: positive integers. */
function clientCounts(raw: unknown): number[] {
  const text = typeof raw === 'string' ? raw : '';
  const counts = text.split(',').map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : NaN));
  if (text === '' || counts.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw new ConfigError(
      `Expected a positive integer or a comma-separated list of them (1,2,4) for --clients but received ${describe(raw)}`,
      { field: 'clients' },
    );
  return [...new Set(counts)];
}

/** `--modes`: `both` (batched and continuous), `all`, or a comma-separated list of modes. */
function serveModes(raw: unknown): ArServeMode[] {
  const text = typeof raw === 'string' ? raw : 'both';
  if (text === 'both') return ['batched', 'continuous'];
  if (text === 'all') return [...AR_SERVE_MODES];
  const modes = text.split(',').map((s) => s.trim());
  if (!modes.every((m): m is ArServeMode => (AR_SERVE_MODES as readonly string[]).includes(m)))
    throw new ConfigError(
      `Expected both, all or a comma-separated list of ${AR_SERVE_MODES.join(', ')} for --modes but received ${describe(raw)}`,
      { field: 'modes' },
    );
  return [...new Set(modes)];
}

function positive(values: OptionValues, flag: string, zero = false): number {
  const raw = values[flag];
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < (zero ? 0 : 1))
    throw new ConfigError(
      `Expected a ${zero ? 'non-negative' : 'positive'} integer for --${flag} but received ${describe(raw)}`,
      { field: flag },
    );
  return n;
}

interface ArRunSetup {
  readonly config: VlaConfig;
  readonly dir: string;
  readonly limits: Partial<BridgeServerOptions>;
  readonly requests: number;
  readonly warmup: number;
  readonly seed: number;
  readonly camera: FleetOptions['camera'];
  readonly thread: ClientFleet['thread'];
  readonly io: CommandIo;
}

/** Load the package for `mode`, serve it, run `clients` robots (warm-up, measured), stop. */
async function measureAr(
  setup: ArRunSetup,
  mode: ArServeMode,
  clients: number,
  roundNumber: number,
): Promise<ArServeRun> {
  const { config, io } = setup;
  const batch = batchOptions(config);
  const maxBatch = mode === 'single' ? 1 : batch.maxBatch;
  const pipeline: ArPipeline = await arPipelineFromConfig(config, setup.dir, {
    maxBatch,
    continuous: mode === 'continuous',
  });
  let server: BridgeServer | undefined;
  let fleet: ClientFleet | undefined;
  try {
    server = await BridgeServer.start(pipeline, {
      ...setup.limits,
      ...batch,
      maxBatch,
      bind: 'tcp://127.0.0.1:*',
    });
    const started = await startFleet(
      { endpoint: server.endpoint, clients, seed: setup.seed, camera: setup.camera },
      setup.thread,
    );
    fleet = started.fleet;
    if (started.note !== undefined) io.progress(started.note);
    io.progress(
      `${mode} (max_batch ${server.maxBatch}), ${clients} robot${clients === 1 ? '' : 's'}, round ${roundNumber}: ${setup.warmup} warm-up + ${setup.requests} requests each...`,
    );
    await fleet.warmup(setup.warmup);
    pipeline.latency.reset();
    pipeline.resetBatching();
    server.resetStats();
    const calls = pipeline.decodeTotals.decoderCalls;
    const chunks = pipeline.decodeTotals.chunks;
    const result = await fleet.measure(setup.requests);
    const stats = server.stats();
    const decoded = pipeline.decodeTotals.chunks - chunks;
    return {
      mode,
      clients,
      round: roundNumber,
      max_batch: server.maxBatch,
      client_thread: fleet.thread,
      chunks: result.requests,
      errors: result.errors,
      duration_s: round(result.duration_s),
      chunks_per_s: round(result.requests / result.duration_s, 1),
      round_trip_ms: result.round_trip_ms,
      server: {
        pipeline_ms: pipeline.latency.total.summary(),
        queue_ms: stats.queue_ms,
        round_trip_ms: stats.round_trip_ms,
        batches: stats.batches,
      },
      decoder_calls_per_chunk:
        decoded === 0 ? 0 : round((pipeline.decodeTotals.decoderCalls - calls) / decoded, 2),
      continuous: pipeline.batching ?? null,
    };
  } finally {
    await fleet?.close();
    await server?.close();
    await pipeline.release();
  }
}

function runLine(r: ArServeRun): string {
  const rt = r.round_trip_ms;
  const how =
    r.mode === 'continuous' && r.continuous !== null
      ? `, ${r.continuous.mean_active} sequences per decoder call, ${r.continuous.joined}/${r.continuous.admitted} joined a running batch, admitted in ${r.continuous.starts} starts`
      : r.mode === 'batched'
        ? `, mean batch ${r.server.batches.mean_size}`
        : '';
  const errors = Object.keys(r.errors).length === 0 ? '' : `; errors ${JSON.stringify(r.errors)}`;
  return `  ${r.clients} robot${r.clients === 1 ? '' : 's'}, ${r.mode} (max_batch ${r.max_batch}${how}): ${r.chunks_per_s} chunks/s; round trip p50 ${rt.p50} ms, p99 ${rt.p99} ms; ${r.decoder_calls_per_chunk} decoder calls per chunk${errors}`;
}

/**
 * The autoregressive bench: `--clients` may list robot counts (`1,2,4`), `--modes` is `both`
 * (batched and continuous, the default), `all`, or a list of `single`, `batched`, `continuous`.
 * Each run loads the package afresh (its warm-up runs), so the modes start alike.
 */
export async function benchServeAr(
  values: OptionValues,
  io: CommandIo,
  config: VlaConfig,
  dir: string,
): Promise<number> {
  const clients = clientCounts(values.clients ?? '1,2,4');
  const modes = serveModes(values.modes);
  const requests = positive(values, 'requests');
  const warmup = positive(values, 'warmup', true);
  const seed = positive(values, 'seed');
  const rounds = positive(values, 'rounds');
  const { thread, camera } = fleetFlags(values, {
    width: config.sim.camera_width,
    height: config.sim.camera_height,
  });
  const setup: ArRunSetup = {
    config,
    dir,
    limits: bridgeLimits(values),
    requests,
    warmup,
    seed,
    camera,
    thread,
    io,
  };
  const runs: ArServeRun[] = [];
  let model = '';
  let tokens = 0;
  {
    // The package's name and chunk size, from a pipeline that is released at once.
    const probe = await arPipelineFromConfig(config, dir);
    model = probe.model.manifest.name;
    tokens = probe.policy.policy.pkg.tokenizer.maxTokens;
    await probe.release();
  }
  io.progress(
    `${model}: ${clients.join(', ')} robots × ${modes.join(', ')}, decoding ${config.runtime.decoding}, ${requests} requests each per run...`,
  );
  for (const n of clients)
    for (let r = 1; r <= rounds; r++)
      for (const mode of modes) runs.push(await measureAr(setup, mode, n, r));
  const summary = clients.flatMap((n) =>
    modes.map((mode) => {
      const of = runs.filter((r) => r.clients === n && r.mode === mode);
      return {
        clients: n,
        mode,
        chunks_per_s: round(median(of.map((r) => r.chunks_per_s)), 1),
        p50_ms: round(median(of.map((r) => r.round_trip_ms.p50))),
        p99_ms: round(median(of.map((r) => r.round_trip_ms.p99))),
      };
    }),
  );
  const batch = batchOptions(config);
  const report: ArBenchServeReport = {
    model,
    family: 'autoregressive',
    decoding: config.runtime.decoding,
    window: config.runtime.decoding_window,
    tokens_per_chunk: tokens,
    max_batch: batch.maxBatch,
    max_wait_ms: batch.maxWaitMs,
    clients,
    requests_per_client: requests,
    rounds,
    frame: setup.camera,
    node_flags: process.execArgv,
    runs,
    summary,
  };
  io.result(
    report,
    [
      `${model} (autoregressive, decoding ${config.runtime.decoding}, up to ${tokens} tokens per chunk) over loopback TCP, ${setup.camera.width}×${setup.camera.height} ${setup.camera.encoding} frames, ${requests} requests per robot:`,
      ...runs.map((r) => `${rounds > 1 ? `round ${r.round} ` : ''}${runLine(r)}`),
    ].join('\n'),
  );
  return 0;
}
