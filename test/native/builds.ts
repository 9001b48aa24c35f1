/**
 * The native builds the tests compare with the TypeScript reference: every build of the addon
 * that exists and that this CPU runs (baseline, avx2, avx512), so that the code paths a copied
 * install would take on an older CPU are checked here too. Without the addon a native suite
 * skips, saying why; under CI (CI=true) it fails instead, so a broken build cannot pass CI.
 */
import { describe, it } from 'vitest';
import {
  ADDON_PATH,
  loadBuild,
  nativeLoad,
  runnableBuilds,
  type NativeBuildName,
} from '../../src/native/binding.js';
import { kernelBackend, type Kernels } from '../../src/native/index.js';
import { validated } from '../../src/native/validate.js';

/** Whether this run is CI's (the variable CI providers set; .ci/run runs under it too). */
export const IS_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** Every runnable build, validated as the facade does, fastest first. */
export const NATIVE_BUILDS: readonly (readonly [NativeBuildName, Kernels])[] =
  nativeLoad.addon === undefined
    ? []
    : runnableBuilds(nativeLoad.addon.cpuFeatures(), ADDON_PATH).flatMap(({ name, path }) => {
        const load = loadBuild(path);
        if ('error' in load) throw new Error(`native build ${name} at ${path}: ${load.error}`);
        return [[name, validated(load.addon)] as const];
      });

/**
 * True when the suite `label` must skip because the addon is not built: it says why (console),
 * and under CI registers a failing test with the reason instead of skipping quietly.
 */
export function skipWithoutNative(label: string): boolean {
  if (nativeLoad.addon !== undefined) return false;
  const reason = `${label}: the native addon is not loaded (${kernelBackend().reason})`;
  if (IS_CI) {
    describe(label, () => {
      it('needs the native addon under CI (npm run build:native)', () => {
        throw new Error(reason);
      });
    });
  } else {
    console.warn(`${reason}; skipped`);
  }
  return true;
}
