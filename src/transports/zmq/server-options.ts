/**
 * The bridge server's options and their defaults: the flags of `serve` (limits, bind, linger)
 * here, the batching options from the `serve.*` parameters of the parameter file.
 */
import { defaultConfig, type ServeConfig } from '../../config/index.js';
import { MAX_INSTRUCTION_LENGTH } from '../../pipeline/types.js';

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
  /**
   * Infer requests run together in one batch at most; 1 = one at a time. Capped by the pipeline's
   * `maxBatch` (1 when the model's manifest declares no batch dimension).
   */
  readonly maxBatch: number;
  /** How long the worker waits, after the first queued request, for a batch to fill, ms. */
  readonly maxWaitMs: number;
  /**
   * Images the batching worker decodes at once at most (while a batch runs; an encoder + policy
   * package's raw frames need none); 0 = one less than the CPU cores, at least 1, which leaves a
   * core to the event loop that runs ONNX Runtime.
   */
  readonly decodeConcurrency: number;
  /** Z85 CURVE secret key; required to bind an address other machines can reach. */
  readonly curveSecretKey?: string;
  /**
   * Z85 public keys of the only clients admitted (checked by a ZAP handler in the server's own
   * ZeroMQ context); needs `curveSecretKey`. Absent: any client that knows the server's key.
   */
  readonly curveClientKeys?: readonly string[];
  /** Where the server's log lines go. */
  readonly log?: (line: string) => void;
}

/**
 * The defaults of the options that are not keys of the parameter file (the `serve` command's
 * flags). The batching options (`maxBatch`, `maxWaitMs`, `decodeConcurrency`) are the `serve.*`
 * parameters: their defaults are the parameter file's, see {@link bridgeParameterDefaults}.
 */
export const BRIDGE_DEFAULTS = Object.freeze({
  bind: 'tcp://127.0.0.1:5555',
  maxQueue: 8,
  maxRequestAgeMs: 1000,
  maxMessageBytes: 34 * 1024 * 1024,
  maxImageWidth: 4096,
  maxImageHeight: 4096,
  maxImageBytes: 32 * 1024 * 1024,
  maxInstructionLength: MAX_INSTRUCTION_LENGTH,
  maxClients: 256,
  lingerMs: 1000,
}) satisfies Omit<BridgeServerOptions, OptionalOption | ParameterOption>;

/** Options that are `serve.*` parameters. */
type ParameterOption = 'maxBatch' | 'maxWaitMs' | 'decodeConcurrency';

/**
 * The batching options from `serve.*` parameters: by default the shipped parameter file's
 * (config/vla_node.param.yaml), the one place their defaults are written.
 */
export function bridgeParameterDefaults(
  serve: ServeConfig = defaultConfig().serve,
): Pick<BridgeServerOptions, ParameterOption> {
  return {
    maxBatch: serve.max_batch,
    maxWaitMs: serve.max_wait_ms,
    decodeConcurrency: serve.decode_concurrency,
  };
}

/** Options without a default. */
export type OptionalOption = 'curveSecretKey' | 'curveClientKeys' | 'log';

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
  return value;
}

/**
 * Check the numeric options of a server (defaults filled in).
 *
 * @throws {RangeError} naming the first option out of range.
 */
export function checkServerOptions(o: Omit<BridgeServerOptions, OptionalOption | 'bind'>): void {
  for (const key of [
    'maxQueue',
    'maxMessageBytes',
    'maxImageWidth',
    'maxImageHeight',
    'maxImageBytes',
    'maxInstructionLength',
    'maxClients',
    'maxBatch',
  ] as const) {
    positiveInteger(key, o[key]);
  }
  if (!(o.maxWaitMs >= 0 && Number.isFinite(o.maxWaitMs))) {
    throw new RangeError(`Expected maxWaitMs >= 0 but received ${o.maxWaitMs}`);
  }
  if (!(Number.isInteger(o.decodeConcurrency) && o.decodeConcurrency >= 0)) {
    throw new RangeError(
      `Expected an integer decodeConcurrency >= 0 but received ${o.decodeConcurrency}`,
    );
  }
}
