/**
 * Node/V8 flags for the commands that serve the bridge, and the relaunch that applies them.
 *
 * The bridge's garbage is mostly image bytes held outside V8's heap: ZeroMQ's message buffers and
 * sharp's decoded frames, about 75 KB per 128×128 request. V8 counts such bytes toward starting a
 * full (mark-compact) collection until a young-generation collection frees the small objects that
 * own them. With Node's default 16 MB semi-spaces that takes hundreds of requests, so `bench serve`
 * ran about ten full collections a second and its resident memory grew by a third; with 1 MB
 * semi-spaces the buffers go at each (cheap) young collection: 11 full collections in a run that
 * had 244, throughput up 25–35% and p99 down by half (docs/bridge.md, "Performance").
 *
 * V8 reads heap sizes only when the process starts, so `bin/vla-node.js` starts the command as a
 * child process with the flags when they are missing. A user's own `--max-semi-space-size`, on the
 * command line or in NODE_OPTIONS, wins, and no relaunch happens.
 */

import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** The flags the server commands run with. */
export const SERVER_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=1']);

/** Commands that run the bridge server (first one or two words of argv). */
const SERVER_COMMANDS: readonly (readonly string[])[] = [['serve'], ['bench', 'serve']];

/** The option a flag sets (`--max-semi-space-size=1` → `--max-semi-space-size`, `_` as `-`). */
function optionOf(flag: string): string {
  return (flag.split('=')[0] ?? flag).replaceAll('_', '-');
}

/**
 * The flags of {@link SERVER_NODE_FLAGS} that a process started with `execArgv` and
 * `nodeOptions` (the NODE_OPTIONS variable) lacks for running `argv`: none for other commands,
 * none whose option the user set to any value, and none under a debugger (`--inspect*`).
 *
 * @example
 * missingNodeFlags(['serve'], [], undefined); // ['--max-semi-space-size=1']
 * missingNodeFlags(['sim'], [], undefined); // []
 */
export function missingNodeFlags(
  argv: readonly string[],
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  const serving = SERVER_COMMANDS.some((words) => words.every((w, i) => argv[i] === w));
  if (!serving) return [];
  const given = new Set(
    [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].filter((f) => f !== '').map(optionOf),
  );
  // Under a debugger the process being debugged must be the server itself: no relaunch.
  if ([...given].some((option) => option.startsWith('--inspect'))) return [];
  return SERVER_NODE_FLAGS.filter((flag) => !given.has(optionOf(flag)));
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Run `script argv` in a child Node process with `flags` added, sharing this process's stdio, and
 * resolve when it exits: with its exit code, or after re-raising the signal that ended it (so
 * this process ends the same way). SIGINT, SIGTERM and SIGHUP sent to this process are passed on
 * (a terminal's Ctrl-C reaches both; the server commands ignore a repeat while shutting down).
 * The child also gets an IPC channel: when this process dies without passing a signal on (e.g.
 * SIGKILL), the child sees the channel close and shuts down as on SIGTERM ({@link watchParent}).
 */
export function relaunch(
  script: string,
  flags: readonly string[],
  argv: readonly string[],
): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, script, ...argv], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [LAUNCHER_ENV]: String(process.pid) },
  });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const s of FORWARDED) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      if (signal === null) {
        resolve(code ?? 1);
        return;
      }
      // Ended by a signal this process passes on: end the same way (the default action, as no
      // listener is left). Any other signal (a crash, the OOM killer) is reported as 128 + n.
      if (FORWARDED.includes(signal)) process.kill(process.pid, signal);
      resolve(128 + constants.signals[signal]);
    });
  });
}

/** Set by {@link relaunch} in its child's environment: the launcher's process id. */
const LAUNCHER_ENV = 'VLA_NODE_LAUNCHER_PID';

/**
 * In a child started by {@link relaunch}: raise SIGTERM on this process when the launcher's IPC
 * channel closes (the launcher died), so a server shuts down instead of outliving it. The channel
 * does not keep the process alive. Does nothing in any other process, including one forked with
 * an IPC channel of its own by a supervisor (PM2, a test harness); the marker is removed from the
 * environment so that processes this one starts do not inherit it.
 */
export function watchParent(): void {
  const launcher = process.env[LAUNCHER_ENV];
  const channel = process.channel;
  if (launcher === undefined || channel === undefined) return;
  Reflect.deleteProperty(process.env, LAUNCHER_ENV);
  channel.unref();
  process.once('disconnect', () => {
    process.kill(process.pid, 'SIGTERM');
  });
}
