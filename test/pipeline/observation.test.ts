import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline, type Observation } from '../../src/pipeline/pipeline.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { testPipelineOptions, TINY_VLA } from '../helpers.js';

let pipeline: VlaPipeline;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
});
afterAll(async () => {
  await pipeline.release();
});

function good(): Observation {
  const o = new TabletopSim({ seed: 5 }).observe();
  return { frame: o.image, instruction: o.instruction, state: Array.from(o.state) };
}

// Library callers write JavaScript too: what a caller can pass, typed or not.
const BAD: readonly [string, () => unknown, string][] = [
  ['a null observation', () => null, 'observation'],
  ['a number for the observation', () => 5, 'observation'],
  ['frame: null', () => ({ ...good(), frame: null }), 'frame'],
  ['no frame', () => ({ instruction: 'x', state: [0.5, 0.5] }), 'frame'],
  [
    'a frame of unknown kind',
    () => ({ ...good(), frame: { kind: 'jpeg', data: 1 } }),
    'frame.kind',
  ],
  ['instruction: 5', () => ({ ...good(), instruction: 5 }), 'instruction'],
  ['no instruction', () => ({ frame: good().frame, state: [0.5, 0.5] }), 'instruction'],
  ['no state', () => ({ frame: good().frame, instruction: 'x' }), 'state'],
  ['a string state', () => ({ ...good(), state: 'ab' }), 'state'],
  ['a state of strings', () => ({ ...good(), state: ['0.5', 0.5] }), 'state[0]'],
  ['a state of 3 values', () => ({ ...good(), state: [0.5, 0.5, 0.5] }), 'state'],
  ['a NaN state', () => ({ ...good(), state: [0.5, NaN] }), 'state[1]'],
  // Finite, but the policy's output turns NaN from about 3e37 (float32 overflow).
  ['a state of 3e37', () => ({ ...good(), state: [3e37, 0.5] }), 'state[0]'],
  ['a state of -1e38', () => ({ ...good(), state: [0.5, -1e38] }), 'state[1]'],
  ['a state 1e6 standard deviations out', () => ({ ...good(), state: [2e5, 0.5] }), 'state[0]'],
  ['a string stamp', () => ({ ...good(), stamp: 'now' }), 'stamp'],
  ['a numeric stream', () => ({ ...good(), stream: 3 }), 'stream'],
  ['a string keep count', () => ({ ...good(), keepCount: '4' }), 'keep_count'],
];

describe('observation check', () => {
  it.each(BAD)('infer refuses %s with an InputError naming the field', async (_, make, field) => {
    const error: unknown = await pipeline.infer(make() as Observation).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe(field);
    expect((error as InputError).message).toMatch(/^Expected /);
  });

  it.each(BAD)('prepare and inferBatch refuse %s the same way', async (_, make, field) => {
    const error: unknown = await pipeline.prepare(make() as Observation).catch((e: unknown) => e);
    expect((error as InputError).field).toBe(field);
    const [result] = await pipeline.inferBatch([make() as Observation]);
    expect(result?.status).toBe('rejected');
    const reason: unknown = (result as PromiseRejectedResult).reason;
    expect(reason).toBeInstanceOf(InputError);
    expect((reason as InputError).field).toBe(field);
  });

  it('still runs good observations after bad ones, with states far but not absurdly out', async () => {
    const chunk = await pipeline.infer({ ...good(), state: [40, -40] });
    expect(chunk.actions.every((v) => Number.isFinite(v))).toBe(true);
    expect((await pipeline.infer(good())).actions.length).toBe(chunk.actions.length);
  });

  it('takes its state bound from the options (ingest.max_state_deviation)', async () => {
    const strict = await VlaPipeline.create(
      await loadModelPackage(TINY_VLA),
      testPipelineOptions({
        ingest: { maxPixels: 1 << 24, maxEncodedBytes: 1 << 25, maxStateDeviation: 3 },
      }),
    );
    try {
      // The manifest's std is about 0.2: 2 is about 7.5 standard deviations from 0.5.
      const error: unknown = await strict
        .infer({ ...good(), state: [2, 0.5] })
        .catch((e: unknown) => e);
      expect((error as InputError).field).toBe('state[0]');
      expect((error as InputError).message).toContain('ingest.max_state_deviation');
      await expect(strict.infer({ ...good(), state: [0.6, 0.5] })).resolves.toBeDefined();
    } finally {
      await strict.release();
    }
  });
});
