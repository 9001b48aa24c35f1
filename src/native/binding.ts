/**
 * The native surface: what native/ (the `vla_native` addon, built by node-gyp) exports, and the
 * only place that loads a .node file. Loading never compiles or downloads anything; when the
 * file is missing or cannot load, the result says what was tried, why it failed, and the fix.
 * Import the validating facade in ./index.ts instead of this module.
 *
 * The addon is built more than once (native/binding.gyp): `vla_native.node` for a portable
 * baseline that any CPU of the architecture runs, and on x86-64 `vla_native_avx2.node` and
 * `vla_native_avx512.node`. The baseline reports the CPU's features (`cpuFeatures`, read with the
 * compiler's CPUID built-ins, which also check that the OS saves the wider registers); the
 * fastest build the CPU supports is loaded, so an install copied to an older CPU runs the
 * baseline instead of dying with SIGILL.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES, type Kernels } from './kernels.js';

/** What the CPU running this process supports (x86-64; all false elsewhere). */
export interface CpuFeatures {
  /** The build that answered: `baseline`, `avx2` or `avx512`. */
  readonly build: string;
  readonly arch: string;
  readonly avx2: boolean;
  readonly fma: boolean;
  readonly bmi: boolean;
  readonly bmi2: boolean;
  readonly avx512f: boolean;
  readonly avx512bw: boolean;
  readonly avx512dq: boolean;
  readonly avx512vl: boolean;
  readonly avx512cd: boolean;
  readonly avx512vbmi: boolean;
}

/**
 * The addon's exports: plain functions over TypedArrays that write into the output arrays in
 * place. They do not check their arguments (a bad index reads out of bounds); ./index.ts does.
 */
export type NativeAddon = Kernels & { cpuFeatures(): CpuFeatures };

/** Where the baseline build is looked for: native/build/Release under the package root (from
 * src/native and dist/native alike). */
export const ADDON_PATH = fileURLToPath(
  new URL('../../native/build/Release/vla_native.node', import.meta.url),
);

/** How to build the addon when it is missing. */
export const BUILD_HINT =
  'run `npm run build:native` in the vla-node package (needs python3, make and g++)';

/** The builds beyond the baseline, fastest first, with the CPU features each needs. */
export const NATIVE_BUILDS = [
  {
    name: 'avx512',
    file: 'vla_native_avx512.node',
    needs: [
      'avx2',
      'fma',
      'bmi',
      'bmi2',
      'avx512f',
      'avx512bw',
      'avx512dq',
      'avx512vl',
      'avx512cd',
      'avx512vbmi',
    ],
  },
  { name: 'avx2', file: 'vla_native_avx2.node', needs: ['avx2', 'fma', 'bmi', 'bmi2'] },
] as const satisfies readonly {
  name: string;
  file: string;
  needs: readonly (keyof CpuFeatures)[];
}[];

/** A build's name: `baseline` or one of {@link NATIVE_BUILDS}. */
export type NativeBuildName = 'baseline' | (typeof NATIVE_BUILDS)[number]['name'];

/** The outcome of loading the addon: the build chosen and why. */
export type NativeLoad =
  | {
      readonly addon: NativeAddon;
      readonly path: string;
      readonly build: NativeBuildName;
      /** Why this build: the features found, or what the faster builds lacked. */
      readonly choice: string;
    }
  | { readonly addon: undefined; readonly path: string; readonly error: string };

/** The file of build `name` next to the baseline at `path`. */
export function buildPath(name: NativeBuildName, path: string = ADDON_PATH): string {
  if (name === 'baseline') return path;
  const file = NATIVE_BUILDS.find((b) => b.name === name)?.file ?? '';
  return path.replace(/[^/\\]*$/, file);
}

function requireAddon(path: string): { exports: unknown } | { error: string } {
  const require = createRequire(import.meta.url);
  try {
    return { exports: require(path) as unknown };
  } catch (error) {
    return { error: (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '' };
  }
}

function missingKernels(exports: unknown): string[] {
  return [...KERNEL_NAMES, 'cpuFeatures'].filter(
    (name) =>
      typeof exports !== 'object' ||
      exports === null ||
      typeof (exports as Record<string, unknown>)[name] !== 'function',
  );
}

/**
 * Load one build's file at `path` as it is, without asking the CPU (the caller must know that the
 * CPU runs it). Never throws.
 */
export function loadBuild(path: string): { addon: NativeAddon } | { error: string } {
  const loaded = requireAddon(path);
  if ('error' in loaded) return { error: `${loaded.error}; ${BUILD_HINT}` };
  const missing = missingKernels(loaded.exports);
  if (missing.length > 0) {
    return {
      error: `the addon does not export ${missing.join(', ')} (a stale build?); ${BUILD_HINT}`,
    };
  }
  return { addon: loaded.exports as NativeAddon };
}

/** The builds this CPU runs and that exist next to `path`, fastest first, baseline last. */
export function runnableBuilds(
  features: CpuFeatures,
  path: string = ADDON_PATH,
): { name: NativeBuildName; path: string }[] {
  const faster = NATIVE_BUILDS.filter(
    (b) => b.needs.every((f) => features[f]) && existsSync(buildPath(b.name, path)),
  ).map((b) => ({ name: b.name, path: buildPath(b.name, path) }));
  return [...faster, { name: 'baseline', path }];
}

/**
 * Load the addon: the baseline build at `path` (default {@link ADDON_PATH}), then the fastest
 * build next to it that this CPU supports. `only` (or the environment variable
 * `VLA_NODE_NATIVE_BUILD`) pins a build, for comparing them; a pinned build the CPU lacks
 * features for is refused. Never throws: a failure comes back as `{ addon: undefined, path,
 * error }`; a faster build that fails to load leaves the baseline in use, with the reason.
 *
 * @example const load = loadAddon(); if (load.addon === undefined) console.warn(load.error);
 */
export function loadAddon(
  path: string = ADDON_PATH,
  only: string | undefined = process.env.VLA_NODE_NATIVE_BUILD,
): NativeLoad {
  const base = loadBuild(path);
  if ('error' in base) return { addon: undefined, path, error: base.error };
  const features = base.addon.cpuFeatures();
  const lacking = (needs: readonly (keyof CpuFeatures)[]): string[] =>
    needs.filter((f) => !features[f]);
  if (only !== undefined && only !== '' && only !== 'baseline') {
    const pinned = NATIVE_BUILDS.find((b) => b.name === only);
    if (pinned === undefined) {
      const names = ['baseline', ...NATIVE_BUILDS.map((b) => b.name)].join('|');
      return {
        addon: undefined,
        path,
        error: `VLA_NODE_NATIVE_BUILD must be ${names} but is ${JSON.stringify(only)}`,
      };
    }
    const missing = lacking(pinned.needs);
    const file = buildPath(pinned.name, path);
    if (missing.length > 0) {
      return { addon: undefined, path: file, error: `this CPU lacks ${missing.join(', ')}` };
    }
    const loaded = loadBuild(file);
    if ('error' in loaded) return { addon: undefined, path: file, error: loaded.error };
    return { addon: loaded.addon, path: file, build: pinned.name, choice: 'pinned' };
  }
  if (only === 'baseline') {
    return { addon: base.addon, path, build: 'baseline', choice: 'pinned' };
  }
  const skipped: string[] = [];
  for (const b of NATIVE_BUILDS) {
    const missing = lacking(b.needs);
    const file = buildPath(b.name, path);
    if (missing.length > 0) {
      skipped.push(`${b.name}: this CPU lacks ${missing.join(', ')}`);
      continue;
    }
    if (!existsSync(file)) {
      skipped.push(`${b.name}: not built`);
      continue;
    }
    const loaded = loadBuild(file);
    if ('error' in loaded) {
      skipped.push(`${b.name}: ${loaded.error}`);
      continue;
    }
    return {
      addon: loaded.addon,
      path: file,
      build: b.name,
      choice: `this CPU has ${b.needs.join(', ')}`,
    };
  }
  return {
    addon: base.addon,
    path,
    build: 'baseline',
    choice:
      features.arch === 'x64'
        ? `portable x86-64 build (${skipped.join('; ')})`
        : 'portable build (no faster builds on this architecture)',
  };
}

/** The addon of this process, loaded once when this module is first imported. */
export const nativeLoad: NativeLoad = loadAddon();

/**
 * What is wrong with this install's native builds, for CI (`.ci/run`): the addon did not load,
 * or a faster build this CPU supports is missing (a partial build); undefined when the fastest
 * build runs. npm's install only warns when the build fails, so CI asks this explicitly.
 */
export function nativeBuildProblem(load: NativeLoad = nativeLoad): string | undefined {
  if (load.addon === undefined) return `the native addon did not load: ${load.error}`;
  const best = runnableBuilds(load.addon.cpuFeatures())[0]?.name ?? 'baseline';
  const wanted = NATIVE_BUILDS.filter((b) => b.needs.every((f) => load.addon.cpuFeatures()[f])).map(
    (b) => b.name,
  );
  const missing = wanted.filter((name) => !existsSync(buildPath(name, ADDON_PATH)));
  if (missing.length > 0) {
    return `the native builds ${missing.join(', ')} this CPU supports are missing: ${BUILD_HINT}`;
  }
  if (load.build !== best && load.choice !== 'pinned') {
    return `the ${load.build} build is in use but ${best} runs here (${load.choice})`;
  }
  return undefined;
}
