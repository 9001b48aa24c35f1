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
  /** Where the stop signals come from; `process` by default (tests pass an EventEmitter). */
  readonly signals?: Pick<NodeJS.Process, 'on' | 'off'>;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Initialise rclnodejs, create the managed node, spin it, configure and activate it when
 * `ros.auto_activate` is set, and resolve with the exit code (0) once it is finalized (lifecycle
 * `shutdown`), ROS 2 is shut down, or SIGINT/SIGTERM arrives.
 *
 * rclnodejs installs its own SIGINT handler, which shuts every context down and so destroys the
 * node under us; reading the lifecycle state of a destroyed node then crashes in native code. It
 * is removed here: on a signal the node goes through its lifecycle `shutdown` (releasing the
 * model) while it is alive, then it is destroyed and rclnodejs is shut down, in that order.
 */
export async function runRosNode(o: RunRosNodeOptions): Promise<number> {
  await o.ros.init(undefined, o.argv);
  o.ros.removeSignalHandlers();
  const signals = o.signals ?? process;
  const vla = new VlaRosNode({
    ros: o.ros,
    config: o.config,
    createPipeline: o.createPipeline,
    ...(o.options === undefined ? {} : { options: o.options }),
    ...(o.observer === undefined ? {} : { observer: o.observer }),
  });
  vla.node.spin();
  // The node as `ros2 lifecycle` names it, after the launch file's or the user's remaps.
  const ns = vla.node.namespace();
  const path = `${ns === '/' ? '' : ns}/${vla.node.name()}`;
  o.log(
    vla.options.autoActivate
      ? 'vla_node: configuring and activating (auto_activate)'
      : `vla_node: unconfigured; \`ros2 lifecycle set ${path} configure\`, then \`activate\``,
  );
  if (vla.options.autoActivate) vla.autoActivate();
  const reason = await new Promise<string>((resolve) => {
    const stop = (why: string): void => {
      clearInterval(poll);
      for (const s of STOP_SIGNALS) signals.off(s, handlers[s]);
      resolve(why);
    };
    const handlers = {
      SIGINT: () => {
        stop('SIGINT');
      },
      SIGTERM: () => {
        stop('SIGTERM');
      },
    };
    const poll = setInterval(() => {
      if (o.ros.isShutdown()) stop('ROS 2 was shut down');
      else if (vla.state === 'finalized') stop('lifecycle shutdown');
    }, 200);
    for (const s of STOP_SIGNALS) signals.on(s, handlers[s]);
  });
  o.log(`vla_node: stopping (${reason})`);
  if (!o.ros.isShutdown()) {
    try {
      vla.finalize();
    } catch (error) {
      o.log(`vla_node: shutdown: ${error instanceof Error ? error.message : String(error)}`);
    }
    vla.node.destroy();
    o.ros.shutdown();
  }
  await vla.released();
  return 0;
}
