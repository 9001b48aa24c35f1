/**
 * `vla-node/core`: the transport-free core, what a robot program needs to run the policy. Loads no
 * ROS 2, ZeroMQ or MCAP module.
 *
 * @example
 * import { loadConfig, loadModelPackage, pipelineOptions, VlaPipeline } from 'vla-node/core';
 * const config = await loadConfig();
 * const model = await loadModelPackage('models/tiny-vla');
 * const pipeline = await VlaPipeline.create(model, pipelineOptions(config, console.log));
 * const chunk = await pipeline.infer({ frame, instruction: 'move to the red block', state: [0.5, 0.5] });
 */
export * from './errors.js';
export {
  applyOverrides,
  checkConfigForModel,
  configKeys,
  defaultConfig,
  describeParameter,
  loadConfig,
  parseOverride,
  validateConfig,
  type Executable,
  type ParameterDescription,
  type VlaConfig,
} from './config/index.js';
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
export type { InferenceBackend } from './backend/backend.js';
export { OnnxBackend, type BackendOptions } from './backend/onnx.js';
export { createPruner } from './pruning/strategies.js';
export { ChunkExecutor, type ExecutorOptions, type MergeMode } from './runtime/executor.js';
export { BudgetController, LatestFrameSlot } from './runtime/budget.js';
export { UnsafeActionError } from './runtime/safety.js';
// Flow-matching packages (format v2, docs/flow-models.md): the runtime, and the same
// observation → safe chunk interface as VlaPipeline (what the bridge and replay serve).
export {
  isFlowPackage,
  loadFlowPackage,
  type FlowManifest,
  type FlowPackage,
} from './model/flow-manifest.js';
export { FlowPolicy, type FlowPolicyOptions, type FlowRequest } from './flow/policy.js';
export { FlowPipeline, stampSeed, type FlowPipelineOptions } from './flow/pipeline.js';
export { DEFAULT_FLOW_CACHES, flowPipelineFromConfig } from './flow/from-config.js';
export { matchCameras } from './flow/cameras.js';
export type { CameraFrame } from './pipeline/types.js';
// Autoregressive packages (format v2, family autoregressive; docs/autoregressive-models.md): the
// runtime, and the same observation → safe chunk interface (what sim, the bridge and replay run).
export { isArPackage, type ArManifest } from './model/ar-manifest.js';
export { ArPolicy, type ArAction, type ArActOptions } from './policy/autoregressive/policy.js';
export { PrunedArPolicy, type ArPruningOptions } from './policy/autoregressive/pruned.js';
export {
  ArPipeline,
  AR_DECODINGS,
  type ArDecoding,
  type ArDecodingOptions,
  type ArPipelineOptions,
} from './policy/autoregressive/pipeline.js';
export { arPipelineFromConfig } from './policy/autoregressive/from-config.js';
