import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline, type Observation } from '../../src/pipeline/pipeline.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { testPipelineOptions, TINY_VLA } from '../helpers.js';

let pipeline: VlaPipeline;

beforeAll(async () => {
  const model = await loadModelPackage(TINY_VLA);
  // Saliency pruning: overlapping calls share the pruner's output buffers as well as the model's.
  pipeline = await VlaPipeline.create(
    model,
    testPipelineOptions({
      pruning: { strategy: 'saliency', keepRatio: 0.5, keepCount: 0, seed: 0, minKeepRatio: 0.1 },
    }),
  );
});
afterAll(async () => {
  await pipeline.release();
});

/** Observations of different scenes, each with its own image buffer. */
function observations(count: number): Observation[] {
  return Array.from({ length: count }, (_, i) => {
    const obs = new TabletopSim({ seed: 100 + i }).observe();
    return {
      frame: { ...obs.image, data: obs.image.data.slice() },
      instruction: obs.instruction,
      state: Array.from(obs.state),
    };
  });
}

describe('VlaPipeline under overlapping calls', () => {
  it('gives each overlapping infer its own observation`s chunk, as sequential calls do', async () => {
    const inputs = observations(6);
    const sequential: number[][] = [];
    for (const obs of inputs) sequential.push(Array.from((await pipeline.infer(obs)).actions));
    // All calls in flight at once: each must get what it got alone.
    const overlapping = await Promise.all(inputs.map((obs) => pipeline.infer(obs)));
    expect(overlapping.map((c) => Array.from(c.actions))).toEqual(sequential);
    // Different scenes give different chunks, so the comparison can catch a mix-up.
    expect(new Set(sequential.map((a) => a.join())).size).toBe(inputs.length);
    // Sequence numbers follow the call order.
    const seq = overlapping.map((c) => c.sequence);
    expect(seq).toEqual([...seq].sort((a, b) => a - b));
  });

  it('keeps infer and inferBatch apart when they overlap, and a failing call does not block the queue', async () => {
    const inputs = observations(3);
    const alone = await Promise.all(inputs.map((obs) => pipeline.infer(obs)));
    const bad = { ...inputs[0], state: [Number.NaN, 0] } as Observation;
    const [a, failed, batch, c] = await Promise.allSettled([
      pipeline.infer(inputs[0] as Observation),
      pipeline.infer(bad),
      pipeline.inferBatch([inputs[1] as Observation]),
      pipeline.infer(inputs[2] as Observation),
    ]);
    expect(failed.status).toBe('rejected');
    expect(a.status === 'fulfilled' && Array.from(a.value.actions)).toEqual(
      Array.from(alone[0]?.actions ?? []),
    );
    const batched = batch.status === 'fulfilled' ? batch.value[0] : undefined;
    expect(batched?.status === 'fulfilled' && Array.from(batched.value.actions)).toEqual(
      Array.from(alone[1]?.actions ?? []),
    );
    expect(c.status === 'fulfilled' && Array.from(c.value.actions)).toEqual(
      Array.from(alone[2]?.actions ?? []),
    );
  });
});
