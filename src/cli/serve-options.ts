/**
 * The bridge's flags, shared by `serve` and `bench serve`: its limits (flags only) and batching
 * (the `serve.*` parameters).
 */
import type { VlaConfig } from '../config/index.js';
import { ConfigError, describe } from '../errors.js';
import {
  BRIDGE_DEFAULTS,
  bridgeParameterDefaults,
  type BridgeServerOptions,
} from '../transports/zmq/index.js';
import type { OptionSpec, OptionValues } from './command.js';

/** Flags of the bridge's own limits, flag → option. */
const LIMIT_FLAGS = {
  'max-queue': 'maxQueue',
  'max-request-age-ms': 'maxRequestAgeMs',
  'max-message-bytes': 'maxMessageBytes',
  'max-image-bytes': 'maxImageBytes',
  'max-image-side': 'maxImageWidth',
  'max-clients': 'maxClients',
} as const;

export const BRIDGE_OPTIONS = {
  'max-queue': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxQueue),
    help: 'infer requests that may wait; more get "busy"',
  },
  'max-request-age-ms': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxRequestAgeMs),
    help: 'requests whose stamp is older when dequeued get "stale"; 0 = off',
  },
  'max-message-bytes': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxMessageBytes),
    help: 'largest message accepted (bigger ones drop the connection)',
  },
  'max-image-bytes': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxImageBytes),
    help: 'largest image data accepted',
  },
  'max-image-side': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxImageWidth),
    help: 'largest image width and height accepted, pixels',
  },
  'max-clients': {
    type: 'string',
    default: String(BRIDGE_DEFAULTS.maxClients),
    help: 'per-client states kept (least recently seen forgotten first)',
  },
} as const satisfies Record<string, OptionSpec>;

/** Flags of the bridge's batching, flag → dotted key of the `serve` section. */
export const BATCH_FLAG_KEYS = {
  'max-batch': 'serve.max_batch',
  'max-wait-ms': 'serve.max_wait_ms',
} as const;

export const BATCH_OPTIONS = {
  'max-batch': {
    type: 'string',
    help: 'infer requests of any clients run in one batch at most; 1 = one at a time (serve.max_batch)',
  },
  'max-wait-ms': {
    type: 'string',
    help: 'wait after the first queued request for a batch to fill, ms (serve.max_wait_ms)',
  },
} as const satisfies Record<string, OptionSpec>;

/** The bridge options the `serve` section of the configuration sets. */
export function batchOptions(
  config: VlaConfig,
): Pick<BridgeServerOptions, 'maxBatch' | 'maxWaitMs' | 'decodeConcurrency'> {
  return bridgeParameterDefaults(config.serve);
}

function integerFlag(values: OptionValues, flag: string, min: number): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ConfigError(
      `Expected an integer >= ${min} for --${flag} but received ${describe(raw)}`,
      { field: flag },
    );
  }
  return n;
}

/** The bridge limits set by flags (only those given). */
export function bridgeLimits(values: OptionValues): Partial<BridgeServerOptions> {
  const out: {
    -readonly [K in (typeof LIMIT_FLAGS)[keyof typeof LIMIT_FLAGS] | 'maxImageHeight']?: number;
  } = {};
  for (const [flag, key] of Object.entries(LIMIT_FLAGS)) {
    const n = integerFlag(values, flag, key === 'maxRequestAgeMs' ? 0 : 1);
    if (n === undefined) continue;
    out[key] = n;
    if (key === 'maxImageWidth') out.maxImageHeight = n;
  }
  return out;
}
