/**
 * The Foxglove live view (docs/foxglove.md): a Foxglove WebSocket server (foxglove.websocket.v1)
 * that shows a run as it happens — camera, kept tokens, instruction, action chunks, the actions
 * sent, the simulator's scene, latencies and diagnostics — in Foxglove or Lichtblick.
 */

export {
  keptTokenAnnotations,
  modelToSource,
  overlayGeometry,
  sceneUpdate,
  timeOf,
  VLA_SCHEMAS,
  type ModelToSource,
  type OverlayGeometry,
} from './messages.js';
export {
  LIVE_SERVER_DEFAULTS,
  LiveServer,
  wallClockNs,
  type LiveServerOptions,
  type LiveServerStats,
} from './server.js';
export { FoxgloveView, LIVE_TOPICS, type FoxgloveViewOptions } from './view.js';
