/**
 * `vla-node/ros`: the managed ROS 2 node (launch/README.md) and its messages, parameters and
 * options. rclnodejs is loaded by `loadRos()` when the node starts, not by this import.
 *
 * @example
 * import { loadRos, runRosNode } from 'vla-node/ros';
 */
export * from './transports/ros/index.js';
