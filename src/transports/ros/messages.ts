/**
 * The ROS 2 message shapes and builders live in the transport-neutral `../messages/` (the MCAP
 * transport writes the same messages); re-exported here for the ROS transport's modules.
 */
export * from '../messages/index.js';
