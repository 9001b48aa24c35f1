/**
 * The FP16 converter: an fp32 ONNX graph to float16 for GPU execution providers, with the
 * operators and nodes that lose too much in float16 kept in float32 behind Casts.
 */
import type onnxProto from 'onnx-proto';
import {
  cloneOnnx,
  DTYPE,
  floatData,
  graphOf,
  intAttribute,
  node,
  onnx,
  type ModelProto,
  type NodeProto,
} from '../util/onnx-graph.js';
import { toFloat16 } from './float16-bits.js';
import { attribute, inferElemTypes } from './fp16-types.js';

// The float16 bits, the element types and the emulation were this module's until they took files
// of their own: imports of dist/compression/fp16.js still find them here.
export * from './float16-bits.js';
export { FP16_KNOWN_OPS, inferElemTypes } from './fp16-types.js';
export * from './fp16-emulate.js';

/** Operators that read only the shape of their input: no Cast needed whatever its precision. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

/** Outputs that stay float32 whatever the node's precision (by output index). */
const FLOAT32_OUTPUTS = new Map<string, readonly number[]>([['LayerNormalization', [1, 2]]]);

type Precision16 = 16 | 32;

/**
 * Operators kept in float32 unless the user says otherwise (`vla-node compress --mode fp16
 * --exclude ...` replaces this list):
 *
 * - `Range`: ONNX Runtime has no float16 kernel for it (CPU or CUDA), and counts in float16 stop
 *   being exact past 2048.
 * - `ReduceSum`, `ReduceSumSquare`, `ReduceL2`: sums over many values lose precision (float16
 *   keeps 11 significant bits) and overflow past 65504.
 * - `Exp`, `Pow`: overflow float16 for modest inputs (e^11.1, 256²).
 *
 * LayerNormalization and Softmax stay in float16: ONNX Runtime accumulates them in float32
 * internally (LayerNormalization's `stash_type`), which is how CUDA and TensorRT run them. Nodes
 * can be named too, e.g. the Mul that scales positions before Sin/Cos in Fourier features, whose
 * float16 result is off by up to 1/2048 of the argument.
 */
export const DEFAULT_FP16_KEEP_OPS: readonly string[] = [
  'Range',
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceL2',
  'Exp',
  'Pow',
];

/** What to keep in float32. */
export interface Fp16Options {
  /** Operator types kept in float32 (default {@link DEFAULT_FP16_KEEP_OPS}). */
  readonly keepOps: ReadonlySet<string>;
  /** Node names kept in float32. */
  readonly keepNodes: ReadonlySet<string>;
}

/** What the conversion did. */
export interface Fp16Stats {
  /** Nodes computing in float16 / kept in float32 (only nodes that touch float tensors). */
  readonly fp16_nodes: number;
  readonly fp32_nodes: readonly string[];
  /** Cast nodes added at the graph's inputs and outputs and around the float32 nodes. */
  readonly casts_added: number;
  /** Float tensors (initializers and Constant values) stored as float16. */
  readonly tensors_converted: number;
  /** Values beyond ±65504 clamped, and non-zero values that rounded to zero. */
  readonly values_clamped: number;
  readonly values_flushed: number;
}

/**
 * The float16 version of an fp32 graph for GPU execution providers, like onnxconverter-common's
 * `convert_float_to_float16(keep_io_types=True)`: float32 initializers and Constant values become
 * float16 (round-to-nearest-even, clamped to ±65504), Cast to FLOAT becomes Cast to FLOAT16,
 * float value_info becomes float16; the graph's float inputs and outputs stay float32 behind
 * Cast nodes; nodes in `keepOps`/`keepNodes` compute in float32 with Casts around them (their
 * weights stay float32). Integer and boolean tensors are untouched.
 *
 * @example
 * const { model, stats } = convertToFloat16(fp32, {
 *   keepOps: new Set(DEFAULT_FP16_KEEP_OPS),
 *   keepNodes: new Set(),
 * });
 */
export function convertToFloat16(
  model: ModelProto,
  options: Fp16Options,
  field = 'model',
): { model: ModelProto; stats: Fp16Stats } {
  const types = inferElemTypes(model, field);
  const out = cloneOnnx(model);
  const g = graphOf(out);
  const isFloat = (name: string): boolean => name !== '' && types.get(name) === DTYPE.float;
  const keep = (n: NodeProto): boolean =>
    options.keepOps.has(n.opType) || options.keepNodes.has(n.name);

  const consumers = new Map<string, NodeProto[]>();
  for (const n of g.node)
    for (const i of n.input) if (i !== '') consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const graphOutputs = new Set(g.output.map((o) => o.name));
  const graphInputs = new Set(g.input.map((i) => i.name));
  /** A constant stays float32 when a float32 node or the graph's output reads it. */
  const constantHome = (name: string): Precision16 =>
    graphOutputs.has(name) ||
    graphInputs.has(name) ||
    (consumers.get(name) ?? []).some(keep) ||
    (consumers.get(name) ?? []).length === 0
      ? 32
      : 16;

  // Where each float tensor lives.
  const home = new Map<string, Precision16>();
  for (const name of graphInputs) if (isFloat(name)) home.set(name, 32);
  for (const t of g.initializer)
    if (isFloat(t.name) && !home.has(t.name)) home.set(t.name, constantHome(t.name));
  for (const n of g.node) {
    const fixed32 = FLOAT32_OUTPUTS.get(n.opType) ?? [];
    n.output.forEach((name, k) => {
      if (!isFloat(name)) return;
      if (keep(n) || fixed32.includes(k)) home.set(name, 32);
      // A constant, or a cast to float (typically of integers: counts, lengths, positions),
      // stays float32 when any float32 node reads it: past 2048 float16 no longer holds every
      // integer, and a kept Range would get a rounded length.
      else if (n.opType === 'Constant' || n.opType === 'Cast') home.set(name, constantHome(name));
      else home.set(name, 16);
    });
  }

  const names = new Set<string>([
    ...types.keys(),
    ...g.node.map((n) => n.name),
    ...g.output.map((o) => o.name),
  ]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };

  // Float16 graph outputs: the producer writes an internal name, a Cast restores the output's.
  const tail: NodeProto[] = [];
  for (const o of g.output) {
    if (!isFloat(o.name) || home.get(o.name) !== 16) continue;
    const internal = fresh(`${o.name}_fp16`);
    for (const n of g.node) {
      n.output.forEach((x, k) => {
        if (x === o.name) n.output[k] = internal;
      });
      n.input.forEach((x, k) => {
        if (x === o.name) n.input[k] = internal;
      });
    }
    home.set(internal, 16);
    types.set(internal, DTYPE.float);
    tail.push(
      node('Cast', [internal], [o.name], fresh(`${o.name}_cast_fp32`), { to: DTYPE.float }),
    );
  }

  let tensorsConverted = 0;
  let clamped = 0;
  let flushed = 0;
  const toHalf = (t: onnxProto.onnx.ITensorProto): void => {
    const c = toFloat16(floatData(t));
    t.dataType = DTYPE.float16;
    t.rawData = new Uint8Array(c.bits.buffer, c.bits.byteOffset, c.bits.byteLength).slice();
    t.floatData = [];
    tensorsConverted++;
    clamped += c.clamped;
    flushed += c.flushed;
  };
  for (const t of g.initializer) if (home.get(t.name) === 16) toHalf(t);

  const casts = new Map<string, string>();
  const nodes: NodeProto[] = [];
  const castTo = (name: string, to: Precision16): string => {
    const key = `${name}\u0000${to}`;
    let cast = casts.get(key);
    if (cast === undefined) {
      cast = fresh(`${name}_to_fp${to}`);
      nodes.push(
        node('Cast', [name], [cast], fresh(`${name}_cast_fp${to}`), {
          to: to === 16 ? DTYPE.float16 : DTYPE.float,
        }),
      );
      casts.set(key, cast);
    }
    return cast;
  };
  let fp16Nodes = 0;
  const fp32Nodes: string[] = [];
  for (const n of g.node) {
    const precision: Precision16 = keep(n) ? 32 : 16;
    let touchesFloat = false;
    n.input.forEach((name, k) => {
      if (!isFloat(name) || SHAPE_ONLY.has(n.opType)) return;
      touchesFloat = true;
      if (home.get(name) !== precision) n.input[k] = castTo(name, precision);
    });
    const outHome = n.output.map((name) => (isFloat(name) ? home.get(name) : undefined));
    if (outHome.some((h) => h !== undefined)) touchesFloat = true;
    if (n.opType === 'Cast' && intAttribute(n, 'to') === DTYPE.float && outHome[0] === 16) {
      const to = n.attribute.find((a) => a.name === 'to');
      if (to !== undefined) to.i = DTYPE.float16;
    }
    if (n.opType === 'Constant' && outHome[0] === 16) {
      const a = n.attribute[0];
      if (a !== undefined && a.name === 'value' && a.t !== null && a.t !== undefined) toHalf(a.t);
      else if (a !== undefined) {
        const values = a.name === 'value_float' ? [a.f ?? 0] : (a.floats ?? []);
        const t = onnx.TensorProto.create({
          dataType: DTYPE.float,
          dims: a.name === 'value_float' ? [] : [values.length],
          floatData: values,
        });
        toHalf(t);
        n.attribute = [
          onnx.AttributeProto.create({
            name: 'value',
            type: onnx.AttributeProto.AttributeType.TENSOR,
            t,
          }),
        ];
      }
    }
    if (n.opType === 'ConstantOfShape' && outHome[0] === 16) {
      let a = attribute(n, 'value');
      if (a === undefined) {
        a = onnx.AttributeProto.create({
          name: 'value',
          type: onnx.AttributeProto.AttributeType.TENSOR,
          t: onnx.TensorProto.create({ dataType: DTYPE.float, dims: [1], floatData: [0] }),
        });
        n.attribute.push(a);
      }
      if (a.t !== null && a.t !== undefined) toHalf(a.t);
    }
    nodes.push(n);
    if (!touchesFloat) continue;
    if (precision === 16) fp16Nodes++;
    else fp32Nodes.push(n.name);
  }
  const before = g.node.length;
  g.node = [...nodes, ...tail];
  const added = g.node.length - before;

  const raw = out.graph;
  for (const vi of raw?.valueInfo ?? []) {
    const tt = vi.type?.tensorType;
    if (
      tt !== null &&
      tt !== undefined &&
      tt.elemType === DTYPE.float &&
      home.get(vi.name ?? '') === 16
    )
      tt.elemType = DTYPE.float16;
  }
  return {
    model: out,
    stats: {
      fp16_nodes: fp16Nodes,
      fp32_nodes: fp32Nodes,
      casts_added: added,
      tensors_converted: tensorsConverted,
      values_clamped: clamped,
      values_flushed: flushed,
    },
  };
}
