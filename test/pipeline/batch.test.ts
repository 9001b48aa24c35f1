import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import type { RawFrame } from '../../src/ingest/index.js';
import { loadModelPackage, type ModelPackage } from '../../src/model/manifest.js';
import {
  PreparedObservation,
  VlaPipeline,
  type ActionChunk,
  type Observation,
  type PipelineOptions,
} from '../../src/pipeline/pipeline.js';
import type { PruningStrategy } from '../../src/pruning/pruner.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { testPipelineOptions, TINY_VLA } from '../helpers.js';
import { withBatchDimension } from '../model/package.js';

/** The shipped package with a manifest that declares no batch dimension. */
let unbatched: ModelPackage;
/** The shipped package as if its manifest declared the batch dimension its graphs have. */
let batched: ModelPackage;

beforeAll(async () => {
  const shipped = await loadModelPackage(TINY_VLA);
  unbatched = { ...shipped, manifest: withBatchDimension(shipped.manifest, 1) };
  batched = { ...shipped, manifest: withBatchDimension(shipped.manifest) };
});

function observation(seed: number, extra: Partial<Observation> = {}): Observation {
  const obs = new TabletopSim({ seed }).observe();
  return {
    frame: obs.image,
    instruction: obs.instruction,
    state: obs.state,
    stamp: seed,
    ...extra,
  };
}

function pruning(strategy: PruningStrategy, keepRatio = 0.25): PipelineOptions['pruning'] {
  return { strategy, keepRatio, keepCount: 0, seed: 7, minKeepRatio: 0.1 };
}

/** A pipeline on the batched package (created and released around `body`). */
async function withPipeline<T>(
  options: Partial<PipelineOptions>,
  body: (p: VlaPipeline) => Promise<T>,
): Promise<T> {
  const p = await VlaPipeline.create(batched, testPipelineOptions(options));
  try {
    return await body(p);
  } finally {
    await p.release();
  }
}

function expectSameChunk(actual: ActionChunk, expected: ActionChunk): void {
  expect(actual.tokens).toEqual(expected.tokens);
  expect(actual.sourceStamp).toBe(expected.sourceStamp);
  expect(actual.clamped).toBe(expected.clamped);
  expect(actual.actions.length).toBe(expected.actions.length);
  expected.actions.forEach((v, i) => {
    expect(Math.abs((actual.actions[i] ?? NaN) - v)).toBeLessThan(1e-5);
  });
}

describe('VlaPipeline.inferBatch', () => {
  it('takes one observation at a time when the manifest declares no batch dimension', async () => {
    const p = await VlaPipeline.create(unbatched, testPipelineOptions());
    try {
      expect(p.maxBatch).toBe(1);
      const [one] = await p.inferBatch([observation(3)]);
      expect(one?.status).toBe('fulfilled');
      const error = await p.inferBatch([observation(3), observation(4)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect(error).toMatchObject({ field: 'batch' });
      expect((error as Error).message).toMatch(
        /at most 1 observations.*declares no batch dimension/,
      );
    } finally {
      await p.release();
    }
  });

  it.each([
    ['none', 1],
    ['saliency', 0.25],
    ['random', 0.25],
    ['temporal', 0.25],
  ] as const)(
    'gives what infer gives, observation by observation (%s pruning)',
    async (strategy, keepRatio) => {
      // Two streams interleaved, one of them twice in the batch: stateful pruners must see each
      // stream's frames in order. One request keeps fewer tokens than the rest (its own group).
      const batch = [
        observation(3, { stream: 'a' }),
        observation(4, { stream: 'b' }),
        observation(5, { stream: 'a', keepCount: 10 }),
        observation(6, { stream: 'c', instruction: 'move to the red block' }),
        observation(7, { stream: 'b' }),
      ];
      const options = { pruning: pruning(strategy, keepRatio) };
      const sequential = await withPipeline(options, async (p) => {
        const out: ActionChunk[] = [];
        for (const obs of batch) out.push(await p.infer(obs));
        return out;
      });
      await withPipeline(options, async (p) => {
        expect(p.maxBatch).toBeGreaterThanOrEqual(batch.length);
        const results = await p.inferBatch(batch);
        expect(results.map((r) => r.status)).toEqual(batch.map(() => 'fulfilled'));
        results.forEach((r, i) => {
          if (r.status !== 'fulfilled') return;
          expectSameChunk(r.value, sequential[i] as ActionChunk);
          expect(r.value.sequence).toBe(i);
          const s = r.value.stages;
          expect(r.value.latencyMs).toBeCloseTo(
            s.preprocess + s.encode + s.prune + s.policy + s.postprocess,
            6,
          );
        });
        // The `none` strategy keeps every token whatever the budget.
        const fewer = strategy === 'none' ? 144 : 10;
        expect(results[2]).toMatchObject({ value: { tokens: { kept: fewer } } });
        // The next batch continues the streams (the temporal pruner compares with their last frame).
        const again = await p.inferBatch([observation(8, { stream: 'a' })]);
        const alone = await withPipeline(options, async (q) => {
          for (const obs of batch) await q.infer(obs);
          return q.infer(observation(8, { stream: 'a' }));
        });
        expect(again[0]?.status).toBe('fulfilled');
        if (again[0]?.status === 'fulfilled') expectSameChunk(again[0].value, alone);
      });
    },
  );

  it('fails a bad observation alone, with the error infer throws', async () => {
    const bad: [Observation, string][] = [
      [observation(4, { state: [0.5] }), 'state'],
      [observation(5, { state: [0.5, Number.NaN] }), 'state[1]'],
      [observation(6, { keepCount: 1000 }), 'keep_count'],
      [
        observation(7, {
          frame: { kind: 'encoded', format: 'jpeg', data: new Uint8Array([1, 2, 3, 4]) },
        }),
        'image.data',
      ],
    ];
    await withPipeline({}, async (p) => {
      const good = [observation(3), observation(8)];
      const results = await p.inferBatch([
        good[0] as Observation,
        ...bad.map(([o]) => o),
        good[1] as Observation,
      ]);
      expect(results[0]?.status).toBe('fulfilled');
      expect(results[results.length - 1]?.status).toBe('fulfilled');
      for (const [i, [obs, field]] of bad.entries()) {
        const r = results[i + 1];
        expect(r?.status).toBe('rejected');
        const reason: unknown = r?.status === 'rejected' ? r.reason : undefined;
        expect(reason).toBeInstanceOf(InputError);
        expect(reason).toMatchObject({ field });
        const thrown = await p.infer(obs).catch((e: unknown) => e);
        expect((reason as Error).message).toBe((thrown as Error).message);
      }
      // Only the good ones took a sequence number.
      const sequences = results.flatMap((r) =>
        r.status === 'fulfilled' ? [r.value.sequence] : [],
      );
      expect(sequences).toEqual([sequences[0], (sequences[0] ?? 0) + 1]);
    });
  });

  it('gives the frames after a raw frame the kernel refuses their own images', async () => {
    // The kernel writes each raw frame's tensor into the encoder slot it expects to take; a frame
    // refused in the kernel's own checks moves the later ones down a slot.
    await withPipeline({}, async (p) => {
      const good = [observation(3), observation(4), observation(5)];
      const alone: ActionChunk[] = [];
      for (const o of good) alone.push(await p.infer(o));
      const base = good[0] as Observation;
      const bad: Observation = {
        ...base,
        frame: { ...(base.frame as RawFrame), data: new Uint8Array(10) },
      };
      const results = await p.inferBatch([good[0], bad, good[1], good[2]] as Observation[]);
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
      ]);
      expect(results[1]?.status === 'rejected' ? results[1].reason : undefined).toMatchObject({
        name: 'InputError',
        field: 'image.data',
      });
      [0, 2, 3].forEach((i, k) => {
        const r = results[i];
        if (r?.status === 'fulfilled') expectSameChunk(r.value, alone[k] as ActionChunk);
      });
      // An encoded frame that fails to decode moves the raw frames after it down a slot too.
      const garbled: Observation = {
        ...base,
        frame: { kind: 'encoded', format: 'jpeg', data: new Uint8Array([0xff, 0xd8, 0xff, 0, 1]) },
      };
      const afterGarbled = await p.inferBatch([garbled, good[1], good[2]] as Observation[]);
      expect(afterGarbled.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
      [1, 2].forEach((i) => {
        const r = afterGarbled[i];
        if (r?.status === 'fulfilled') expectSameChunk(r.value, alone[i] as ActionChunk);
      });
      // A raw frame wider than the kernel takes (within ingest.max_pixels) beside a garbled JPEG
      // once failed the batch's raw conversion as a whole and left the decode's rejection
      // unhandled, which ended the process: now each fails alone.
      const wide: Observation = {
        ...base,
        frame: {
          kind: 'raw',
          encoding: 'mono8',
          width: 2 ** 20 + 1,
          height: 1,
          data: new Uint8Array(2 ** 20 + 1),
        },
      };
      const beside = await p.inferBatch([garbled, wide, good[0]] as Observation[]);
      expect(beside.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
      expect(
        beside.map((r) => (r.status === 'rejected' ? (r.reason as InputError).field : '')),
      ).toEqual(['image.data', 'image.width', '']);
      // And with a prepared observation first: every raw frame's slot counts it.
      const prepared = await p.prepare(good[2] as Observation);
      const mixed = await p.inferBatch([prepared, bad, good[0] as Observation]);
      expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      if (mixed[0]?.status === 'fulfilled')
        expectSameChunk(mixed[0].value, alone[2] as ActionChunk);
      if (mixed[2]?.status === 'fulfilled')
        expectSameChunk(mixed[2].value, alone[0] as ActionChunk);
    });
  });

  it('takes prepared observations (decoded ahead, while another batch runs)', async () => {
    await withPipeline({}, async (p) => {
      const obs = [observation(3), observation(4), observation(5)];
      const expected = await p.inferBatch(obs);
      const prepared = await Promise.all(obs.map((o) => p.prepare(o)));
      const running = p.inferBatch([observation(9)]);
      const next = p.prepare(observation(10));
      await running;
      const results = await p.inferBatch([...prepared, await next]);
      results.slice(0, 3).forEach((r, i) => {
        const e = expected[i];
        expect(r.status).toBe('fulfilled');
        if (r.status === 'fulfilled' && e?.status === 'fulfilled')
          expectSameChunk(r.value, e.value);
      });
      await expect(p.prepare(observation(3, { state: [1] }))).rejects.toBeInstanceOf(InputError);
      // Worth it for an encoded frame (decoded on the pool meanwhile), not for a raw one (the
      // batch converts its raw frames in one native call).
      expect(p.benefitsFromPrepare(observation(3))).toBe(false);
      const jpeg: Observation = {
        ...observation(3),
        frame: { kind: 'encoded', format: 'jpeg', data: new Uint8Array([0xff, 0xd8, 0xff]) },
      };
      expect(p.benefitsFromPrepare(jpeg)).toBe(true);
    });
  });

  it('fails a hand-built prepared observation with a wrong frame or budget alone', async () => {
    await withPipeline({}, async (p) => {
      const good = await p.prepare(observation(3));
      const shortFrame = new PreparedObservation(
        good.observation,
        new Uint8Array(10),
        undefined,
        0,
      );
      const hugeBudget = new PreparedObservation(good.observation, good.rgb, 100_000, 0);
      const results = await p.inferBatch([good, shortFrame, hugeBudget]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
      const fields = results.map((r) =>
        r.status === 'rejected' ? (r.reason as InputError).field : undefined,
      );
      expect(fields).toEqual([undefined, 'rgb', 'keep_count']);
      for (const r of results.slice(1))
        expect(r.status === 'rejected' ? r.reason : undefined).toBeInstanceOf(InputError);
    });
  });

  it('fails a hand-built prepared observation with a bad state alone', async () => {
    await withPipeline({}, async (p) => {
      const good = await p.prepare(observation(3));
      const badState = new PreparedObservation(
        { ...good.observation, state: [0.5, Number.NaN] },
        good.rgb,
        undefined,
        0,
      );
      const results = await p.inferBatch([badState, good]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
      expect(results[0]?.status === 'rejected' ? results[0].reason : undefined).toMatchObject({
        name: 'InputError',
        field: 'state[1]',
      });
    });
  });

  it('shows the last frame in lastSelection, and a prepared frame keeps its own image', async () => {
    // Raw frames are converted into the batch slots' buffers, reused from one inference to the
    // next: the selection must be the newest frame's image, and a PreparedObservation made by
    // prepare() must not be overwritten by the inferences that run before it is used.
    await withPipeline({}, async (p) => {
      const [a, b, c] = [observation(11), observation(12), observation(13)];
      const image = async (o: Observation): Promise<Uint8Array> => (await p.prepare(o)).rgb;
      const [imageA, imageB, imageC] = [await image(a), await image(b), await image(c)];
      expect(imageA).not.toEqual(imageB);
      const preparedA = await p.prepare(a);
      await p.infer(b);
      expect(p.lastSelection?.rgb).toEqual(imageB);
      await p.infer(c);
      expect(p.lastSelection?.rgb).toEqual(imageC);
      expect(preparedA.rgb).toEqual(imageA);
      const [fromPrepared, fromRaw] = await p.inferBatch([preparedA, b]);
      expect(fromPrepared?.status).toBe('fulfilled');
      expect(fromRaw?.status).toBe('fulfilled');
      expect(p.lastSelection?.rgb).toEqual(imageB);
      expect(preparedA.rgb).toEqual(imageA);
    });
  });

  it('keeps the last selection and books the latency of every chunk', async () => {
    await withPipeline({ pruning: pruning('saliency') }, async (p) => {
      const before = p.latency.total.count;
      const results = await p.inferBatch([observation(3), observation(4, { keepCount: 5 })]);
      expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
      expect(p.latency.total.count).toBe(before + 2);
      expect(p.lastSelection?.positions.length).toBe(5);
      expect(await p.inferBatch([])).toEqual([]);
    });
  });
});
