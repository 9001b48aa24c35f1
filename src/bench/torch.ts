import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ModelPackage } from '../model/manifest.js';
import type { LatencySummary } from '../runtime/latency.js';
import type { BenchObservation } from './frames.js';
import { repeated, type Repeated } from './overhead.js';
import { round } from '../util/stats.js';

const run = promisify(execFile);

export type TorchResult =
  | {
      readonly available: true;
      readonly torch: string;
      readonly threads: number;
      readonly latency: Repeated;
      /** Largest |PyTorch − node| over all actions: ~1e-6 means the same weights and the same maths. */
      readonly max_abs_diff_vs_node: number;
    }
  | { readonly available: false; readonly reason: string };

export interface TorchOptions {
  readonly python: string;
  /** The recipe's bench_torch.py (next to model.py). */
  readonly script: string;
  /** The PyTorch checkpoint the package's ONNX graphs were exported from. */
  readonly checkpoint: string;
  readonly threads: number;
  readonly repeats: number;
  /** The Python modules the recipe imports (default {@link TORCH_MODULES}). */
  readonly modules?: readonly string[];
}

/** What every recipe's bench_torch.py imports. */
export const TORCH_MODULES = ['torch', 'numpy'] as const;

/**
 * Why `python` cannot import `modules`, naming the first missing one, or undefined when it can.
 *
 * @example await pythonModulesMissing('/usr/bin/python3', ['torch', 'numpy', 'scipy']);
 */
export async function pythonModulesMissing(
  python: string,
  modules: readonly string[] = TORCH_MODULES,
): Promise<string | undefined> {
  if (!existsSync(python)) return `Python not found at ${python}`;
  for (const module of modules) {
    try {
      await run(python, ['-c', `import ${module}`], { timeout: 60_000 });
    } catch {
      return `${python} cannot import ${module} (Debian: apt-get install python3-torch python3-scipy libopenblas0-pthread)`;
    }
  }
  return undefined;
}

/**
 * Why the PyTorch reference cannot run (Python, the script, PyTorch or the checkpoint missing), or
 * undefined when it can.
 */
export async function torchUnavailable(options: TorchOptions): Promise<string | undefined> {
  for (const [what, path] of [
    ['Python', options.python],
    ['bench_torch.py', options.script],
    ['the PyTorch checkpoint', options.checkpoint],
  ] as const) {
    if (!existsSync(path)) return `${what} not found at ${path}`;
  }
  return pythonModulesMissing(options.python, options.modules);
}

/** A typed array's bytes, to write as a little-endian array file numpy reads. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** What a recipe's bench_torch.py prints (its last stdout line), beside what a family adds. */
export interface TorchOutput {
  readonly torch: string;
  readonly threads: number;
  readonly repeats: readonly {
    readonly mean: number;
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly max: number;
    readonly count: number;
  }[];
  readonly max_abs_diff_vs_node: number;
  readonly [extra: string]: unknown;
}

/**
 * Run a recipe's bench_torch.py on the array files in `inputs` (written to a temporary folder),
 * once per repeat, with `args` after the common ones: each process's JSON, or why there is none.
 */
export async function runTorchProcesses(
  model: ModelPackage | { readonly dir: string },
  inputs: Readonly<Record<string, ArrayBufferView>>,
  args: readonly string[],
  options: TorchOptions,
): Promise<
  | { readonly available: true; readonly outputs: readonly TorchOutput[] }
  | { readonly available: false; readonly reason: string }
> {
  const missing = await torchUnavailable(options);
  if (missing !== undefined) return { available: false, reason: missing };
  const dir = await mkdtemp(join(tmpdir(), 'vla-bench-torch-'));
  try {
    for (const [name, array] of Object.entries(inputs)) {
      await writeFile(join(dir, name), bytesOf(array));
    }
    // One Python process per repeat: PyTorch's speed differs from process to process on this
    // kind of machine (up to 20%) while it is steady within one, so the spread must span processes.
    const outputs: TorchOutput[] = [];
    for (let r = 0; r < options.repeats; r++) {
      const { stdout } = await run(
        options.python,
        [
          options.script,
          '--package',
          model.dir,
          '--checkpoint',
          options.checkpoint,
          '--inputs',
          dir,
          '--threads',
          String(options.threads),
          '--repeats',
          '1',
          ...args,
        ],
        {
          timeout: 20 * 60_000,
          maxBuffer: 1 << 24,
          // Debian's PyTorch does its matrix products in OpenBLAS, whose pthread build starts one
          // thread per core unless told: every pool gets the node's thread count.
          env: {
            ...process.env,
            OMP_NUM_THREADS: String(options.threads),
            OPENBLAS_NUM_THREADS: String(options.threads),
            MKL_NUM_THREADS: String(options.threads),
          },
        },
      );
      const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Partial<TorchOutput>;
      if (!Array.isArray(parsed.repeats) || typeof parsed.max_abs_diff_vs_node !== 'number')
        throw new Error(`${options.script} printed no repeats and max_abs_diff_vs_node`);
      outputs.push(parsed as TorchOutput);
    }
    if (outputs.length === 0) throw new Error('no repeats');
    return { available: true, outputs };
  } catch (error) {
    return { available: false, reason: torchFailure(error) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function torchFailure(error: unknown): string {
  const reason =
    error instanceof Error ? error.message.split('\n').slice(-3).join(' ') : String(error);
  return `the PyTorch reference failed: ${reason}`;
}

/** The timing and the largest action difference over the processes' outputs. */
export function torchResult(outputs: readonly TorchOutput[]): TorchResult {
  const first = outputs[0];
  if (first === undefined) return { available: false, reason: torchFailure('no output') };
  const summaries: LatencySummary[] = outputs.flatMap((o) =>
    o.repeats.map((r) => ({
      count: r.count,
      mean: round(r.mean),
      p50: round(r.p50),
      p95: round(r.p95),
      p99: round(r.p99),
      max: round(r.max),
    })),
  );
  return {
    available: true,
    torch: first.torch,
    threads: first.threads,
    latency: repeated(summaries),
    max_abs_diff_vs_node: Math.max(...outputs.map((o) => o.max_abs_diff_vs_node)),
  };
}

/**
 * Run a recipe's bench_torch.py on the array files in `inputs` (written to a temporary folder),
 * once per repeat, with `args` after the common ones; the result, or why it is not available.
 */
export async function runTorchReference(
  model: ModelPackage | { readonly dir: string },
  inputs: Readonly<Record<string, ArrayBufferView>>,
  args: readonly string[],
  options: TorchOptions,
): Promise<TorchResult> {
  const r = await runTorchProcesses(model, inputs, args, options);
  return r.available ? torchResult(r.outputs) : r;
}

/**
 * The PyTorch eager reference: the training recipe's model with the package's checkpoint, run by
 * `bench_torch.py` on the same observations (RGB8 at the model's size, states, instructions), with
 * the same thread count. Not available (with the reason) when Python, PyTorch or the checkpoint is
 * missing.
 */
export async function measureTorch(
  model: ModelPackage,
  observations: readonly BenchObservation[],
  nodeActions: readonly Float32Array[],
  options: TorchOptions,
): Promise<TorchResult> {
  const m = model.manifest;
  const L = m.tokenizer.max_length;
  const frames = new Uint8Array(observations.length * m.image.width * m.image.height * 3);
  const states = new Float32Array(observations.length * m.state.names.length);
  const ids = new BigInt64Array(observations.length * L);
  const expected = new Float32Array(observations.length * m.chunk.horizon * m.chunk.action_dim);
  for (const [i, o] of observations.entries()) {
    if (
      o.frame.width !== m.image.width ||
      o.frame.height !== m.image.height ||
      o.frame.encoding !== 'rgb8'
    )
      return {
        available: false,
        reason: 'the PyTorch reference takes rgb8 frames at the model size',
      };
    frames.set(o.frame.data, i * o.frame.data.length);
    states.set(o.state, i * m.state.names.length);
    model.tokenizer.encodeInto(o.instruction, ids.subarray(i * L, (i + 1) * L));
    const a = nodeActions[i];
    if (a !== undefined) expected.set(a, i * a.length);
  }
  return runTorchReference(
    model,
    {
      'frames.u8': frames,
      'states.f32': states,
      'ids.i64': ids,
      'expected.f32': expected,
    },
    [],
    options,
  );
}
