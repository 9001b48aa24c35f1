/** The ZeroMQ + MessagePack bridge (protocol v1, docs/bridge.md): server, client and codec. */

export {
  BridgeClient,
  type BridgeClientOptions,
  type ChunkResult,
  type ClientObservation,
} from './client.js';
export { bindError, checkBind, isLocalEndpoint, probeBind } from './endpoint.js';
export { BridgeError, ERROR_CODES, type BridgeErrorCode, type ErrorCode } from './errors.js';
export { COMPRESSED_ENCODINGS, type WireImage } from './image.js';
export * from './protocol.js';
export { RequestQueue } from './queue.js';
export {
  isZ85Key,
  parseClientKeys,
  readClientKeys,
  z85Decode,
  z85Encode,
  ZapHandler,
  type ZapStats,
} from './zap.js';
export {
  BRIDGE_DEFAULTS,
  bridgeParameterDefaults,
  BridgeServer,
  type BridgePipeline,
  type BridgeServerOptions,
  type BridgeStats,
} from './server.js';
