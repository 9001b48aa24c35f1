/**
 * `--foxglove [PORT]` for the commands that run the pipeline: the flag, its parameters
 * (`foxglove.*`) and starting the live view (src/transports/foxglove) with the run.
 */

import { join } from 'node:path';
import { PACKAGE_ROOT, type VlaConfig } from '../config/index.js';
import type { Manifest } from '../model/manifest.js';
import { FoxgloveView, overlayGeometry, LiveServer } from '../transports/foxglove/index.js';
import type { CommandIo, OptionSpec, OptionValues } from './command.js';

export const FOXGLOVE_OPTIONS = {
  foxglove: {
    type: 'string',
    help: 'start the Foxglove live view (foxglove.enabled) on PORT (foxglove.port, default 8765) of foxglove.host (127.0.0.1); PORT may be left out',
  },
} as const satisfies Record<string, OptionSpec>;

/** Where the layout for the live view is (relative to the package root; shipped in the package). */
export const FOXGLOVE_LAYOUT = 'docs/foxglove/vla-node.layout.json';

/**
 * Lets `--foxglove` go without a value, as `--foxglove [PORT]` promises: a bare `--foxglove`
 * (last, or followed by anything but a port number) becomes `--foxglove=`.
 *
 * @example
 * bareFoxgloveFlag(['sim', '--foxglove', '--episodes', '2']); // ['sim', '--foxglove=', '--episodes', '2']
 */
export function bareFoxgloveFlag(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    out.push(
      arg === '--foxglove' && (next === undefined || !/^\d+$/.test(next)) ? '--foxglove=' : arg,
    );
  }
  return out;
}

/** The command's values with `--foxglove [PORT]` as `--set` overrides of `foxglove.*`. */
export function withFoxgloveFlag(values: OptionValues): OptionValues {
  const flag = values.foxglove;
  if (typeof flag !== 'string') return values;
  const sets = Array.isArray(values.set) ? values.set : [];
  const port = flag.trim();
  return {
    ...values,
    set: [...sets, 'foxglove.enabled=true', ...(port === '' ? [] : [`foxglove.port=${port}`])],
  };
}

/** A started live view: the observer to hand to the runner, and its server to close. */
export interface LiveView {
  readonly view: FoxgloveView;
  readonly server: LiveServer;
  /** The command's I/O with each progress line also sent to the view's log channel. */
  readonly io: CommandIo;
  close(): Promise<void>;
}

/**
 * Start the live view when `foxglove.enabled` is set (by the flag or the parameter file); undefined
 * otherwise. `manifest` gives the action names and, with `overlay`, the geometry of the kept-token
 * overlay.
 */
export async function startLiveView(
  config: Readonly<VlaConfig>,
  io: CommandIo,
  manifest: Pick<Manifest, 'action' | 'image' | 'patch_grid'>,
  overlay = true,
): Promise<LiveView | undefined> {
  const f = config.foxglove;
  if (!f.enabled) return undefined;
  const server = await LiveServer.start({
    host: f.host,
    port: f.port,
    maxClientBufferBytes: f.max_client_buffer_bytes,
    log: (line) => {
      io.progress(line);
    },
  });
  const view = FoxgloveView.create(server, {
    actionNames: manifest.action.names,
    ...(overlay
      ? {
          overlay: overlayGeometry(manifest),
        }
      : {}),
  });
  const loopback = /^(127\.|::1$|localhost$)/.test(f.host);
  io.progress(
    `Foxglove live view on ${server.url}: in Foxglove or Lichtblick, Open connection → Foxglove WebSocket → ${server.url}; layout ${join(PACKAGE_ROOT, FOXGLOVE_LAYOUT)}${loopback ? '' : ' — WARNING: not loopback, anyone who can reach this address sees the camera'}`,
  );
  const teed: CommandIo = {
    json: io.json,
    progress: (line) => {
      io.progress(line);
      view.onLog(/fail|error/i.test(line) ? 'warn' : 'info', line);
    },
    result: (value, human) => {
      io.result(value, human);
    },
  };
  return { view, server, io: teed, close: () => server.close() };
}
