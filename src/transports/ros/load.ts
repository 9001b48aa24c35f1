/**
 * The only place that loads rclnodejs. It is imported lazily, and only when ROS 2 is sourced:
 * without a sourced ROS 2, importing rclnodejs would try to compile its native part.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VlaError } from '../../errors.js';
import { asRosApi, type Rclnodejs, type RosApi } from './api.js';

/** Whether ROS 2 is sourced in this environment, and how to source it when it is not. */
export interface RosEnvironment {
  readonly sourced: boolean;
  readonly distro: string | undefined;
  readonly message: string;
}

/** The command that builds rclnodejs against the sourced ROS 2, in a checkout (every core). */
export const RCLNODEJS_BUILD =
  '(cd node_modules/rclnodejs && npx node-gyp rebuild -j max && node scripts/generate_messages.cjs)';

/** How to make the ROS 2 node available, in one line (the README's robot steps). */
export const ROS_SETUP_HINT = `source ROS 2 first (\`source /opt/ros/<distro>/setup.bash\`), then build rclnodejs against it in this checkout: \`${RCLNODEJS_BUILD}\` (see README, "On a robot with ROS 2")`;

/** Look at the environment a sourced ROS 2 setup leaves (ROS_DISTRO, AMENT_PREFIX_PATH). */
export function detectRos(env: NodeJS.ProcessEnv = process.env): RosEnvironment {
  const distro = env.ROS_DISTRO;
  const sourced = distro !== undefined && distro !== '' && (env.AMENT_PREFIX_PATH ?? '') !== '';
  return {
    sourced,
    distro,
    message: sourced
      ? `ROS 2 ${distro} is sourced`
      : `ROS 2 is not sourced (no ROS_DISTRO/AMENT_PREFIX_PATH): ${ROS_SETUP_HINT}`,
  };
}

/** rclnodejs cannot be used here: ROS 2 is not sourced or rclnodejs's native part did not load. */
export class RosUnavailableError extends VlaError {
  constructor(message: string, cause?: unknown) {
    super('ROS_UNAVAILABLE', message, { field: 'rclnodejs', cause });
  }
}

/**
 * Why rclnodejs's native part cannot load without being compiled first, or undefined when a build
 * (`build/Release/rclnodejs.node`) or a prebuilt binary for this ROS 2 distro, OS release and
 * architecture is there. rclnodejs compiles itself on import when neither is, which takes minutes
 * and fails without a sourced ROS 2, so the loader asks first.
 */
export function missingNativeBuild(
  env: NodeJS.ProcessEnv = process.env,
  rclnodejsRoot?: string,
): string | undefined {
  let root: string;
  try {
    root = rclnodejsRoot ?? join(dirname(fileURLToPath(import.meta.resolve('rclnodejs'))), '..');
  } catch {
    return 'rclnodejs is not installed (`npm ci` installs it as an optional dependency without running its install script; reinstall with `npm ci`)';
  }
  const built = join(root, 'build', 'Release', 'rclnodejs.node');
  if (existsSync(built)) {
    // A build that does not load (ROS 2's libraries not on the library path: ROS_DISTRO set but
    // setup.bash not sourced in this shell) makes rclnodejs delete it and rebuild in place
    // (`npm run clean`), which destroys a working build; load it here first.
    try {
      createRequire(import.meta.url)(built);
    } catch (error) {
      return `rclnodejs's native build (build/Release/rclnodejs.node) does not load (${firstLine(error)}); source ROS 2's setup.bash in this shell`;
    }
    return undefined;
  }
  let codename = 'unknown';
  try {
    codename =
      /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.trim() ??
      codename;
  } catch {
    // not Linux, or no os-release: no prebuilt binary applies
  }
  const tag = `${env.ROS_DISTRO ?? ''}-${codename}-${process.arch}`;
  const prebuilt = join(
    root,
    'prebuilds',
    `${process.platform}-${process.arch}`,
    `${tag}-node-rclnodejs.node`,
  );
  if (process.platform === 'linux' && existsSync(prebuilt)) return undefined;
  return `rclnodejs has no native build here (no build/Release/rclnodejs.node and no prebuilt binary for ${tag})`;
}

export interface LoadRosOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Imports rclnodejs; replaced in tests. */
  readonly importer?: () => Promise<unknown>;
  /** The installed rclnodejs package folder (tests); resolved from this package by default. */
  readonly rclnodejsRoot?: string;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n')[0] ?? text).trim();
}

/**
 * Load rclnodejs as a {@link RosApi}. Throws one {@link RosUnavailableError} whose message says
 * that ROS 2 must be sourced and how, when ROS 2 is not sourced or rclnodejs does not load.
 *
 * @example
 * const ros = await loadRos();
 * await ros.init();
 */
export async function loadRos(options: LoadRosOptions = {}): Promise<RosApi> {
  const environment = detectRos(options.env ?? process.env);
  if (!environment.sourced) {
    throw new RosUnavailableError(
      `The ROS 2 node needs rclnodejs, which needs a sourced ROS 2, but ${environment.message}`,
    );
  }
  if (options.importer === undefined) {
    const missing = missingNativeBuild(options.env ?? process.env, options.rclnodejsRoot);
    if (missing !== undefined) {
      throw new RosUnavailableError(
        `ROS 2 ${environment.distro ?? ''} is sourced, but ${missing}: ${ROS_SETUP_HINT}`,
      );
    }
  }
  let loaded: unknown;
  try {
    loaded = await (options.importer ?? (() => import('rclnodejs')))();
  } catch (error) {
    throw new RosUnavailableError(
      `The ROS 2 node needs rclnodejs, which did not load with ROS 2 ${environment.distro ?? ''} (${firstLine(error)}): ${ROS_SETUP_HINT}`,
      error,
    );
  }
  const module = loaded as Rclnodejs & { readonly default?: Rclnodejs };
  const api = module.default ?? module;
  if (
    typeof api.init !== 'function' ||
    typeof (api.lifecycle as Partial<Rclnodejs['lifecycle']> | undefined)?.LifecycleNode !==
      'function'
  ) {
    throw new RosUnavailableError(
      `Expected the rclnodejs module (init, lifecycle.LifecycleNode) but received something else: ${ROS_SETUP_HINT}`,
    );
  }
  return asRosApi(api);
}
