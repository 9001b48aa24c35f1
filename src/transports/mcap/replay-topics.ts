/**
 * The bag topics replay reads by default and the topics it writes: the convention `record-sim`
 * records with and `vla-node replay` reads back.
 */

/** Which bag topics feed which pipeline input. */
export interface TopicMap {
  /** sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage: one inference per message. */
  readonly image: string;
  /** std_msgs/msg/String: the latest is the instruction. */
  readonly instruction: string;
  /** sensor_msgs/msg/JointState: the latest positions are the state. */
  readonly state: string;
  /** std_msgs/msg/Float32MultiArray (horizon × action_dim): reference actions to compare with. */
  readonly reference: string;
}

/** The topics `record-sim` writes, used for any topic not given. */
export const DEFAULT_TOPICS: TopicMap = Object.freeze({
  image: '/camera/image_raw',
  instruction: '/instruction',
  state: '/joint_states',
  reference: '/expert/actions',
});

/**
 * The default image topic of a model's camera `index` named `name`: the first camera reads
 * {@link TopicMap.image} (`/camera/image_raw`, the one camera of a v1 package), each other camera
 * `/<name>_camera/image_raw` (e.g. `/wrist_camera/image_raw`), as `record-sim` writes them.
 */
export function defaultCameraTopic(name: string, index: number, image: string): string {
  return index === 0 ? image : `/${name}_camera/image_raw`;
}

/** The topics replay writes into its output. */
export const OUTPUT_TOPICS = Object.freeze({
  chunk: '/vla_node/out/action_chunk',
  raw: '/vla_node/out/action_chunk_raw',
  diagnostics: '/diagnostics',
});
