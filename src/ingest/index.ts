/** Frame ingest: camera frames to the model's normalised image tensor. */

export {
  SUPPORTED_ENCODINGS,
  checkRawFrame,
  encodingFrameBytes,
  encodingLayout,
  encodingRowBytes,
  encodingSizeProblem,
  toThreeChannels,
  type EncodingLayout,
  type EncodedFrame,
  type Frame,
  type ImageInputSpec,
  type RawFrame,
  type ResizeMode,
} from './frame.js';
export { FrameIngest } from './ingest.js';
export { isAcceptedFormat, sniffImageFormat, type AcceptedFormat } from './format.js';
export { defaultIngestLimits, ingestLimits, type IngestLimits } from './limits.js';
export { RawKernel, planFor, rawToRgb, type IngestPlan, type PlanTarget } from './raw-kernel.js';
