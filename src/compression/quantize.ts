import { ModelError } from '../errors.js';
import type { GraphRole } from '../model/manifest.js';
import {
  cloneOnnx,
  dims,
  DTYPE,
  floatData,
  graphOf,
  intAttribute,
  node,
  tensor,
  type ModelProto,
  type Graph,
  type NodeProto,
  type TensorProto,
} from '../util/onnx-graph.js';

export type QuantMode = 'static' | 'dynamic';

/** Operators whose weight input the quantizer turns into per-channel int8. */
const WEIGHT_OPS = new Set(['MatMul', 'Gemm', 'Conv']);
/** Operators the quantizer knows it may leave in float (everything else is refused by name). */
const FLOAT_OPS = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Sqrt',
  'Erf',
  'Tanh',
  'Sigmoid',
  'Relu',
  'Gelu',
  'Exp',
  'Neg',
  'Abs',
  'Reciprocal',
  'LayerNormalization',
  'Softmax',
  'ReduceMean',
  'ReduceSum',
  'Constant',
  'ConstantOfShape',
  'Shape',
  'Gather',
  'GatherElements',
  'Slice',
  'Concat',
  'Reshape',
  'Transpose',
  'Unsqueeze',
  'Squeeze',
  'Flatten',
  'Expand',
  'Equal',
  'Where',
  'Cast',
  'Range',
  'Identity',
  'Split',
  'Tile',
  'Less',
  'Greater',
  // Causal masks of exported decoders (the autoregressive family's decoder graph).
  'LessOrEqual',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Clip',
  'Max',
  'Min',
  'Mod',
  'Xor',
  'Sin',
  'Cos',
  'Log',
  'Floor',
  'Ceil',
  'QuantizeLinear',
  'DequantizeLinear',
]);

/** A weight node to quantize: its name, operator and the channel axis of its weight. */
export interface QuantTarget {
  readonly node: string;
  readonly op: string;
  /** The activation input (input 0) whose range static quantization needs. */
  readonly activation: string;
  readonly weight: string;
  readonly axis: number;
}

/** The nodes kept in float by default: the first Conv of the encoder (patch embedding) and the last weight MatMul/Gemm of the policy (action head). */
export function defaultExclusions(model: ModelProto, role: GraphRole): string[] {
  const g = graphOf(model);
  const inits = new Set(g.initializer.map((t) => t.name));
  const weighted = g.node.filter((n) => WEIGHT_OPS.has(n.opType) && inits.has(n.input[1] ?? ''));
  if (role === 'encoder') {
    const conv = weighted.find((n) => n.opType === 'Conv');
    return conv === undefined ? [] : [conv.name];
  }
  const last = [...weighted].reverse().find((n) => n.opType === 'MatMul' || n.opType === 'Gemm');
  return last === undefined ? [] : [last.name];
}

/**
 * The weight nodes to quantize (MatMul/Gemm/Conv whose weight is a float initializer), minus
 * `exclude` (node names). Throws a ModelError listing operators the quantizer does not handle.
 */
export function planQuantization(
  model: ModelProto,
  exclude: ReadonlySet<string>,
  field = 'model',
): QuantTarget[] {
  const g = graphOf(model);
  const unknown = [
    ...new Set(
      g.node
        .filter((n) => !WEIGHT_OPS.has(n.opType) && !FLOAT_OPS.has(n.opType))
        .map((n) => n.opType),
    ),
  ];
  if (unknown.length > 0) {
    throw new ModelError(
      'MODEL_MISMATCH',
      `Expected only operators the quantizer handles but the graph has ${unknown.join(', ')}`,
      { field },
    );
  }
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const targets: QuantTarget[] = [];
  for (const n of g.node) {
    if (!WEIGHT_OPS.has(n.opType) || exclude.has(n.name)) continue;
    const w = inits.get(n.input[1] ?? '');
    if (w === undefined || w.dataType !== DTYPE.float) continue;
    const shape = dims(w);
    let axis: number;
    if (n.opType === 'Conv') axis = 0;
    else if (n.opType === 'Gemm') axis = intAttribute(n, 'transB') === 1 ? 0 : 1;
    else if (shape.length === 2) axis = 1;
    else continue;
    targets.push({
      node: n.name,
      op: n.opType,
      activation: n.input[0] ?? '',
      weight: w.name,
      axis,
    });
  }
  return targets;
}

/** Per-channel symmetric int8 quantization of `w` (shape `shape`) along `axis`. */
export function quantizeWeights(
  w: Float32Array,
  shape: readonly number[],
  axis: number,
): { q: Int8Array; scales: Float32Array } {
  const channels = shape[axis] ?? 1;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => Math.floor(i / inner) % channels;
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    maxAbs[c] = Math.max(maxAbs[c] as number, Math.abs(w[i] as number));
  }
  const scales = maxAbs.map((m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scales[channelOf(i)] as number;
    q[i] = Math.max(-127, Math.min(127, Math.round((w[i] as number) / s)));
  }
  return { q, scales };
}

/** An activation range [min, max] from calibration. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

/** uint8 asymmetric parameters for `range` (widened to include 0). */
export function activationParams(range: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, range.min);
  const hi = Math.max(0, range.max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/**
 * Write the INT8 graph: every target's weight becomes an int8 initializer with a per-channel
 * DequantizeLinear; in static mode each target's activation also gets a per-tensor uint8
 * QuantizeLinear/DequantizeLinear pair from `ranges` (ORT fuses these into QLinearMatMul/QLinearConv).
 * Dynamic mode: MatMul/Gemm become DynamicQuantizeLinear + MatMulInteger (fused by ORT into
 * DynamicQuantizeMatMul); other weight nodes (Conv) get int8 weights with DequantizeLinear only.
 */
export function quantizeModel(
  model: ModelProto,
  targets: readonly QuantTarget[],
  mode: QuantMode,
  ranges: ReadonlyMap<string, Range> = new Map(),
): ModelProto {
  const out = cloneOnnx(model);
  const g = graphOf(out);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const byName = new Map(targets.map((t) => [t.node, t]));
  const weightDq = new Map<string, string>();
  const actDq = new Map<string, string>();
  const prefix: NodeProto[] = [];
  const nodes: NodeProto[] = [];
  const dropped = new Set<string>();
  const dynamicActs = new Map<string, [string, string, string]>();
  for (const n of g.node) {
    const t = byName.get(n.name);
    if (t === undefined) {
      nodes.push(n);
      continue;
    }
    if (mode === 'dynamic' && dynamicEligible(n, t, inits)) {
      let act = dynamicActs.get(t.activation);
      if (act === undefined) {
        const b = t.activation;
        act = [`${b}_quantized`, `${b}_scale`, `${b}_zero_point`];
        nodes.push(node('DynamicQuantizeLinear', [b], act, `${b}_DynamicQuantizeLinear`));
        dynamicActs.set(t.activation, act);
      }
      nodes.push(...dynamicMatMul(g, n, t, inits, act));
      continue;
    }
    let wName = weightDq.get(t.weight);
    if (wName === undefined) {
      const w = inits.get(t.weight);
      if (w === undefined) throw new ModelError('MODEL_MISMATCH', `No initializer ${t.weight}`);
      const shape = dims(w);
      const { q, scales } = quantizeWeights(floatData(w), shape, t.axis);
      const base = t.weight;
      g.initializer.push(
        tensor(`${base}_quantized`, DTYPE.int8, shape, q),
        tensor(`${base}_scale`, DTYPE.float, [scales.length], scales),
        tensor(`${base}_zero_point`, DTYPE.int8, [scales.length], new Int8Array(scales.length)),
      );
      wName = `${base}_dequantized`;
      prefix.push(
        node(
          'DequantizeLinear',
          [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
          [wName],
          `${base}_DequantizeLinear`,
          { axis: t.axis },
        ),
      );
      weightDq.set(t.weight, wName);
      dropped.add(t.weight);
    }
    n.input[1] = wName;
    if (mode === 'static') {
      let aName = actDq.get(t.activation);
      if (aName === undefined) {
        const range = ranges.get(t.activation);
        if (range === undefined) {
          throw new ModelError(
            'MODEL_MISMATCH',
            `Expected a calibrated range for ${t.activation} (input of ${t.node})`,
            { field: 'calibration.ranges' },
          );
        }
        const { scale, zeroPoint } = activationParams(range);
        const base = t.activation;
        g.initializer.push(
          tensor(`${base}_scale`, DTYPE.float, [], Float32Array.of(scale)),
          tensor(`${base}_zero_point`, DTYPE.uint8, [], Uint8Array.of(zeroPoint)),
        );
        aName = `${base}_dequantized`;
        nodes.push(
          node(
            'QuantizeLinear',
            [base, `${base}_scale`, `${base}_zero_point`],
            [`${base}_quantized`],
            `${base}_QuantizeLinear`,
          ),
          node(
            'DequantizeLinear',
            [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
            [aName],
            `${base}_DequantizeLinear`,
          ),
        );
        actDq.set(t.activation, aName);
      }
      n.input[0] = aName;
    }
    nodes.push(n);
  }
  const stillUsed = new Set([...prefix, ...nodes].flatMap((n) => n.input));
  for (const t of targets) dropped.add(t.weight);
  g.initializer = g.initializer.filter((t) => !dropped.has(t.name) || stillUsed.has(t.name));
  g.node = [...prefix, ...nodes];
  return out;
}

/** MatMul with a 2-D weight, or Gemm with alpha = beta = 1, transA = 0 (what the integer path rewrites). */
function dynamicEligible(
  n: NodeProto,
  t: QuantTarget,
  inits: ReadonlyMap<string, TensorProto>,
): boolean {
  const w = inits.get(t.weight);
  if (w === undefined || dims(w).length !== 2) return false;
  if (n.opType === 'MatMul') return true;
  if (n.opType !== 'Gemm') return false;
  const f = (name: string): number | undefined =>
    n.attribute.find((a) => a.name === name)?.f ?? undefined;
  return (
    (intAttribute(n, 'transA') ?? 0) === 0 && (f('alpha') ?? 1) === 1 && (f('beta') ?? 1) === 1
  );
}

/**
 * Dynamic INT8 for one MatMul/Gemm: MatMulInteger(uint8 activation from DynamicQuantizeLinear,
 * per-column int8 weight) → Cast → Mul by activation scale × weight scales (+ Gemm bias). ORT
 * fuses this into DynamicQuantizeMatMul.
 */
function dynamicMatMul(
  g: Graph,
  n: NodeProto,
  t: QuantTarget,
  inits: ReadonlyMap<string, TensorProto>,
  act: readonly [string, string, string],
): NodeProto[] {
  const w = inits.get(t.weight);
  if (w === undefined) throw new ModelError('MODEL_MISMATCH', `No initializer ${t.weight}`);
  let shape = dims(w);
  let values = floatData(w);
  if (n.opType === 'Gemm' && intAttribute(n, 'transB') === 1) {
    const [rows = 0, cols = 0] = shape;
    const tr = new Float32Array(values.length);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) tr[c * rows + r] = values[r * cols + c] as number;
    values = tr;
    shape = [cols, rows];
  }
  const { q, scales } = quantizeWeights(values, shape, 1);
  const b = `${n.name}_dyn`;
  g.initializer.push(
    tensor(`${b}_weight_quantized`, DTYPE.int8, shape, q),
    tensor(`${b}_weight_scale`, DTYPE.float, [scales.length], scales),
    tensor(`${b}_weight_zero_point`, DTYPE.int8, [scales.length], new Int8Array(scales.length)),
  );
  const output = n.output[0] ?? '';
  const bias = n.opType === 'Gemm' ? n.input[2] : undefined;
  const out: NodeProto[] = [
    node(
      'MatMulInteger',
      [act[0], `${b}_weight_quantized`, act[2], `${b}_weight_zero_point`],
      [`${b}_int32`],
      `${b}_MatMulInteger`,
    ),
    node('Cast', [`${b}_int32`], [`${b}_float`], `${b}_Cast`, { to: DTYPE.float }),
    node('Mul', [act[1], `${b}_weight_scale`], [`${b}_scale`], `${b}_ScaleMul`),
    node(
      'Mul',
      [`${b}_float`, `${b}_scale`],
      [bias === undefined || bias === '' ? output : `${b}_nobias`],
      `${b}_Mul`,
    ),
  ];
  if (bias !== undefined && bias !== '')
    out.push(node('Add', [`${b}_nobias`, bias], [output], `${b}_BiasAdd`));
  return out;
}
