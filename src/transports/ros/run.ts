/** Run the ROS 2 node until it is shut down (Ctrl-C, SIGTERM or the lifecycle `shutdown`). */
import type { VlaConfig } from '../../config/index.js';
import type { RosApi } from './api.js';
import { VlaRosNode, type PipelineFactory } from './node.js';
import type { RosNodeOptionsInput } from './options.js';
import type { RunObserver } from '../../pipeline/observer.js';

export interface RunRosNodeOptions {
  readonly ros: RosApi;
  readonly config: Readonly<VlaConfig>;
  readonly createPipeline: PipelineFactory;
  readonly options?: RosNodeOptionsInput;
  /** Arguments for rcl, e.g. `['vla-node', '--ros-args', '-r', '__ns:=/robot']`. */
  readonly argv?: string[];
  readonly log: (line: string) => void;
  /** Passed to the node: a live view of its frames, chunks and actions. */
  readonly observer?: RunObserver;
}

/**
 * Initialise rclnodejs, create the managed node, spin it, configure and activate it when
 * `options.autoActivate` is set, and resolve with the exit code once it is finalized or ROS 2 is
 * shut down.
 */
export async function runRosNode(o: RunRosNodeOptions): Promise<number> {
  await o.ros.init(undefined, o.argv);
  const vla = new VlaRosNode({
    ros: o.ros,
    config: o.config,
    createPipeline: o.createPipeline,
    ...(o.options === undefined ? {} : { options: o.options }),
    ...(o.observer === undefined ? {} : { observer: o.observer }),
  });
  vla.node.spin();
  o.log(
    vla.options.autoActivate
      ? 'vla_node: configuring and activating (auto_activate)'
      : 'vla_node: unconfigured; `ros2 lifecycle set /vla_node configure`, then `activate`',
  );
  if (vla.options.autoActivate) vla.autoActivate();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      clearInterval(poll);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      try {
        if (vla.state !== 'finalized') vla.node.shutdown();
      } catch (error) {
        o.log(`vla_node: shutdown: ${error instanceof Error ? error.message : String(error)}`);
      }
      resolve();
    };
    const poll = setInterval(() => {
      if (o.ros.isShutdown() || vla.state === 'finalized') stop();
    }, 500);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  vla.node.destroy();
  if (!o.ros.isShutdown()) o.ros.shutdown();
  return 0;
}
