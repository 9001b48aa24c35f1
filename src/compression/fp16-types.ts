/**
 * The element type of every tensor of an ONNX graph, from its inputs, initializers and the
 * operators the FP16 converter knows: what decides which tensors become float16.
 */
import { ModelError } from '../errors.js';
import {
  DTYPE,
  graphOf,
  intAttribute,
  onnx,
  type ModelProto,
  type NodeProto,
} from '../util/onnx-graph.js';

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

/** The operator types the converter knows (others are refused by name). */
export const FP16_KNOWN_OPS: ReadonlySet<string> = new Set(RULES.keys());

/** Node `n`'s attribute `name`, if it has one. */
export function attribute(n: NodeProto, name: string): NodeProto['attribute'][number] | undefined {
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
