import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import { DTYPE, encodeOnnx, node, onnx, tensor, valueInfo } from '../util/onnx-graph.js';
import { Rng } from '../util/rng.js';
import { round } from '../util/stats.js';

/** One matrix-multiply measurement. */
export interface MatmulPoint {
  readonly size: number;
  readonly threads: number;
  /** Fastest of the timed runs (a peak is a best case). */
  readonly ms: number;
  readonly gflops: number;
}

export interface MatmulPeak {
  /** Best single-precision GFLOP/s per thread count (the highest over the sizes). */
  readonly peak_gflops: Readonly<Record<string, number>>;
  readonly points: readonly MatmulPoint[];
  readonly method: string;
}

/** An ONNX model computing Y = A·B for A [n, n] (input) and B [n, n] (a constant). */
export function matmulModel(n: number): Uint8Array {
  const rng = new Rng(n);
  const b = new Float32Array(n * n);
  for (let i = 0; i < b.length; i++) b[i] = rng.next() - 0.5;
  const value = (name: string) => valueInfo(name, DTYPE.float, [n, n]);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 17 })],
    producerName: 'vla-node bench',
    graph: onnx.GraphProto.create({
      name: 'matmul',
      node: [node('MatMul', ['A', 'B'], ['Y'], 'matmul')],
      initializer: [tensor('B', DTYPE.float, [n, n], b)],
      input: [value('A')],
      output: [value('Y')],
    }),
  });
  return encodeOnnx(model);
}

/**
 * The machine's measured single-precision matrix-multiply rate: ONNX Runtime's own GEMM (MLAS, the
 * kernels the models run on) on square matrices, per thread count, the fastest of the timed runs
 * after warm-up. This is the ceiling the model's stages are compared with.
 */
export async function measureMatmulPeak(
  options: { sizes?: readonly number[]; threads?: readonly number[]; minMs?: number } = {},
): Promise<MatmulPeak> {
  const sizes = options.sizes ?? [256, 512, 1024, 2048];
  const threads = options.threads ?? [1];
  const minMs = options.minMs ?? 400;
  const points: MatmulPoint[] = [];
  for (const t of threads) {
    for (const n of sizes) {
      const session = await ort.InferenceSession.create(matmulModel(n), {
        executionProviders: ['cpu'],
        intraOpNumThreads: t,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      });
      try {
        const rng = new Rng(7);
        const a = new Float32Array(n * n);
        for (let i = 0; i < a.length; i++) a[i] = rng.next() - 0.5;
        const feeds = { A: new ort.Tensor('float32', a, [n, n]) };
        for (let i = 0; i < 3; i++) await session.run(feeds);
        const times: number[] = [];
        const start = performance.now();
        while (times.length < 5 || performance.now() - start < minMs) {
          const t0 = performance.now();
          await session.run(feeds);
          times.push(performance.now() - t0);
        }
        const ms = Math.min(...times);
        points.push({
          size: n,
          threads: t,
          ms: round(ms, 4),
          gflops: round((2 * n ** 3) / (ms * 1e6), 2),
        });
      } finally {
        await session.release();
      }
    }
  }
  const peak: Record<string, number> = {};
  for (const p of points)
    peak[String(p.threads)] = Math.max(peak[String(p.threads)] ?? 0, p.gflops);
  return {
    peak_gflops: peak,
    points,
    method: `ONNX Runtime MatMul (MLAS SGEMM), square float32 matrices of ${sizes.join(', ')}, fastest run after warm-up`,
  };
}
