/**
 * Float16 rounding emulated in a float32 graph, so that a CPU measures the error a GPU's float16
 * graph makes (see {@link emulateFloat16}).
 */
import type onnxProto from 'onnx-proto';
import {
  cloneOnnx,
  DTYPE,
  graphOf,
  node,
  tensor,
  type ModelProto,
  type NodeProto,
} from '../util/onnx-graph.js';
import { fromFloat16Bits } from './float16-bits.js';
import { inferElemTypes } from './fp16-types.js';

/** The float tensors that `model`'s nodes compute, Constants aside (for the range check). */
export function floatActivations(model: ModelProto, field = 'model'): string[] {
  const types = inferElemTypes(model, field);
  return graphOf(model)
    .node.filter((n) => n.opType !== 'Constant')
    .flatMap((n) => n.output)
    .filter((name) => name !== '' && types.get(name) === DTYPE.float);
}

/** Operators whose float16 result is one of their float16 inputs' values: nothing to round. */
const EXACT_OPS = new Set([
  'Abs',
  'Concat',
  'Expand',
  'Flatten',
  'Gather',
  'GatherElements',
  'Identity',
  'Max',
  'Min',
  'Neg',
  'Relu',
  'Reshape',
  'Slice',
  'Split',
  'Squeeze',
  'Tile',
  'Transpose',
  'Unsqueeze',
  'Where',
]);

/** Veltkamp's splitter for float32 (24 bits) keeping 11 significant bits, float16's precision. */
const SPLITTER = 2 ** 13 + 1;

/**
 * A float32 graph that computes what the float16 graph `model` (from `convertToFloat16`, fp16.ts)
 * computes when every operator rounds its result to float16, as a GPU stores it: float16
 * initializers and constants become float32 with the same values, and each float16 result is
 * rounded to 11 significant bits in float32 (Veltkamp's split: g = x·8193, x' = g + (x − g)).
 *
 * This exists because ONNX Runtime's CPU provider removes float32→float16→float32 Cast pairs
 * (onnxruntime#8787), so running the float16 graph on a CPU mostly computes its activations in
 * float32 and understates the float16 error. Range (65504) and subnormals are not emulated; the
 * activation range check covers overflow.
 */
export function emulateFloat16(model: ModelProto, field = 'model'): ModelProto {
  const types = inferElemTypes(model, field);
  const out = cloneOnnx(model);
  const g = graphOf(out);
  const widen = (t: onnxProto.onnx.ITensorProto): void => {
    const raw = t.rawData ?? new Uint8Array(0);
    const bits =
      raw.length > 0
        ? new Uint16Array(new Uint8Array(raw).buffer, 0, raw.length / 2)
        : Uint16Array.from(t.int32Data ?? []);
    const values = Float32Array.from(bits, fromFloat16Bits);
    t.dataType = DTYPE.float;
    t.rawData = new Uint8Array(values.buffer);
    t.int32Data = [];
  };
  for (const t of g.initializer) if (t.dataType === DTYPE.float16) widen(t);
  const names = new Set<string>([...types.keys(), ...g.node.map((n) => n.name)]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };
  const splitter = fresh('fp16_emulation_splitter');
  g.initializer.push(tensor(splitter, DTYPE.float, [], Float32Array.of(SPLITTER)));
  const nodes: NodeProto[] = [];
  for (const n of g.node) {
    nodes.push(n);
    for (const a of n.attribute) {
      if (a.t?.dataType === DTYPE.float16) widen(a.t);
      if (a.name === 'to' && Number(a.i) === DTYPE.float16) a.i = DTYPE.float;
    }
    if (n.opType === 'Constant' || n.opType === 'ConstantOfShape' || EXACT_OPS.has(n.opType))
      continue;
    n.output.forEach((name, k) => {
      if (name === '' || types.get(name) !== DTYPE.float16) return;
      const raw = fresh(`${name}_unrounded`);
      const scaled = fresh(`${name}_split`);
      const diff = fresh(`${name}_split_diff`);
      const rounded = fresh(`${name}_rounded`);
      const nan = fresh(`${name}_rounding_nan`);
      n.output[k] = raw;
      // ±Infinity (an attention mask) gives inf − inf = NaN in the split: such values, and any
      // NaN, pass through unrounded, as float16 holds them.
      nodes.push(
        node('Mul', [raw, splitter], [scaled], fresh(`${name}_round16_mul`)),
        node('Sub', [raw, scaled], [diff], fresh(`${name}_round16_sub`)),
        node('Add', [scaled, diff], [rounded], fresh(`${name}_round16_add`)),
        node('IsNaN', [rounded], [nan], fresh(`${name}_round16_isnan`)),
        node('Where', [nan, raw, rounded], [name], fresh(`${name}_round16_where`)),
      );
    });
  }
  g.node = nodes;
  for (const vi of out.graph?.valueInfo ?? []) {
    const tt = vi.type?.tensorType;
    if (tt !== null && tt !== undefined && tt.elemType === DTYPE.float16) tt.elemType = DTYPE.float;
  }
  return out;
}
