/**
 * `vla-node/bridge`: the ZeroMQ + MessagePack bridge (protocol v1, docs/bridge.md): the server in
 * front of a pipeline, the client, the wire codec and `BridgeError` (a `VlaError`).
 *
 * @example
 * import { BridgeClient } from 'vla-node/bridge';
 * const client = BridgeClient.connect('tcp://127.0.0.1:5555');
 */
export * from './transports/zmq/index.js';
