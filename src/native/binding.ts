/**
 * The native surface: what native/ (the `vla_native` addon, built by node-gyp) exports, and the
 * only place that loads the .node file. Loading never compiles or downloads anything; when the
 * file is missing or cannot load, the result says what was tried, why it failed, and the fix.
 * Import the validating facade in ./index.ts instead of this module.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES, type Kernels } from './kernels.js';

/**
 * The addon's exports: plain functions over TypedArrays that write into the output arrays in
 * place. They do not check their arguments (a bad index reads out of bounds); ./index.ts does.
 */
export type NativeAddon = Kernels;

/** Where the addon is looked for: native/build/Release under the package root (from src/native
 * and dist/native alike). */
export const ADDON_PATH = fileURLToPath(
  new URL('../../native/build/Release/vla_native.node', import.meta.url),
);

/** How to build the addon when it is missing. */
export const BUILD_HINT =
  'run `npm run build:native` in the vla-node package (needs python3, make and g++)';

/** The outcome of loading the addon. */
export type NativeLoad =
  | { readonly addon: NativeAddon; readonly path: string }
  | { readonly addon: undefined; readonly path: string; readonly error: string };

/**
 * Load the addon from `path` (default {@link ADDON_PATH}) and check that it exports every
 * kernel. Never throws: a failure comes back as `{ addon: undefined, path, error }`.
 *
 * @example const load = loadAddon(); if (load.addon === undefined) console.warn(load.error);
 */
export function loadAddon(path: string = ADDON_PATH): NativeLoad {
  const require = createRequire(import.meta.url);
  let exports: unknown;
  try {
    exports = require(path);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
    return { addon: undefined, path, error: `${reason}; ${BUILD_HINT}` };
  }
  const missing = KERNEL_NAMES.filter(
    (name) =>
      typeof exports !== 'object' ||
      exports === null ||
      typeof (exports as Record<string, unknown>)[name] !== 'function',
  );
  if (missing.length > 0) {
    return {
      addon: undefined,
      path,
      error: `the addon does not export ${missing.join(', ')} (a stale build?); ${BUILD_HINT}`,
    };
  }
  return { addon: exports as NativeAddon, path };
}

/** The addon of this process, loaded once when this module is first imported. */
export const nativeLoad: NativeLoad = loadAddon();
