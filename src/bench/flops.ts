import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import {
  dims,
  encodeOnnx,
  graphOf,
  intAttribute,
  loadOnnx,
  withExtraOutputs,
} from '../util/onnx-graph.js';
import { BackendError } from '../errors.js';

/** Floating-point operations of one graph run, counted from the graph for actual input shapes. */
export interface FlopCount {
  /** Multiply-adds × 2 of every MatMul, Gemm and Conv node (the rest is < a few % in these models). */
  readonly total: number;
  readonly by_op: Readonly<Record<string, number>>;
  readonly nodes: number;
}

const COUNTED = new Set(['MatMul', 'Gemm', 'Conv']);

/**
 * Count the FLOPs of the ONNX graph at `path` for `feeds`: the graph is run once (optimisations
 * off) with the inputs and outputs of every MatMul, Gemm and Conv node exposed, and each node's
 * multiply-adds are computed from the shapes it actually saw (so free axes such as the policy's
 * token count take the values of `feeds`).
 */
export async function countFlops(
  path: string,
  feeds: Readonly<Record<string, ort.Tensor>>,
): Promise<FlopCount> {
  const model = await loadOnnx(path);
  const g = graphOf(model);
  const constants = new Map(g.initializer.map((t) => [t.name, dims(t)]));
  const inputs = new Set(g.input.map((i) => i.name));
  const nodes = g.node.filter((n) => COUNTED.has(n.opType));
  const wanted = new Set<string>();
  for (const n of nodes) {
    for (const name of [n.input[0], n.input[1], n.output[0]]) {
      if (name !== undefined && name !== '' && !constants.has(name) && !inputs.has(name))
        wanted.add(name);
    }
  }
  const session = await ort.InferenceSession.create(
    encodeOnnx(withExtraOutputs(model, [...wanted])),
    { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled', logSeverityLevel: 3 },
  );
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await session.run(feeds);
  } finally {
    await session.release();
  }
  const shapeOf = (name: string | undefined): number[] => {
    if (name === undefined) return [];
    const fixed = constants.get(name);
    if (fixed !== undefined) return fixed;
    const t = out[name] ?? feeds[name];
    if (t === undefined)
      throw new BackendError(
        `Expected tensor ${name} of ${path} to be computed when counting FLOPs`,
        {
          field: 'flops',
        },
      );
    return [...t.dims];
  };
  const byOp: Record<string, number> = {};
  let total = 0;
  for (const n of nodes) {
    const outShape = shapeOf(n.output[0]);
    const outSize = outShape.reduce((a, b) => a * b, 1);
    let macsPerOutput: number;
    if (n.opType === 'Conv') {
      macsPerOutput = shapeOf(n.input[1])
        .slice(1)
        .reduce((a, b) => a * b, 1);
    } else if (n.opType === 'Gemm') {
      const a = shapeOf(n.input[0]);
      macsPerOutput = (intAttribute(n, 'transA') === 1 ? a[0] : a[1]) ?? 0;
    } else {
      const a = shapeOf(n.input[0]);
      macsPerOutput = a[a.length - 1] ?? 0;
    }
    const flops = 2 * outSize * macsPerOutput;
    byOp[n.opType] = (byOp[n.opType] ?? 0) + flops;
    total += flops;
  }
  return { total, by_op: byOp, nodes: nodes.length };
}
