import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { simulatorSamples } from '../../src/sim/samples.js';
import { ModelError } from '../../src/errors.js';
import { loadModelPackage, type ModelPackage } from '../../src/model/manifest.js';
import { prepareSamples, type PreparedSample } from '../../src/compression/calibration.js';
import {
  convertToFloat16,
  DEFAULT_FP16_KEEP_OPS,
  type Fp16Options,
} from '../../src/compression/fp16.js';
import {
  FLOAT16_MAX,
  fromFloat16Bits,
  toFloat16,
  toFloat16Bits,
} from '../../src/compression/float16-bits.js';
import { emulateFloat16 } from '../../src/compression/fp16-emulate.js';
import { inferElemTypes } from '../../src/compression/fp16-types.js';
import {
  cloneOnnx,
  DTYPE,
  encodeOnnx,
  graphOf,
  intAttribute,
  loadOnnx,
  node,
  onnx,
  tensor,
  valueInfo,
  type ModelProto,
  type NodeProto,
} from '../../src/util/onnx-graph.js';
import { GraphRunner } from '../../src/compression/runner.js';
import { TINY_VLA } from '../helpers.js';

const DEFAULTS: Fp16Options = {
  keepOps: new Set(DEFAULT_FP16_KEEP_OPS),
  keepNodes: new Set(),
};

describe('float16 rounding', () => {
  it.each([
    ['zero', 0, 0x0000],
    ['negative zero', -0, 0x8000],
    ['one', 1, 0x3c00],
    ['minus two', -2, 0xc000],
    ['0.1 (nearest)', 0.1, 0x2e66],
    ['1/3 (nearest)', 1 / 3, 0x3555],
    ['1 + 2^-11: tie, to even (down)', 1 + 2 ** -11, 0x3c00],
    ['1 + 3·2^-11: tie, to even (up)', 1 + 3 * 2 ** -11, 0x3c02],
    ['largest finite', 65504, 0x7bff],
    ['65519: below the tie, stays finite', 65519, 0x7bff],
    ['65520: tie, to even = Infinity', 65520, 0x7c00],
    ['1e6 without clamping', 1e6, 0x7c00],
    ['Infinity', Infinity, 0x7c00],
    ['-Infinity', -Infinity, 0xfc00],
    ['smallest normal 2^-14', 2 ** -14, 0x0400],
    ['smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['largest subnormal', 1023 * 2 ** -24, 0x03ff],
    ['subnormal tie 1.5·2^-24, to even (up)', 1.5 * 2 ** -24, 0x0002],
    ['subnormal tie 2.5·2^-24, to even (down)', 2.5 * 2 ** -24, 0x0002],
    ['subnormal rounding up into the normals', 1023.5 * 2 ** -24, 0x0400],
    ['2^-25: tie with zero, to even = 0', 2 ** -25, 0x0000],
    ['just above 2^-25 rounds up', 2 ** -25 * 1.0001, 0x0001],
    ['negative subnormal', -3 * 2 ** -24, 0x8003],
    ['far below the subnormals', 1e-30, 0x0000],
  ])('%s', (_, value, bits) => {
    expect(toFloat16Bits(value)).toBe(bits);
  });

  it('keeps NaN a NaN', () => {
    const h = toFloat16Bits(Number.NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(fromFloat16Bits(h)).toBeNaN();
  });

  it('round-trips every float16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = fromFloat16Bits(h);
      if (Number.isNaN(v)) continue;
      expect(toFloat16Bits(v)).toBe(h);
    }
  });

  it('rounds to the nearest float16 (compared with the neighbours)', () => {
    for (let i = 0; i < 2000; i++) {
      const v = Math.fround((Math.random() - 0.5) * 2 ** ((i % 40) - 26));
      const h = toFloat16Bits(v);
      const err = Math.abs(fromFloat16Bits(h) - v);
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) >= 0x7c00 || n < 0 || n > 0xffff) continue;
        if ((n & 0x8000) !== (h & 0x8000)) continue;
        expect(err).toBeLessThanOrEqual(Math.abs(fromFloat16Bits(n) - v));
      }
    }
  });

  it('clamps finite overflow to ±65504 and counts clamped and flushed values', () => {
    const c = toFloat16([70000, -1e9, 1, 1e-9, Infinity, Number.NaN, 0]);
    expect([...c.bits].slice(0, 5)).toEqual([0x7bff, 0xfbff, 0x3c00, 0x0000, 0x7c00]);
    expect(fromFloat16Bits(c.bits[5] as number)).toBeNaN();
    expect(c.clamped).toBe(2);
    expect(c.flushed).toBe(1);
    expect(fromFloat16Bits(0x7bff)).toBe(FLOAT16_MAX);
  });
});

const SCALE = Float32Array.of(0.5, -1.25, 2, 1e-9, 3, 70000);

/** A float input through Mul (initializer), Exp (a default float32 op), Add (Constant) and Cast. */
function smallModel(): ModelProto {
  const vi = valueInfo;
  const half = onnx.AttributeProto.create({
    name: 'value_float',
    type: onnx.AttributeProto.AttributeType.FLOAT,
    f: 0.25,
  });
  const constant = onnx.NodeProto.create({
    opType: 'Constant',
    name: 'quarter',
    output: ['quarter'],
    attribute: [half],
  });
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: onnx.GraphProto.create({
      name: 'small',
      input: [vi('x', DTYPE.float, [2, 3]), vi('ids', DTYPE.int64, [2, 3])],
      output: [vi('y', DTYPE.float, [2, 3]), vi('ids_out', DTYPE.float, [2, 3])],
      initializer: [tensor('scale', DTYPE.float, [2, 3], SCALE)],
      valueInfo: [vi('scaled', DTYPE.float, [2, 3]), vi('ids_float', DTYPE.float, [2, 3])],
      node: [
        node('Mul', ['x', 'scale'], ['scaled'], 'mul'),
        constant,
        node('Mul', ['scaled', 'quarter'], ['small'], 'mul_quarter'),
        node('Exp', ['small'], ['exp'], 'exp'),
        node('Add', ['exp', 'scaled'], ['y'], 'add'),
        node('Cast', ['ids'], ['ids_float'], 'cast_ids', { to: DTYPE.float }),
        node('Add', ['ids_float', 'x'], ['ids_out'], 'add_ids'),
      ],
    }),
  });
}

async function runSmall(model: ModelProto, x: Float32Array, ids: BigInt64Array) {
  const session = await ort.InferenceSession.create(encodeOnnx(model), {
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
  try {
    const out = await session.run({
      x: new ort.Tensor('float32', x, [2, 3]),
      ids: new ort.Tensor('int64', ids, [2, 3]),
    });
    return {
      y: out.y as ort.Tensor,
      idsOut: out.ids_out as ort.Tensor,
      inputs: session.inputMetadata,
      outputs: session.outputMetadata,
    };
  } finally {
    await session.release();
  }
}

describe('convertToFloat16 on a small graph', () => {
  it('converts weights, constants, casts and value_info, and keeps IO float32 behind Casts', () => {
    const { model, stats } = convertToFloat16(smallModel(), DEFAULTS);
    const g = graphOf(model);
    const byName = new Map(g.node.map((n) => [n.name, n]));
    // IO: float32 in and out, int64 untouched.
    expect(g.input.map((i) => i.type?.tensorType?.elemType)).toEqual([DTYPE.float, DTYPE.int64]);
    expect(g.output.map((o) => o.type?.tensorType?.elemType)).toEqual([DTYPE.float, DTYPE.float]);
    // The Exp reads a weight-only float32 path? No: Mul runs in float16, so Exp gets a Cast up.
    expect(g.initializer.find((t) => t.name === 'scale')?.dataType).toBe(DTYPE.float16);
    const q = byName.get('quarter')?.attribute[0];
    expect(q?.name).toBe('value');
    expect(q?.t?.dataType).toBe(DTYPE.float16);
    expect(intAttribute(byName.get('cast_ids') as NodeProto, 'to')).toBe(DTYPE.float16);
    expect(byName.get('exp')?.input[0]).not.toBe('small'); // a Cast to float32 in front
    expect(stats.fp32_nodes).toEqual(['exp']);
    expect(stats.values_clamped).toBe(1); // 70000
    expect(stats.values_flushed).toBe(1); // 1e-9
    expect((model.graph?.valueInfo ?? []).map((v) => v.type?.tensorType?.elemType)).toEqual([
      DTYPE.float16,
      DTYPE.float16,
    ]);
    // Every Cast writes float16 inside or float32 at the boundary and around Exp.
    const casts = g.node.filter((n) => n.opType === 'Cast' && n.name !== 'cast_ids');
    expect(casts.map((n) => [n.input[0], intAttribute(n, 'to')])).toEqual([
      ['x', DTYPE.float16],
      ['small', DTYPE.float],
      ['exp', DTYPE.float16],
      ['y_fp16', DTYPE.float],
      ['ids_out_fp16', DTYPE.float],
    ]);
    expect(stats.casts_added).toBe(5);
  });

  it("runs in ONNX Runtime with float32 IO, close to the float16 weights' result", async () => {
    const x = Float32Array.of(0.3, -1.7, 2.5, 4, -0.01, 0.0001);
    const ids = BigInt64Array.of(0n, 1n, 2n, 3n, 2047n, 2048n);
    const converted = convertToFloat16(smallModel(), DEFAULTS).model;
    const half = await runSmall(converted, x, ids);
    expect(half.inputs.map((m) => (m.isTensor ? m.type : ''))).toEqual(['float32', 'int64']);
    expect(half.outputs.map((m) => (m.isTensor ? m.type : ''))).toEqual(['float32', 'float32']);
    // Reference in float64 with the float16 weights (70000 clamped to 65504, 1e-9 flushed to 0).
    const w = [...toFloat16(SCALE).bits].map(fromFloat16Bits);
    const expected = [...x].map((v, i) => {
      const scaled = v * (w[i] as number);
      return Math.exp(scaled * 0.25) + scaled;
    });
    const emulated = await runSmall(emulateFloat16(converted), x, ids);
    for (const run of [half, emulated]) {
      const y = run.y.data as Float32Array;
      expected.forEach((v, i) => {
        expect(Math.abs((y[i] as number) - v)).toBeLessThanOrEqual(2e-3 * Math.max(1, Math.abs(v)));
      });
      const idsOut = run.idsOut.data as Float32Array;
      [...ids].forEach((id, i) => {
        const v = Number(id) + (x[i] as number);
        expect(Math.abs((idsOut[i] as number) - v)).toBeLessThanOrEqual(1e-3 * Math.max(1, v));
      });
    }
    // The emulation rounds every float16 result: its outputs are float16 values.
    for (const v of emulated.y.data as Float32Array)
      expect(fromFloat16Bits(toFloat16Bits(v))).toBe(v);
  });

  it('emulates float16 rounding where the CPU provider computes in float32', async () => {
    const converted = convertToFloat16(smallModel(), { keepOps: new Set(), keepNodes: new Set() });
    const x = Float32Array.of(1.0001, 1, 1, 1, 1, 0);
    const ids = new BigInt64Array(6);
    const emulated = emulateFloat16(converted.model);
    const g = graphOf(emulated);
    expect(g.initializer.every((t) => t.dataType === DTYPE.float)).toBe(true);
    expect(g.node.every((n) => intAttribute(n, 'to') !== DTYPE.float16)).toBe(true);
    const y = (await runSmall(emulated, x, ids)).y.data as Float32Array;
    // 1.0001 × 0.5 = 0.50005 → float16 0.5; exp(0.125) + 0.5 = 1.6331 → float16 1.6328125.
    expect(y[0]).toBe(1.6328125);
  });

  it('keeps an integer cast float32 when a float32 node reads it (a Range past 2048)', async () => {
    // x[n] + Range(0, n): n = 3001 is not a float16 value (it rounds to 3000).
    const n = 3001;
    const vi = (name: string, dims: number[]) => valueInfo(name, DTYPE.float, dims);
    const i64 = (name: string, v: number) =>
      onnx.TensorProto.create({ name, dataType: 7, dims: [], int64Data: [v] });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: onnx.GraphProto.create({
        name: 'range',
        input: [vi('x', [n])],
        output: [vi('y', [n])],
        initializer: [
          i64('zero_index', 0),
          tensor('start', DTYPE.float, [], Float32Array.of(0)),
          tensor('step', DTYPE.float, [], Float32Array.of(1)),
        ],
        node: [
          node('Shape', ['x'], ['shape'], 'shape'),
          node('Gather', ['shape', 'zero_index'], ['length'], 'length', { axis: 0 }),
          node('Cast', ['length'], ['length_float'], 'cast_length', { to: DTYPE.float }),
          node('Range', ['start', 'length_float', 'step'], ['positions'], 'range'),
          node('Add', ['x', 'positions'], ['y'], 'add'),
        ],
      }),
    });
    const converted = convertToFloat16(model, DEFAULTS).model;
    const cast = graphOf(converted).node.find((x) => x.name === 'cast_length') as NodeProto;
    expect(intAttribute(cast, 'to')).toBe(DTYPE.float);
    for (const m of [converted, emulateFloat16(converted)]) {
      const session = await ort.InferenceSession.create(encodeOnnx(m), { logSeverityLevel: 3 });
      try {
        const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(n), [n]) });
        const y = out.y?.data as Float32Array;
        expect(y).toHaveLength(n);
        expect(y[2047]).toBe(2047);
      } finally {
        await session.release();
      }
    }
  });

  it('emulates ±Infinity (an attention mask) as float16 holds it, not as NaN', async () => {
    const vi = (name: string) => valueInfo(name, DTYPE.float, [4]);
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: onnx.GraphProto.create({
        name: 'mask',
        input: [vi('x')],
        output: [vi('y')],
        initializer: [tensor('mask', DTYPE.float, [4], Float32Array.of(0, 0, -Infinity, 0))],
        node: [
          node('Add', ['x', 'mask'], ['masked'], 'add'),
          node('Softmax', ['masked'], ['y'], 'softmax', { axis: 0 }),
        ],
      }),
    });
    const emulated = emulateFloat16(convertToFloat16(model, DEFAULTS).model);
    const session = await ort.InferenceSession.create(encodeOnnx(emulated), {
      logSeverityLevel: 3,
    });
    try {
      const x = Float32Array.of(0.1, 0.2, 0.3, 0.4);
      const y = (await session.run({ x: new ort.Tensor('float32', x, [4]) })).y
        ?.data as Float32Array;
      expect([...y].every(Number.isFinite)).toBe(true);
      expect(y[2]).toBe(0);
      expect(Math.abs((y[0] as number) + (y[1] as number) + (y[3] as number) - 1)).toBeLessThan(
        2e-3,
      );
    } finally {
      await session.release();
    }
  });

  it('keeps nothing in float32 with empty lists, and named nodes when asked', () => {
    const none = convertToFloat16(smallModel(), { keepOps: new Set(), keepNodes: new Set() });
    expect(none.stats.fp32_nodes).toEqual([]);
    const named = convertToFloat16(smallModel(), {
      keepOps: new Set(),
      keepNodes: new Set(['mul']),
    });
    expect(named.stats.fp32_nodes).toEqual(['mul']);
    // `scale` is read only by the float32 Mul: it stays float32.
    const g = graphOf(named.model);
    expect(g.initializer.find((t) => t.name === 'scale')?.dataType).toBe(DTYPE.float);
  });
});

describe('convertToFloat16 refuses what it does not handle (typed, naming the node)', () => {
  const mutate = (change: (m: ModelProto) => void): ModelProto => {
    const m = cloneOnnx(smallModel());
    change(m);
    return m;
  };
  it.each([
    [
      'an unknown operator',
      (m: ModelProto) => {
        const n = graphOf(m).node.find((x) => x.name === 'exp');
        if (n !== undefined) n.opType = 'MysteryOp';
      },
      /node "exp" \(MysteryOp\)/,
    ],
    [
      'a contrib-domain operator',
      (m: ModelProto) => {
        const n = graphOf(m).node.find((x) => x.name === 'add');
        if (n !== undefined) n.domain = 'com.microsoft';
      },
      /node "add" \(com\.microsoft:Add\).*another domain/,
    ],
    [
      'a subgraph',
      (m: ModelProto) => {
        const n = graphOf(m).node.find((x) => x.name === 'add');
        n?.attribute.push(
          onnx.AttributeProto.create({
            name: 'then_branch',
            type: onnx.AttributeProto.AttributeType.GRAPH,
            g: onnx.GraphProto.create({ name: 'then' }),
          }),
        );
      },
      /node "add" \(Add\) has one/,
    ],
    [
      'external initializer data',
      (m: ModelProto) => {
        const t = graphOf(m).initializer[0];
        if (t !== undefined) t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      },
      /initializer scale .* external/,
    ],
    [
      'an input used before it is produced',
      (m: ModelProto) => {
        graphOf(m).node.reverse();
      },
      /produced by an earlier node/,
    ],
  ])('%s', (_, change, message) => {
    const m = mutate(change);
    expect(() => convertToFloat16(m, DEFAULTS, 'graphs.policy')).toThrow(ModelError);
    try {
      convertToFloat16(m, DEFAULTS, 'graphs.policy');
    } catch (e) {
      expect((e as ModelError).code).toBe('MODEL_MISMATCH');
      expect((e as ModelError).field).toBe('graphs.policy');
      expect((e as ModelError).message).toMatch(message);
    }
  });
});

describe('convertToFloat16 on the shipped graphs', () => {
  let pkg: ModelPackage;
  let graphs: { encoder: ModelProto; policy: ModelProto };
  let samples: PreparedSample[];

  beforeAll(async () => {
    pkg = await loadModelPackage(TINY_VLA);
    graphs = {
      encoder: await loadOnnx(join(TINY_VLA, 'vision_encoder.onnx')),
      policy: await loadOnnx(join(TINY_VLA, 'policy.onnx')),
    };
    samples = await prepareSamples(pkg, simulatorSamples(12, 42));
  });

  it('infers int64 positions and ids, and leaves them untouched', () => {
    const types = inferElemTypes(graphs.policy);
    expect(types.get('token_positions')).toBe(DTYPE.int64);
    expect(types.get('/Mod_output_0')).toBe(DTYPE.int64);
    expect(types.get('/Cast_output_0')).toBe(DTYPE.float);
    const g = graphOf(convertToFloat16(graphs.policy, DEFAULTS).model);
    const inputs = Object.fromEntries(g.input.map((i) => [i.name, i.type?.tensorType?.elemType]));
    expect(inputs).toEqual({
      visual_tokens: DTYPE.float,
      token_positions: DTYPE.int64,
      instruction_ids: DTYPE.int64,
      state: DTYPE.float,
    });
    // Integer-only nodes still read the original int64 inputs.
    expect(g.node.find((n) => n.name === '/Mod')?.input[0]).toBe('token_positions');
    expect(g.node.find((n) => n.name === '/text/Gather')?.input[1]).toBe('instruction_ids');
  });

  it('stores float weights as float16 except those of the float32 nodes', () => {
    const { model, stats } = convertToFloat16(graphs.policy, DEFAULTS);
    const g = graphOf(model);
    expect(stats.fp32_nodes).toEqual(['/ReduceSum', '/ReduceSum_1']);
    const float32 = g.initializer.filter((t) => t.dataType === DTYPE.float).map((t) => t.name);
    expect(float32).toEqual([]);
    expect(g.initializer.filter((t) => t.dataType === DTYPE.float16).length).toBeGreaterThan(40);
    expect(stats.values_clamped).toBe(0);
    expect(encodeOnnx(model).length).toBeLessThan(0.6 * encodeOnnx(graphs.policy).length);
  });

  it('loads in ONNX Runtime (CPU) and stays within tolerance of fp32', async () => {
    const ref = await GraphRunner.create(
      pkg,
      join(TINY_VLA, 'vision_encoder.onnx'),
      join(TINY_VLA, 'policy.onnx'),
    );
    const half = await GraphRunner.create(
      pkg,
      encodeOnnx(convertToFloat16(graphs.encoder, DEFAULTS).model),
      encodeOnnx(convertToFloat16(graphs.policy, DEFAULTS).model),
    );
    const emulated = await GraphRunner.create(
      pkg,
      encodeOnnx(emulateFloat16(convertToFloat16(graphs.encoder, DEFAULTS).model)),
      encodeOnnx(emulateFloat16(convertToFloat16(graphs.policy, DEFAULTS).model)),
    );
    let actions = 0;
    let emulatedActions = 0;
    let tokens = 0;
    try {
      for (const s of samples) {
        const a = await ref.run(s);
        const b = await half.run(s);
        const c = await emulated.run(s);
        a.actions.forEach((v, i) => {
          emulatedActions = Math.max(emulatedActions, Math.abs(v - (c.actions[i] as number)));
        });
        a.actions.forEach((v, i) => {
          actions = Math.max(actions, Math.abs(v - (b.actions[i] as number)));
        });
        const ta = a.encoder.visual_tokens?.data as Float32Array;
        const tb = b.encoder.visual_tokens?.data as Float32Array;
        expect(tb).toBeInstanceOf(Float32Array);
        ta.forEach((v, i) => {
          tokens = Math.max(tokens, Math.abs(v - (tb[i] as number)));
        });
      }
    } finally {
      await Promise.all([ref.release(), half.release(), emulated.release()]);
    }
    expect(actions).toBeLessThan(3e-3); // table units; INT8 is about 5e-3
    expect(emulatedActions).toBeLessThan(3e-3);
    expect(emulatedActions).not.toBe(actions);
    expect(tokens).toBeLessThan(0.05); // layer-normed tokens of magnitude ~1
  });
});
