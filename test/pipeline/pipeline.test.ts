import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadModelPackage, type ModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline } from '../../src/pipeline/pipeline.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { FIXTURES, HAS_FIXTURES, testPipelineOptions, TINY_VLA } from '../helpers.js';

let model: ModelPackage;
let pipeline: VlaPipeline;

beforeAll(async () => {
  model = await loadModelPackage(TINY_VLA);
  pipeline = await VlaPipeline.create(model, testPipelineOptions());
});
afterAll(async () => {
  await pipeline.release();
});

function observation(seed = 3) {
  const obs = new TabletopSim({ seed }).observe();
  return { frame: obs.image, instruction: obs.instruction, state: obs.state, stamp: 1234.5 };
}

describe('VlaPipeline', () => {
  it('is ready after warm-up and runs on the CPU provider', () => {
    expect(pipeline.ready).toBe(true);
    expect(pipeline.provider).toBe('cpu');
    expect(pipeline.precision).toBe('fp32');
  });

  it('turns an observation into a chunk with its metadata, inside the limits', async () => {
    const m = model.manifest;
    const chunk = await pipeline.infer(observation());
    expect(chunk.horizon).toBe(m.chunk.horizon);
    expect(chunk.actionDim).toBe(m.chunk.action_dim);
    expect(chunk.actions.length).toBe(m.chunk.horizon * m.chunk.action_dim);
    expect(chunk.dt).toBeCloseTo(1 / m.control_rate_hz, 9);
    expect(chunk.sourceStamp).toBe(1234.5);
    expect(chunk.tokens).toEqual({ total: 144, kept: 144 });
    for (const [i, v] of chunk.actions.entries()) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(m.action.min[i % m.chunk.action_dim] ?? -Infinity);
      expect(v).toBeLessThanOrEqual(m.action.max[i % m.chunk.action_dim] ?? Infinity);
    }
    expect(Object.keys(chunk.stages)).toEqual([
      'preprocess',
      'encode',
      'prune',
      'policy',
      'postprocess',
    ]);
    expect(chunk.latencyMs).toBeGreaterThan(0);
    const next = await pipeline.infer(observation());
    expect(next.sequence).toBe(chunk.sequence + 1);
    expect(Array.from(next.actions)).toEqual(Array.from(chunk.actions));
  });

  it('gives different chunks for different instructions on the same frame', async () => {
    const obs = observation(8);
    const a = await pipeline.infer({ ...obs, instruction: 'move to the red block' });
    const b = await pipeline.infer({ ...obs, instruction: 'move below the blue block' });
    expect(Array.from(a.actions)).not.toEqual(Array.from(b.actions));
  });

  it('clamps to configured limits tighter than the manifest', async () => {
    const tight = await VlaPipeline.create(
      model,
      testPipelineOptions({ limits: { min: [0.4, 0.4], max: [0.6, 0.6], maxDeltaPerStep: 0 } }),
    );
    try {
      const chunk = await tight.infer(observation());
      expect(Math.min(...chunk.actions)).toBeGreaterThanOrEqual(0.4);
      expect(Math.max(...chunk.actions)).toBeLessThanOrEqual(0.6);
    } finally {
      await tight.release();
    }
  });

  it('rejects limits of the wrong length when it is created', async () => {
    await expect(
      VlaPipeline.create(
        model,
        testPipelineOptions({ limits: { min: [0], max: [1], maxDeltaPerStep: 0 } }),
      ),
    ).rejects.toThrow(
      /Expected 2 values \(one per action dimension: x, y\) for safety.action_min but received 1/,
    );
  });

  it.each([
    [
      'an unknown encoding',
      { kind: 'raw', width: 4, height: 4, encoding: 'yuv420', data: new Uint8Array(48) },
      'image.encoding',
      /yuv420/,
    ],
    [
      'a buffer too small for its size',
      { kind: 'raw', width: 64, height: 64, encoding: 'rgb8', data: new Uint8Array(100) },
      'image.data',
      /Expected/,
    ],
    [
      'bytes that are no image',
      { kind: 'encoded', format: 'jpeg', data: new Uint8Array([1, 2, 3, 4]) },
      'image.data',
      /JPEG or PNG/,
    ],
  ] as const)(
    'rejects %s with a typed error and keeps serving',
    async (_name, frame, field, message) => {
      const good = observation();
      const error = await pipeline.infer({ ...good, frame }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).field).toBe(field);
      expect((error as Error).message).toMatch(message);
      const chunk = await pipeline.infer(good);
      expect(chunk.actions.every(Number.isFinite)).toBe(true);
    },
  );

  it.each([
    ['a state of the wrong length', [0.5], 'state'],
    ['a NaN state', [0.5, Number.NaN], 'state[1]'],
  ] as const)('rejects %s', async (_name, state, field) => {
    const error = await pipeline.infer({ ...observation(), state }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe(field);
  });

  it('accepts a JPEG of the camera frame', async () => {
    const sharp = (await import('sharp')).default;
    const obs = observation();
    const jpeg = await sharp(obs.frame.data, { raw: { width: 128, height: 128, channels: 3 } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const fromRaw = await pipeline.infer(obs);
    const fromJpeg = await pipeline.infer({
      ...obs,
      frame: { kind: 'encoded', format: 'jpeg', data: jpeg },
    });
    fromJpeg.actions.forEach((v, i) => {
      expect(Math.abs(v - (fromRaw.actions[i] ?? 0))).toBeLessThan(0.05);
    });
  });

  it.skipIf(!HAS_FIXTURES)('runs on a real photograph (EXIF-rotated JPEG)', async () => {
    const data = await readFile(`${FIXTURES}real-images/Landscape_5.jpg`);
    const chunk = await pipeline.infer({ ...observation(), frame: { kind: 'encoded', data } });
    expect(chunk.actions.every(Number.isFinite)).toBe(true);
  });
  if (!HAS_FIXTURES)
    console.warn(
      `skipping the real-photograph pipeline test: ${FIXTURES} is absent (only the project's workspace has it)`,
    );

  it('records latency per stage only after warm-up', () => {
    const stages = pipeline.latency.stageMeans();
    expect(pipeline.latency.total.count).toBeGreaterThan(0);
    expect(stages.encode).toBeGreaterThan(0);
    expect(stages.policy).toBeGreaterThan(0);
  });
});
