/**
 * Reading, building and writing ONNX graphs (onnx-proto): what compression edits and the
 * benchmarks build their probe graphs with.
 */
import { readFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { ModelError } from '../errors.js';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;
export type NodeProto = onnxProto.onnx.NodeProto;
export type TensorProto = onnxProto.onnx.TensorProto;

/** ONNX TensorProto.DataType values used here. */
export const DTYPE = {
  float: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  double: 11,
} as const;

/** Read and parse an ONNX model; a missing or unparsable file is a ModelError naming `field`. */
export async function loadOnnx(path: string, field = 'model.path'): Promise<ModelProto> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new ModelError('MODEL_FILE', `Expected an ONNX file at ${path} but cannot read it`, {
      field,
      cause,
    });
  }
  return decodeOnnx(bytes, path, field);
}

/** Parse ONNX bytes; a graph-less or unparsable model is a ModelError. */
export function decodeOnnx(bytes: Uint8Array, path: string, field = 'model.path'): ModelProto {
  try {
    const model = onnx.ModelProto.decode(bytes);
    if ((model.graph?.node ?? []).length === 0) throw new Error('the model has no graph nodes');
    return model;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ModelError(
      'MODEL_FILE',
      `Expected a valid ONNX model at ${path} but it does not parse: ${reason}`,
      { field, cause },
    );
  }
}

export function encodeOnnx(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** A deep copy (encode + decode). */
export function cloneOnnx(model: ModelProto): ModelProto {
  return onnx.ModelProto.decode(encodeOnnx(model));
}

/** The decoded graph with its repeated fields typed as decoded messages. */
export interface Graph {
  node: NodeProto[];
  initializer: TensorProto[];
  input: onnxProto.onnx.ValueInfoProto[];
  output: onnxProto.onnx.ValueInfoProto[];
}

export function graphOf(model: ModelProto): Graph {
  const g = model.graph;
  if (g === null || g === undefined)
    throw new ModelError('MODEL_FILE', 'Expected an ONNX graph', { field: 'model.graph' });
  return g as unknown as Graph;
}

/** The float32 values of an initializer or attribute tensor (raw_data or float_data). */
export function floatData(t: onnxProto.onnx.ITensorProto): Float32Array {
  const raw = t.rawData ?? new Uint8Array(0);
  if (raw.length > 0) {
    const copy = new Uint8Array(raw);
    return new Float32Array(copy.buffer, 0, copy.length / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

export function dims(t: TensorProto): number[] {
  return t.dims.map((d) => Number(d));
}

export function tensor(
  name: string,
  dataType: number,
  shape: readonly number[],
  data: Float32Array | Int8Array | Uint8Array,
): onnxProto.onnx.TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims: [...shape],
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
  });
}

export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attributes: Readonly<Record<string, number>> = {},
): onnxProto.onnx.NodeProto {
  return onnx.NodeProto.create({
    opType,
    input: [...inputs],
    output: [...outputs],
    name,
    attribute: Object.entries(attributes).map(([n, i]) =>
      onnx.AttributeProto.create({ name: n, type: onnx.AttributeProto.AttributeType.INT, i }),
    ),
  });
}

export function intAttribute(n: NodeProto, name: string): number | undefined {
  const a = n.attribute.find((x) => x.name === name);
  return a === undefined || a.i === null || a.i === undefined ? undefined : Number(a.i);
}

/** A graph input or output: `name`, element type and, when given, a fixed shape. */
export function valueInfo(
  name: string,
  elemType: number,
  shape?: readonly number[],
): onnxProto.onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        ...(shape === undefined
          ? {}
          : {
              shape: onnx.TensorShapeProto.create({
                dim: shape.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })),
              }),
            }),
      }),
    }),
  });
}

/** A copy of `model` that also outputs the float tensors `names` (for calibration). */
export function withExtraOutputs(model: ModelProto, names: readonly string[]): ModelProto {
  const copy = cloneOnnx(model);
  const g = graphOf(copy);
  const existing = new Set(g.output.map((o) => o.name));
  for (const name of names) {
    if (existing.has(name)) continue;
    g.output.push(valueInfo(name, DTYPE.float));
  }
  return copy;
}
