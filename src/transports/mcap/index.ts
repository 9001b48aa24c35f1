/**
 * rosbag2 MCAP playback and recording (docs/replay.md): read bags with @mcap/core, decode CDR with
 * the schemas the file carries, replay them through the pipeline, write chunks back as ROS 2
 * messages.
 */

export { BagError } from './errors.js';
export {
  bagFiles,
  builtinDecompressHandlers,
  readBag,
  type BagChannel,
  type BagEvent,
  type BagReadOptions,
} from './reader.js';
export { recordSim, type RecordSimOptions, type RecordSimResult } from './record.js';
export { replay } from './replay.js';
export {
  defaultCameraTopic,
  DEFAULT_TOPICS,
  OUTPUT_TOPICS,
  type TopicMap,
} from './replay-topics.js';
export type * from './replay-types.js';
export { cdrReader, cdrWriter, parseSchema, schemaText, SCHEMA_SEPARATOR } from './schemas.js';
export {
  bagOutput,
  BagWriter,
  OFFERED_QOS,
  ROSBAG2_METADATA_VERSION,
  type BagWriterOptions,
  type OfferedQos,
} from './writer.js';
