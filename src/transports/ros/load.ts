/** Whether ROS 2 is sourced in this environment, and how to source it when it is not. */
export interface RosEnvironment {
  readonly sourced: boolean;
  readonly distro: string | undefined;
  readonly message: string;
}

/** Look at the environment a sourced ROS 2 setup leaves (ROS_DISTRO, AMENT_PREFIX_PATH). */
export function detectRos(env: NodeJS.ProcessEnv = process.env): RosEnvironment {
  const distro = env.ROS_DISTRO;
  const sourced = distro !== undefined && distro !== '' && (env.AMENT_PREFIX_PATH ?? '') !== '';
  return {
    sourced,
    distro,
    message: sourced
      ? `ROS 2 ${distro} is sourced, but this release has no ROS 2 node yet (it lands with the ROS 2 issue); running the built-in simulation demo instead`
      : 'ROS 2 is not sourced (no ROS_DISTRO/AMENT_PREFIX_PATH): running the built-in simulation demo. For the ROS 2 node, `source /opt/ros/<distro>/setup.bash` first',
  };
}
