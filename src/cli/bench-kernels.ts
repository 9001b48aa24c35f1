import { ConfigError } from '../errors.js';
import { encodingLayout } from '../ingest/frame.js';
import { planFor } from '../ingest/raw-kernel.js';
import {
  SYNC_KERNEL_NAMES as KERNEL_NAMES,
  kernelBackend,
  nativeKernels,
  referenceKernels,
  uncheckedKernels,
  type Kernels,
} from '../native/index.js';
import type { CommandSpec } from './command.js';
import { Rng } from '../util/rng.js';

/** The shipped model's sizes. */
export const BENCH_SIZES = {
  tokens: 144,
  dim: 64,
  keep: 36,
  image: 96,
  grid: 12,
  /** ingestFrame: a simulator camera frame (rgb8) to the model's input. */
  camera: 128,
} as const;

type KernelName = (typeof KERNEL_NAMES)[number];

/** Timings of one kernel: median microseconds a call, and whether both backends agree. */
export interface KernelTiming {
  /** The kernel itself: the addon's function and the TypeScript reference, called directly. */
  readonly native_us: number | null;
  readonly reference_us: number;
  /** reference_us / native_us. */
  readonly speedup: number | null;
  /** As the pipeline calls them: behind the same TypeScript argument checks. */
  readonly as_called: {
    readonly native_us: number | null;
    readonly reference_us: number;
    readonly speedup: number | null;
  };
  /** Outputs bit-identical between the backends (null without the addon). */
  readonly identical: boolean | null;
}

export interface BenchKernelsReport {
  readonly backend: 'native' | 'typescript';
  readonly backend_reason: string;
  readonly iterations: number;
  readonly sizes: typeof BENCH_SIZES;
  readonly kernels: Record<KernelName, KernelTiming>;
}

/** One kernel call on fixed inputs, writing into an output of its own per backend. */
interface Workload {
  /** Call the kernel of `impl`, writing into `out`. */
  readonly call: (impl: Kernels, out: Int32Array | Float32Array) => void;
  readonly makeOut: () => Int32Array | Float32Array;
}

/** Deterministic inputs (mulberry32) so every run times the same work. */
function random(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function workloads(): Record<KernelName, Workload> {
  const { tokens: n, dim, keep, image, grid } = BENCH_SIZES;
  const next = random(0x5eed);
  const scores = Float32Array.from({ length: n }, () => next());
  const tokens = Float32Array.from({ length: n * dim }, () => next() * 2 - 1);
  const a = Uint8Array.from({ length: image * image * 3 }, () => Math.floor(next() * 256));
  const b = a.map((v) => (next() < 0.5 ? v : Math.floor(next() * 256)));
  const lut = Float32Array.from({ length: 768 }, (_, i) => ((i % 256) / 255 - 0.5) / 0.25);
  const idx = new Int32Array(keep);
  referenceKernels.topK(scores, keep, idx);
  const { camera } = BENCH_SIZES;
  const frame = Uint8Array.from({ length: camera * camera * 3 }, () => Math.floor(next() * 256));
  const rgb = new Uint8Array(image * image * 3);
  const layout = encodingLayout('rgb8');
  if (layout === undefined) throw new ConfigError('rgb8 has no layout', { field: 'encoding' });
  const plan = planFor(
    layout,
    { width: camera, height: camera, step: camera * 3, bigEndian: false },
    { width: image, height: image, resize: 'stretch' },
  );
  const asInt = (out: Int32Array | Float32Array): Int32Array => out as Int32Array;
  const asFloat = (out: Int32Array | Float32Array): Float32Array => out as Float32Array;
  return {
    topK: {
      call: (k, out) => {
        k.topK(scores, keep, asInt(out));
      },
      makeOut: () => new Int32Array(keep),
    },
    maxMinDiversity: {
      call: (k, out) => {
        k.maxMinDiversity(tokens, n, dim, keep, 0, asInt(out));
      },
      makeOut: () => new Int32Array(keep),
    },
    patchDifference: {
      call: (k, out) => {
        k.patchDifference(a, b, image, image, grid, grid, asFloat(out));
      },
      makeOut: () => new Float32Array(grid * grid),
    },
    normalizeRgb: {
      call: (k, out) => {
        k.normalizeRgb(a, lut, asFloat(out));
      },
      makeOut: () => new Float32Array(image * image * 3),
    },
    gatherRows: {
      call: (k, out) => {
        k.gatherRows(tokens, dim, idx, keep, asFloat(out));
      },
      makeOut: () => new Float32Array(keep * dim),
    },
    ingestFrame: {
      call: (k, out) => {
        k.ingestFrame(frame, plan.header, plan.vTaps, plan.hTaps, rgb, lut, asFloat(out));
      },
      makeOut: () => new Float32Array(image * image * 3),
    },
    countBytePairs: {
      // A JPEG's start-of-scan markers in camera-frame-sized bytes (as src/ingest/jpeg-scans.ts).
      call: (k, out) => {
        asInt(out)[0] = k.countBytePairs(frame, 0, 0xff, 0xda, 100);
      },
      makeOut: () => new Int32Array(1),
    },
  };
}

/** Median microseconds a call over `samples.length` timed calls, after a warm-up. */
function medianMicros(run: () => void, samples: Float64Array): number {
  const warmup = Math.max(50, Math.ceil(samples.length / 10));
  for (let i = 0; i < warmup; i++) run();
  for (let i = 0; i < samples.length; i++) {
    const start = process.hrtime.bigint();
    run();
    samples[i] = Number(process.hrtime.bigint() - start);
  }
  samples.sort();
  const mid = samples.length >> 1;
  const median =
    samples.length % 2 === 1
      ? (samples[mid] ?? 0)
      : ((samples[mid - 1] ?? 0) + (samples[mid] ?? 0)) / 2;
  return median / 1000;
}

function identical(x: Int32Array | Float32Array, y: Int32Array | Float32Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
  return true;
}

/**
 * Time every kernel at the shipped model's sizes on both backends, called directly (the kernels)
 * and through the validating facade (as the pipeline calls them), and check that their outputs
 * are identical.
 *
 * @example const report = benchKernels(2000); report.kernels.topK.speedup;
 */
export function benchKernels(iterations: number): BenchKernelsReport {
  const samples = new Float64Array(iterations);
  const backend = kernelBackend();
  const timings = {} as Record<KernelName, KernelTiming>;
  // Each implementation gets closures of its own, so that no call site the JIT optimises sees
  // two implementations (a polymorphic site slows the reference down by up to 2x).
  const time = (impl: Kernels | undefined, name: KernelName) => {
    if (impl === undefined) return { us: null, out: undefined };
    const { call, makeOut } = workloads()[name];
    const o = makeOut();
    return {
      us: medianMicros(() => {
        call(impl, o);
      }, samples),
      out: o,
    };
  };
  const ratio = (ref: number, native: number | null): number | null =>
    native === null || native <= 0 ? null : ref / native;
  for (const name of KERNEL_NAMES) {
    const ref = time(uncheckedKernels.reference, name);
    const native = time(uncheckedKernels.native, name);
    const refChecked = time(referenceKernels, name);
    const nativeChecked = time(nativeKernels, name);
    const refUs = ref.us ?? 0;
    const refCheckedUs = refChecked.us ?? 0;
    timings[name] = {
      native_us: native.us,
      reference_us: refUs,
      speedup: ratio(refUs, native.us),
      as_called: {
        native_us: nativeChecked.us,
        reference_us: refCheckedUs,
        speedup: ratio(refCheckedUs, nativeChecked.us),
      },
      identical:
        native.out === undefined || ref.out === undefined || nativeChecked.out === undefined
          ? null
          : identical(native.out, ref.out) && identical(nativeChecked.out, ref.out),
    };
  }
  return {
    backend: backend.name,
    backend_reason: backend.reason,
    iterations,
    sizes: BENCH_SIZES,
    kernels: timings,
  };
}

function iterationsOf(value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(
      `Expected a positive integer for --iterations but received ${JSON.stringify(value)}`,
      { field: 'iterations' },
    );
  }
  return n;
}

function humanTable(report: BenchKernelsReport): string {
  const fmt = (v: number | null, unit = ''): string =>
    v === null ? '-' : `${v.toFixed(2)}${unit}`;
  const rows = KERNEL_NAMES.map((name) => {
    const t = report.kernels[name];
    return [
      name,
      fmt(t.native_us),
      fmt(t.reference_us),
      fmt(t.speedup, '×'),
      fmt(t.as_called.native_us),
      fmt(t.as_called.reference_us),
      fmt(t.as_called.speedup, '×'),
      t.identical === null ? '-' : t.identical ? 'yes' : 'NO',
    ];
  });
  const header = [
    'kernel',
    'native µs',
    'reference µs',
    'speedup',
    'checked native µs',
    'checked reference µs',
    'speedup',
    'identical',
  ];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
      .join('  ');
  const { tokens, dim, keep, image, grid } = report.sizes;
  return [
    `backend: ${report.backend} (${report.backend_reason})`,
    `sizes: ${tokens} tokens × ${dim} dims, keep ${keep}; ${image}×${image} images on a ${grid}×${grid} grid; median of ${report.iterations} calls; “checked” = behind the TypeScript argument checks, as the pipeline calls them`,
    '',
    line(header),
    ...rows.map(line),
  ].join('\n');
}

/**
 * `vla-node bench-kernels`: median time a call of each kernel, native and TypeScript reference, at
 * the shipped model's sizes. Exits 1 when the backends' outputs differ.
 */
export const benchKernelsCommand: CommandSpec = {
  name: 'bench kernels',
  summary: 'time the native kernels against the TypeScript reference',
  options: {
    iterations: { type: 'string', default: '20000', help: 'timed calls per kernel and backend' },
  },
  run(values, io) {
    // Through a promise, so that a bad option rejects like the other commands' errors.
    return Promise.resolve().then(() => {
      const iterations = iterationsOf(values.iterations);
      io.progress(`timing ${KERNEL_NAMES.length} kernels, ${iterations} calls each per backend`);
      const report = benchKernels(iterations);
      io.result(report, humanTable(report));
      return KERNEL_NAMES.some((name) => report.kernels[name].identical === false) ? 1 : 0;
    });
  },
};
