import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { simulatorSamples } from '../../src/sim/samples.js';
import { ModelError } from '../../src/errors.js';
import { loadModelPackage, type ModelPackage } from '../../src/model/manifest.js';
import { prepareSamples, type PreparedSample } from '../../src/compression/calibration.js';
import { calibrate } from '../../src/compression/compress.js';
import {
  cloneOnnx,
  dims,
  encodeOnnx,
  floatData,
  graphOf,
  loadOnnx,
  type ModelProto,
} from '../../src/util/onnx-graph.js';
import {
  activationParams,
  defaultExclusions,
  planQuantization,
  quantizeModel,
  quantizeWeights,
} from '../../src/compression/quantize.js';
import { GraphRunner, RangeCollector } from '../../src/compression/runner.js';
import { TINY_VLA } from '../helpers.js';

let pkg: ModelPackage;
let graphs: { encoder: ModelProto; policy: ModelProto };
let samples: PreparedSample[];

beforeAll(async () => {
  pkg = await loadModelPackage(TINY_VLA);
  graphs = {
    encoder: await loadOnnx(join(TINY_VLA, 'vision_encoder.onnx')),
    policy: await loadOnnx(join(TINY_VLA, 'policy.onnx')),
  };
  samples = await prepareSamples(pkg, simulatorSamples(12, 99));
});

function plan(): {
  encoder: ReturnType<typeof planQuantization>;
  policy: ReturnType<typeof planQuantization>;
} {
  return {
    encoder: planQuantization(
      graphs.encoder,
      new Set(defaultExclusions(graphs.encoder, 'encoder')),
    ),
    policy: planQuantization(graphs.policy, new Set(defaultExclusions(graphs.policy, 'policy'))),
  };
}

async function maxActionError(encoder: ModelProto, policy: ModelProto): Promise<number> {
  const ref = await GraphRunner.create(
    pkg,
    join(TINY_VLA, 'vision_encoder.onnx'),
    join(TINY_VLA, 'policy.onnx'),
  );
  const q = await GraphRunner.create(pkg, encodeOnnx(encoder), encodeOnnx(policy));
  let worst = 0;
  try {
    for (const s of samples) {
      const a = (await ref.run(s)).actions;
      const b = (await q.run(s)).actions;
      a.forEach((v, i) => {
        worst = Math.max(worst, Math.abs(v - (b[i] as number)));
      });
    }
  } finally {
    await Promise.all([ref.release(), q.release()]);
  }
  return worst;
}

describe('quantizer on the shipped graphs', () => {
  it('keeps the patch embedding and the action head in float by default', () => {
    expect(defaultExclusions(graphs.encoder, 'encoder')).toEqual(['/enc/patch_embed/Conv']);
    expect(defaultExclusions(graphs.policy, 'policy')).toEqual(['/head/MatMul']);
    const p = plan();
    expect(p.encoder.map((t) => t.node)).not.toContain('/enc/patch_embed/Conv');
    expect(p.policy.map((t) => t.node)).not.toContain('/head/MatMul');
    expect(p.encoder.length).toBeGreaterThan(0);
    expect(p.policy.length).toBeGreaterThan(0);
    for (const t of [...p.encoder, ...p.policy]) {
      // MatMul weights are [K, N] (channel axis 1); Gemm here has transB = 1 ([N, K], axis 0).
      expect(t.op === 'MatMul' ? t.axis : t.op === 'Gemm' ? t.axis : -1).toBe(
        t.op === 'MatMul' ? 1 : 0,
      );
    }
  });

  it('round-trips every quantized weight within half a step of its channel scale', () => {
    const inits = new Map(graphOf(graphs.policy).initializer.map((t) => [t.name, t]));
    for (const t of plan().policy) {
      const w = inits.get(t.weight);
      expect(w).toBeDefined();
      if (w === undefined) continue;
      const shape = dims(w);
      const values = floatData(w);
      const { q, scales } = quantizeWeights(values, shape, t.axis);
      const cols = shape[1] ?? 1;
      expect(scales.length).toBe(shape[t.axis]);
      values.forEach((v, i) => {
        const s = scales[t.axis === 1 ? i % cols : Math.floor(i / cols)] as number;
        expect(Math.abs((q[i] as number) * s - v)).toBeLessThanOrEqual(s / 2 + 1e-7);
      });
    }
  });

  it('puts zero exactly on the uint8 grid', () => {
    const { scale, zeroPoint } = activationParams({ min: -1.3, max: 4.2 });
    expect(scale).toBeCloseTo(5.5 / 255, 8);
    expect(zeroPoint).toBe(Math.round(1.3 / scale));
    expect(activationParams({ min: 0.5, max: 2 }).zeroPoint).toBe(0);
  });

  it('pools values over frames for percentile ranges (small tensors keep their spread)', () => {
    const minmax = new RangeCollector('minmax');
    const pct = new RangeCollector('percentile', 99);
    for (let f = 0; f < 200; f++) {
      const state = Float32Array.of(-2 + f / 50, 2 - f / 50);
      minmax.add('state', state);
      pct.add('state', state);
      const big = new Float32Array(5000).fill(0.5);
      big[f] = 100; // one outlier per frame
      pct.add('big', big);
    }
    expect(minmax.ranges().get('state')).toEqual({ min: -2, max: 2 });
    const s = pct.ranges().get('state');
    expect(s?.min).toBeLessThan(-1.9);
    expect(s?.max).toBeGreaterThan(1.9);
    expect(pct.ranges().get('big')?.max).toBe(0.5);
  });

  it('writes a static QDQ graph that ORT loads and whose actions stay close to fp32', async () => {
    const targets = plan();
    const ranges = await calibrate(pkg, graphs, targets, samples, 'minmax', 4, () => undefined);
    expect(ranges.encoder.size).toBeGreaterThan(0);
    const encoder = quantizeModel(graphs.encoder, targets.encoder, 'static', ranges.encoder);
    const policy = quantizeModel(graphs.policy, targets.policy, 'static', ranges.policy);
    const ops = graphOf(policy).node.map((n) => n.opType);
    expect(ops).toContain('QuantizeLinear');
    expect(ops).toContain('DequantizeLinear');
    expect(encodeOnnx(policy).length).toBeLessThan(encodeOnnx(graphs.policy).length);
    expect(await maxActionError(encoder, policy)).toBeLessThan(0.03);
  });

  it('writes a dynamic (DynamicQuantizeLinear + MatMulInteger) graph close to fp32', async () => {
    const targets = plan();
    const encoder = quantizeModel(graphs.encoder, targets.encoder, 'dynamic');
    const policy = quantizeModel(graphs.policy, targets.policy, 'dynamic');
    const ops = graphOf(policy).node.map((n) => n.opType);
    expect(ops).not.toContain('QuantizeLinear');
    expect(ops.filter((o) => o === 'MatMulInteger')).toHaveLength(targets.policy.length);
    expect(ops).toContain('DynamicQuantizeLinear');
    expect(await maxActionError(encoder, policy)).toBeLessThan(0.02);
  });

  it('refuses a graph with operators it does not handle, naming them', () => {
    const bad = cloneOnnx(graphs.policy);
    const n = graphOf(bad).node.find((x) => x.opType === 'Erf');
    if (n !== undefined) n.opType = 'MysteryOp';
    expect(() => planQuantization(bad, new Set(), 'graphs.policy')).toThrow(ModelError);
    expect(() => planQuantization(bad, new Set(), 'graphs.policy')).toThrow(/MysteryOp/);
  });
});
