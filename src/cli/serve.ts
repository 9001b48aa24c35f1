import { performance } from 'node:perf_hooks';
import { readFile } from 'node:fs/promises';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { flowPipelineFromConfig } from '../flow/from-config.js';
import { isArPackage } from '../model/ar-manifest.js';
import { isFlowPackage, loadFlowPackage } from '../model/flow-manifest.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import type { SchedulerStats } from '../policy/autoregressive/scheduler.js';
import type { LatencyBook } from '../runtime/latency.js';
import { SerialQueue } from '../runtime/serial-queue.js';
import {
  BRIDGE_DEFAULTS,
  BridgeServer,
  checkBind,
  probeBind,
  readClientKeys,
  type BridgeStats,
} from '../transports/zmq/index.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { observeInference } from '../pipeline/observer.js';
import type { BridgePipeline } from '../transports/zmq/index.js';
import { FOXGLOVE_OPTIONS, startLiveView, withFoxgloveFlag, type LiveView } from './foxglove.js';
import {
  BATCH_FLAG_KEYS,
  BATCH_OPTIONS,
  BRIDGE_OPTIONS,
  batchOptions,
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

async function curveKey(values: OptionValues): Promise<string | undefined> {
  const key = values['curve-secret-key'];
  const file = values['curve-secret-key-file'];
  if (typeof key === 'string' && typeof file === 'string') {
    throw new ConfigError(
      'Expected at most one of --curve-secret-key and --curve-secret-key-file but received both',
      { field: 'curve_secret_key' },
    );
  }
  if (typeof key === 'string') return key.trim();
  if (typeof file === 'string') {
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (cause) {
      throw new ConfigError(`Expected a readable key file for --curve-secret-key-file: ${file}`, {
        field: 'curve_secret_key',
        cause,
      });
    }
  }
  return undefined;
}

/**
 * Resolves on the first SIGINT or SIGTERM. A repeat within {@link REPEAT_MS} is ignored: Ctrl-C in
 * a terminal reaches both `bin/vla-node.js` and the server it relaunched, which then passes its
 * copy on. A later one ends the process at once, as a second Ctrl-C usually does.
 */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: number | undefined;
    const on = (signal: NodeJS.Signals): void => {
      if (first === undefined) {
        first = performance.now();
        resolve(signal);
        return;
      }
      if (performance.now() - first < REPEAT_MS) return;
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      process.kill(process.pid, signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/**
 * Re-reads the CURVE client allow-list on SIGHUP (rotate client keys without a restart): new
 * connections are checked against the new list. Reads run one at a time, in order; a file that
 * cannot be read or parsed is reported and the current list stays. Listens from construction to
 * {@link stop}: a SIGHUP before {@link attach} is applied once the server is attached, one after
 * {@link detach} (shutting down) is ignored.
 */
class AllowListReload {
  readonly #file: string;
  readonly #io: CommandIo;
  #server: BridgeServer | undefined;
  #pending = false;
  #detached = false;
  /** Reloads one at a time, so the last SIGHUP's read is the list that stays. */
  readonly #reads = new SerialQueue();
  readonly #on = (): void => {
    this.#request();
  };

  constructor(file: string, io: CommandIo) {
    this.#file = file;
    this.#io = io;
    process.on('SIGHUP', this.#on);
  }

  attach(server: BridgeServer): void {
    this.#server = server;
    if (this.#pending) {
      this.#pending = false;
      this.#request();
    }
  }

  /** The server is shutting down: SIGHUP changes nothing from now on. */
  detach(): void {
    this.#detached = true;
    this.#server = undefined;
  }

  stop(): void {
    process.off('SIGHUP', this.#on);
  }

  #request(): void {
    const server = this.#server;
    if (this.#detached) {
      this.#io.progress('SIGHUP: shutting down, the client allow-list is not re-read');
    } else if (server === undefined) {
      this.#pending = true;
    } else {
      void this.#reads.run(() => this.#reload(server));
    }
  }

  async #reload(server: BridgeServer): Promise<void> {
    try {
      const keys = await readClientKeys(this.#file);
      server.replaceClientKeys(keys);
      this.#io.progress(
        `SIGHUP: ${keys.length} client key${keys.length === 1 ? '' : 's'} allowed from ${this.#file} (new connections)`,
      );
    } catch (error) {
      this.#io.progress(
        `SIGHUP: kept the current client allow-list: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}

/**
 * Every member of the bridge's view that the encoder + policy pipeline has: the wrapper below must
 * forward each one (a member left out would silently fall back to the bridge's default).
 */
type Forwarded = Required<Pick<BridgePipeline, keyof BridgePipeline & keyof VlaPipeline>>;

/** The pipeline as the bridge sees it, with every request's frame and chunk shown in the live view. */
function observed(pipeline: VlaPipeline, live: LiveView): Forwarded {
  return {
    model: pipeline.model,
    get totalTokens() {
      return pipeline.totalTokens;
    },
    get tokenBudget() {
      return pipeline.tokenBudget;
    },
    pruner: pipeline.pruner,
    maxBatch: pipeline.maxBatch,
    prepare: (obs) => pipeline.prepare(obs),
    benefitsFromPrepare: (obs) => pipeline.benefitsFromPrepare(obs),
    ...observeInference(pipeline, live.view),
  };
}

/** The pipeline `serve` runs: the encoder + policy pipeline, or a flow or autoregressive package's. */
interface Served {
  readonly pipeline: BridgePipeline & { release(): Promise<void> };
  /** The encoder + policy pipeline (the live view shows its one camera), when that is served. */
  readonly vla?: VlaPipeline;
  readonly provider: string;
  readonly precision: string;
  readonly latency: LatencyBook;
  /** What the start line says of the cameras ('' for one). */
  readonly cameras: string;
  /** What continuous batching did (an autoregressive package batched continuously). */
  readonly batching?: () => SchedulerStats | undefined;
}

/** Load `model.path` as the pipeline of its family and warm it up. */
async function servedPipeline(config: Readonly<VlaConfig>, io: CommandIo): Promise<Served> {
  const dir = resolvePackagePath(config.model.path);
  if (await isFlowPackage(dir)) {
    if (config.foxglove.enabled) {
      throw new ConfigError(
        'Expected foxglove.enabled false with a flow package: the live view shows one camera, and serving flow packages with it is not supported yet',
        { field: 'foxglove.enabled' },
      );
    }
    const pkg = await loadFlowPackage(dir);
    const names = pkg.manifest.cameras.map((c) => c.name);
    io.progress(
      `loading ${pkg.manifest.name} (flow, ${names.join(' + ')}, ${config.model.precision}) on cpu and warming up...`,
    );
    const flow = await flowPipelineFromConfig(config, pkg);
    return {
      pipeline: flow,
      provider: 'cpu',
      precision: flow.precision,
      latency: flow.latency,
      cameras: `cameras ${names.join(' + ')}, ${flow.policy.steps} denoising steps, noise seeded per request, `,
    };
  }
  if (await isArPackage(dir)) {
    if (config.foxglove.enabled) {
      throw new ConfigError(
        'Expected foxglove.enabled false with an autoregressive package: the live view runs the encoder + policy pipeline only, and serving autoregressive packages with it is not supported yet',
        { field: 'foxglove.enabled' },
      );
    }
    io.progress(
      `loading the autoregressive package ${dir} (${config.model.precision}, decoding ${config.runtime.decoding}) on cpu and warming up...`,
    );
    // Up to serve.max_batch requests decode together (their sequences padded into one decoder call
    // per step); with serve.continuous_batching a request joins the batch already decoding.
    const ar = await arPipelineFromConfig(config, dir, {
      maxBatch: config.serve.max_batch,
      continuous: config.serve.continuous_batching,
    });
    return {
      pipeline: ar,
      provider: 'cpu',
      precision: ar.precision,
      latency: ar.latency,
      batching: () => ar.batching,
      cameras: `decoding ${ar.decoding.strategy}${ar.decoding.window > 0 ? ` (window ${ar.decoding.window})` : ''}, `,
    };
  }
  const model = await modelFromConfig(config);
  io.progress(
    `loading ${model.manifest.name} (${config.model.precision}) on ${config.backend.execution_providers.join(' → ')} and warming up...`,
  );
  const pipeline = await VlaPipeline.create(
    model,
    pipelineOptions(config, (line) => {
      io.progress(line);
    }),
  );
  return {
    pipeline,
    vla: pipeline,
    get provider() {
      return pipeline.provider;
    },
    get precision() {
      return pipeline.precision;
    },
    latency: pipeline.latency,
    cameras: '',
  };
}

/** How long after the first stop signal a repeat counts as the same one, ms. */
const REPEAT_MS = 500;

export interface ServeReport {
  readonly endpoint: string;
  readonly model: string;
  readonly provider: string;
  readonly precision: string;
  /** Requests run together at most (1: one at a time). */
  readonly max_batch: number;
  readonly stats: BridgeStats;
  /**
   * Continuous batching (an autoregressive package with `serve.continuous_batching`): shared
   * decoder calls, requests admitted, the starts they were admitted in (those waiting together
   * share one) and how many joined a batch already decoding.
   */
  readonly continuous_batching?: SchedulerStats;
  readonly pipeline_latency_ms: ReturnType<LatencyBook['total']['summary']>;
}

/**
 * Serve until `until` settles (default: the first SIGINT or SIGTERM after the server is up), then
 * shut down gracefully and report.
 * The bind address is checked before the model loads.
 */
export async function runServe(
  values: OptionValues,
  io: CommandIo,
  until?: Promise<unknown>,
): Promise<number> {
  const bind = typeof values.bind === 'string' ? values.bind : BRIDGE_DEFAULTS.bind;
  const curveSecretKey = await curveKey(values);
  checkBind(bind, curveSecretKey);
  await probeBind(bind);
  const limits = bridgeLimits(values);
  // A path is a string whatever it looks like: pass it quoted, after the --set overrides.
  const keysFile = values['curve-client-keys-file'];
  const sets = [
    ...(Array.isArray(values.set) ? values.set : []),
    ...(typeof keysFile === 'string'
      ? [`serve.curve_client_keys_file=${JSON.stringify(keysFile)}`]
      : []),
  ];
  const config = await configFromArgs(withFoxgloveFlag({ ...values, set: sets }), {
    ...MODEL_FLAG_KEYS,
    ...BATCH_FLAG_KEYS,
  });
  const clientKeysFile = config.serve.curve_client_keys_file;
  if (clientKeysFile !== '' && curveSecretKey === undefined) {
    throw new ConfigError(
      `Expected a CURVE secret key (--curve-secret-key or --curve-secret-key-file) with the client allow-list ${clientKeysFile} but received none: client keys are only checked in CURVE handshakes`,
      { field: 'serve.curve_client_keys_file' },
    );
  }
  const curveClientKeys = clientKeysFile === '' ? undefined : await readClientKeys(clientKeysFile);
  // SIGHUP re-reads the allow-list from now on: one that arrives while the model loads applies
  // once the server is up, and one during the shutdown is ignored (it must not cut the drain).
  const reload = clientKeysFile === '' ? undefined : new AllowListReload(clientKeysFile, io);
  try {
    const served = await servedPipeline(config, io);
    const { pipeline } = served;
    let server: BridgeServer | undefined;
    let live: LiveView | undefined;
    try {
      live =
        served.vla === undefined
          ? undefined
          : await startLiveView(config, io, served.vla.model.manifest);
      const bridged =
        served.vla !== undefined && live !== undefined ? observed(served.vla, live) : pipeline;
      server = await BridgeServer.start(bridged, {
        ...limits,
        ...batchOptions(config),
        bind,
        ...(curveSecretKey === undefined ? {} : { curveSecretKey }),
        ...(curveClientKeys === undefined ? {} : { curveClientKeys }),
        log: (line) => {
          io.progress(line);
        },
      });
      const m = pipeline.model.manifest;
      const curve =
        curveSecretKey === undefined
          ? ''
          : curveClientKeys === undefined
            ? ', CURVE'
            : `, CURVE, ${curveClientKeys.length} client key${curveClientKeys.length === 1 ? '' : 's'} allowed`;
      const batching = server.continuous
        ? `continuous batches of up to ${server.maxBatch} (a request joins the batch decoding)`
        : server.maxBatch > 1
          ? `batches of up to ${server.maxBatch} (waiting up to ${server.options.maxWaitMs} ms, ${server.decodeConcurrency} image${server.decodeConcurrency === 1 ? '' : 's'} decoding ahead)`
          : 'one request at a time';
      // Listening before "Ctrl-C stops" is printed: a signal sent on reading that line (a
      // supervisor, a test) must find the handler, not Node's default action, which kills.
      const stopped = until ?? untilSignal();
      io.progress(
        `serving ${m.name} on ${server.endpoint} (bridge protocol v1${curve}): ${m.chunk.horizon}×${m.chunk.action_dim} chunks at ${m.control_rate_hz} Hz, ${served.cameras}${pipeline.tokenBudget}/${pipeline.totalTokens} visual tokens, queue ${server.options.maxQueue}, ${batching}${process.execArgv.length > 0 ? `; node ${process.execArgv.join(' ')}` : ''}; Ctrl-C stops`,
      );
      reload?.attach(server);
      let signal: unknown;
      try {
        signal = await stopped;
      } finally {
        reload?.detach();
      }
      io.progress(
        `${typeof signal === 'string' ? `${signal}: ` : ''}shutting down, answering the requests in flight...`,
      );
      await server.close();
      const continuous = server.continuous ? served.batching?.() : undefined;
      const report: ServeReport = {
        endpoint: server.endpoint,
        model: m.name,
        provider: served.provider,
        precision: served.precision,
        max_batch: server.maxBatch,
        stats: server.stats(),
        ...(continuous === undefined ? {} : { continuous_batching: continuous }),
        pipeline_latency_ms: served.latency.total.summary(),
      };
      const s = report.stats;
      io.result(
        report,
        `served ${s.requests} requests (${s.replies.actions} chunks, ${s.replies.error} errors: ${Object.entries(
          s.errors,
        )
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ', ',
          )}); round trip in the server p50 ${s.round_trip_ms.p50} ms, p99 ${s.round_trip_ms.p99} ms${s.batches.count === 0 ? '' : `; ${s.batches.count} batches, ${s.batches.mean_size} requests each on average`}${continuous === undefined ? '' : `; continuous batching: ${continuous.steps} decoder steps for ${continuous.admitted} requests (admitted in ${continuous.starts} starts), ${continuous.joined} joined a running batch, ${continuous.mean_active} sequences per step on average`}`,
      );
      return 0;
    } finally {
      await server?.close();
      await live?.close();
      await pipeline.release();
    }
  } finally {
    reload?.stop();
  }
}

export const serveCommand: CommandSpec = {
  name: 'serve',
  summary: 'serve the policy over ZeroMQ + MessagePack (bridge protocol v1, docs/bridge.md)',
  options: {
    bind: {
      type: 'string',
      default: BRIDGE_DEFAULTS.bind,
      help: 'ZeroMQ ROUTER endpoint; non-loopback addresses need a CURVE key',
    },
    'curve-secret-key': {
      type: 'string',
      help: 'Z85 CURVE server secret key (40 characters); required for non-loopback binds',
    },
    'curve-secret-key-file': {
      type: 'string',
      help: 'file holding the Z85 CURVE server secret key (keeps it out of the process list)',
    },
    'curve-client-keys-file': {
      type: 'string',
      help: 'file of the Z85 public keys of the only clients admitted, one per line (serve.curve_client_keys_file)',
    },
    ...BRIDGE_OPTIONS,
    ...BATCH_OPTIONS,
    ...MODEL_OPTIONS,
    ...FOXGLOVE_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  run: (values, io) => runServe(values, io),
};
