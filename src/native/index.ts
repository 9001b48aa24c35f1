/**
 * The kernels of token pruning and ingest, behind one typed facade: the native addon when it is
 * built and loads, else the TypeScript reference, both behind the same argument checks.
 *
 * @example
 * import { kernels, warnOnce } from '../native/index.js';
 * warnOnce((message) => logger.warn(message));
 * kernels.topK(saliency, 36, positions);
 */
import { nativeLoad, type NativeBuildName } from './binding.js';
import type { Kernels } from './kernels.js';
import { reference } from './reference.js';
import { validated } from './validate.js';

export type { IngestJob, Kernels } from './kernels.js';
export { KERNEL_NAMES, SYNC_KERNEL_NAMES } from './kernels.js';

/** The TypeScript reference kernels (validated). */
export const referenceKernels: Kernels = validated(reference);

/** The native kernels (validated), or undefined when the addon did not load. */
export const nativeKernels: Kernels | undefined =
  nativeLoad.addon === undefined ? undefined : validated(nativeLoad.addon);

/**
 * Both implementations without the argument checks, for benchmarking the kernels themselves: the
 * caller must pass valid arguments (the native ones do not check bounds).
 */
export const uncheckedKernels: {
  readonly native: Kernels | undefined;
  readonly reference: Kernels;
} = { native: nativeLoad.addon, reference };

/** The kernels to use: native when loaded, else the TypeScript reference. */
export const kernels: Kernels = nativeKernels ?? referenceKernels;

/** Which backend {@link kernels} runs on, and why. */
export interface KernelBackend {
  readonly name: 'native' | 'typescript';
  /** The native build loaded (`baseline`, `avx2`, `avx512`), or undefined on the fallback. */
  readonly build?: NativeBuildName;
  readonly reason: string;
}

const backend: KernelBackend =
  nativeLoad.addon === undefined
    ? {
        name: 'typescript',
        reason: `native kernels not loaded from ${nativeLoad.path}: ${nativeLoad.error}`,
      }
    : {
        name: 'native',
        build: nativeLoad.build,
        reason: `loaded ${nativeLoad.path} (${nativeLoad.build} build: ${nativeLoad.choice})`,
      };

/** Which backend {@link kernels} runs on, and why (the path tried and, on fallback, the error). */
export function kernelBackend(): KernelBackend {
  return backend;
}

let warned = false;

/**
 * On fallback to the TypeScript kernels, tell `log` once per process which path was tried and
 * why it failed; otherwise (or when already told) do nothing.
 */
export function warnOnce(log: (message: string) => void): void {
  if (warned || backend.name === 'native') return;
  warned = true;
  log(`vla-node: ${backend.reason}; using the TypeScript kernels`);
}
