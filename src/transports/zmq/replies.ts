/** The bridge server's replies to infer requests: an action chunk, or an error. */

import type { ActionChunk } from '../../pipeline/pipeline.js';
import type { ErrorCode } from './errors.js';
import {
  float32Array,
  PROTOCOL_VERSION,
  serverTiming,
  type InferRequest,
  type Reply,
  type RequestId,
} from './protocol.js';

/**
 * The `actions` reply carrying a request's chunk.
 *
 * @param queueMs - how long the request waited for the worker.
 * @param totalMs - from its arrival to now.
 */
export function actionsReply(
  request: InferRequest,
  chunk: ActionChunk,
  queueMs: number,
  totalMs: number,
): Reply {
  return {
    v: PROTOCOL_VERSION,
    ...(request.id === undefined ? {} : { id: request.id }),
    type: 'actions',
    actions: float32Array(chunk.actions, [chunk.horizon, chunk.actionDim]),
    chunk: {
      sequence: chunk.sequence,
      dt: chunk.dt,
      source_stamp: request.stamp,
      latency_ms: chunk.latencyMs,
      horizon: chunk.horizon,
      action_dim: chunk.actionDim,
      tokens_total: chunk.tokens.total,
      tokens_kept: chunk.tokens.kept,
      clamped: chunk.clamped,
    },
    server_timing: serverTiming(chunk.stages, chunk.latencyMs, queueMs, totalMs),
  };
}

/** An `error` reply (to the request `id`, if it had one). */
export function errorReply(
  id: RequestId | undefined,
  code: ErrorCode,
  message: string,
  field?: string,
): Reply {
  return {
    v: PROTOCOL_VERSION,
    ...(id === undefined ? {} : { id }),
    type: 'error',
    code,
    message,
    ...(field === undefined ? {} : { field }),
  };
}
