/**
 * vla-node's library API: the core pipeline and the pieces users script against (model packages,
 * configuration, the simulator, bag replay, the bridge client). The CLI (`vla-node`) is built on
 * the same exports.
 *
 * @example
 * import { loadConfig, loadModelPackage, pipelineOptions, VlaPipeline } from 'vla-node';
 * const config = await loadConfig();
 * const pipeline = await VlaPipeline.create(await loadModelPackage('models/tiny-vla'), pipelineOptions(config, console.log));
 */
export * from './errors.js';
export { loadConfig, validateConfig, applyOverrides, type VlaConfig } from './config/index.js';
export {
  batchDimension,
  loadModelPackage,
  selectVariant,
  type Manifest,
  type ModelPackage,
} from './model/manifest.js';
export { FrameIngest, type Frame, type RawFrame, type EncodedFrame } from './ingest/index.js';
export {
  PreparedObservation,
  VlaPipeline,
  type ActionChunk,
  type Observation,
  type PipelineOptions,
} from './pipeline/pipeline.js';
export { modelFromConfig, pipelineOptions } from './pipeline/from-config.js';
export { createPruner } from './pruning/strategies.js';
export { ChunkExecutor, type ExecutorOptions, type MergeMode } from './runtime/executor.js';
export { BudgetController, LatestFrameSlot } from './runtime/budget.js';
export { TabletopSim } from './sim/tabletop.js';
export { runEpisodes, pipelineAgent, expertAgent, blindAgent } from './sim/runner.js';
export { replay, recordSim, readBag } from './transports/mcap/index.js';
export { BridgeClient, BridgeServer } from './transports/zmq/index.js';
