import type onnxProto from 'onnx-proto';
import { ModelError } from '../errors.js';
import {
  cloneOnnx,
  DTYPE,
  floatData,
  graphOf,
  intAttribute,
  node,
  onnx,
  tensor,
  type ModelProto,
  type NodeProto,
} from '../util/onnx-graph.js';

/** The largest finite float16 value. */
export const FLOAT16_MAX = 65504;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The IEEE 754 binary16 bits of `value` (first rounded to float32) with round-to-nearest-even.
 * Subnormals are kept; values too large for float16 become ±Infinity (use {@link toFloat16} to
 * clamp instead); NaN stays a quiet NaN with its sign.
 *
 * @example
 * toFloat16Bits(1) === 0x3c00; toFloat16Bits(65520) === 0x7c00 // rounds up to Infinity
 */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in float16: the implicit bit joins the mantissa, shifted right.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach Infinity
  return sign | h;
}

/** The number that float16 bits `h` stand for. */
export function fromFloat16Bits(h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Float16 bits of `values`, with the finite values beyond ±65504 clamped to ±65504. */
export interface Float16Conversion {
  readonly bits: Uint16Array;
  /** Finite values whose magnitude exceeds {@link FLOAT16_MAX} (clamped to it). */
  readonly clamped: number;
  /** Non-zero values that became ±0 (below half the smallest float16 subnormal, 2^-25). */
  readonly flushed: number;
}

/** Convert float32 values to float16 bits (round-to-nearest-even, clamped to the finite range). */
export function toFloat16(values: ArrayLike<number>): Float16Conversion {
  const bits = new Uint16Array(values.length);
  let clamped = 0;
  let flushed = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i] as number;
    if (Number.isFinite(v) && Math.abs(v) > FLOAT16_MAX) {
      v = Math.sign(v) * FLOAT16_MAX;
      clamped++;
    }
    const h = toFloat16Bits(v);
    if ((h & 0x7fff) === 0 && v !== 0) flushed++;
    bits[i] = h;
  }
  return { bits, clamped, flushed };
}

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

/** How each known operator's output element types follow from its inputs and attributes. */
type TypeRule = (n: NodeProto, inputs: readonly (number | undefined)[]) => (number | undefined)[];

const sameAs =
  (k: number): TypeRule =>
  (n, t) =>
    n.output.map(() => t[k]);
const fixed =
  (dtype: number): TypeRule =>
  (n) =>
    n.output.map(() => dtype);

const SAME_AS_FIRST = [
  'Abs',
  'Add',
  'Ceil',
  'Clip',
  'Concat',
  'Conv',
  'Cos',
  'Div',
  'Elu',
  'Erf',
  'Exp',
  'Expand',
  'Flatten',
  'Floor',
  'Gather',
  'GatherElements',
  'Gelu',
  'Gemm',
  'HardSigmoid',
  'Identity',
  'LeakyRelu',
  'Log',
  'MatMul',
  'Max',
  'Min',
  'Mod',
  'Mul',
  'Neg',
  'Pad',
  'Pow',
  'Range',
  'Reciprocal',
  'ReduceL2',
  'ReduceMax',
  'ReduceMean',
  'ReduceMin',
  'ReduceSum',
  'ReduceSumSquare',
  'Relu',
  'Reshape',
  'Round',
  'Sigmoid',
  'Sign',
  'Sin',
  'Slice',
  'Softmax',
  'Softplus',
  'Split',
  'Sqrt',
  'Squeeze',
  'Sub',
  'Tanh',
  'Tile',
  'Transpose',
  'Unsqueeze',
];
const BOOLEAN = [
  'And',
  'Equal',
  'Greater',
  'GreaterOrEqual',
  'IsInf',
  'IsNaN',
  'Less',
  'LessOrEqual',
  'Not',
  'Or',
  'Xor',
];

const RULES = new Map<string, TypeRule>([
  ...SAME_AS_FIRST.map((op): [string, TypeRule] => [op, sameAs(0)]),
  ...BOOLEAN.map((op): [string, TypeRule] => [op, fixed(DTYPE.bool)]),
  ['Shape', fixed(DTYPE.int64)],
  ['Size', fixed(DTYPE.int64)],
  ['Where', sameAs(1)],
  ['CastLike', sameAs(1)],
  ['Cast', (n) => n.output.map(() => intAttribute(n, 'to'))],
  ['Constant', (n) => n.output.map(() => constantType(n))],
  ['ConstantOfShape', (n) => n.output.map(() => attribute(n, 'value')?.t?.dataType ?? DTYPE.float)],
  ['Dropout', (n, t) => [t[0], DTYPE.bool]],
  // Mean and InvStdDev are float32 (stash_type) whatever the input type.
  ['LayerNormalization', (n, t) => [t[0], DTYPE.float, DTYPE.float].slice(0, n.output.length)],
]);

/** Operators that read only the shape of their input: no Cast needed whatever its precision. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

/** Outputs that stay float32 whatever the node's precision (by output index). */
const FLOAT32_OUTPUTS = new Map<string, readonly number[]>([['LayerNormalization', [1, 2]]]);

/** The operator types the converter knows (others are refused by name). */
export const FP16_KNOWN_OPS: ReadonlySet<string> = new Set(RULES.keys());

function attribute(n: NodeProto, name: string): NodeProto['attribute'][number] | undefined {
  return n.attribute.find((a) => a.name === name);
}

function constantType(n: NodeProto): number | undefined {
  const a = n.attribute[0];
  if (a === undefined) return undefined;
  switch (a.name) {
    case 'value':
      return a.t?.dataType ?? undefined;
    case 'value_float':
    case 'value_floats':
      return DTYPE.float;
    case 'value_int':
    case 'value_ints':
      return DTYPE.int64;
    case 'value_string':
    case 'value_strings':
      return DTYPE.string;
    default:
      return undefined;
  }
}

function refuse(field: string, message: string): never {
  throw new ModelError('MODEL_MISMATCH', message, { field });
}

/**
 * Check that the converter handles every construct of `model` and infer the element type of every
 * tensor (graph inputs, initializers and node outputs, in the graph's topological order). Throws a
 * ModelError naming the node and operator for non-ONNX domains, subgraphs (If/Loop/Scan), unknown
 * operators, sparse or external initializers, and inputs used before they are produced.
 */
export function inferElemTypes(model: ModelProto, field = 'model'): Map<string, number> {
  const g = graphOf(model);
  const raw = model.graph;
  if ((raw?.sparseInitializer ?? []).length > 0)
    refuse(field, 'Expected dense initializers but the graph has sparse initializers');
  const types = new Map<string, number>();
  for (const t of g.initializer) {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)
      refuse(
        field,
        `Expected initializer ${t.name} inside the ONNX file but its data is external; load and re-save the model with its data embedded`,
      );
    types.set(t.name, t.dataType);
  }
  for (const i of g.input) {
    const elem = i.type?.tensorType?.elemType;
    if (elem === undefined || elem === null)
      refuse(field, `Expected graph input ${i.name} to be a tensor`);
    if (!types.has(i.name)) types.set(i.name, elem);
  }
  for (const n of g.node) {
    const what = `node ${JSON.stringify(n.name)} (${n.domain === '' ? '' : `${n.domain}:`}${n.opType})`;
    if (n.domain !== '' && n.domain !== 'ai.onnx')
      refuse(
        field,
        `Expected only ONNX-domain operators but ${what} is from another domain; convert the fp32 export, not an optimized graph`,
      );
    if (n.attribute.some((a) => (a.g !== null && a.g !== undefined) || (a.graphs ?? []).length > 0))
      refuse(
        field,
        `Expected no subgraphs but ${what} has one; the fp16 converter does not convert control flow`,
      );
    const rule = RULES.get(n.opType);
    if (rule === undefined)
      refuse(
        field,
        `Expected operators the fp16 converter knows but ${what} is not one of them (known: ${[...RULES.keys()].sort().join(', ')})`,
      );
    const inputs = n.input.map((name) => {
      if (name === '') return undefined;
      const t = types.get(name);
      if (t === undefined)
        refuse(
          field,
          `Expected input ${JSON.stringify(name)} of ${what} to be produced by an earlier node (a topologically sorted graph)`,
        );
      return t;
    });
    const out = rule(n, inputs);
    n.output.forEach((name, k) => {
      const t = out[k];
      if (name === '') return;
      if (t === undefined)
        refuse(field, `Expected to know the element type of output ${k} of ${what}`);
      types.set(name, t);
    });
  }
  return types;
}

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

type Precision16 = 16 | 32;

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
 * A float32 graph that computes what the float16 graph `model` (from {@link convertToFloat16})
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
