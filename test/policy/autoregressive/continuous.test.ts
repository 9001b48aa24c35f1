/**
 * Continuous batching of autoregressive decodes with the real fixture decoder pair: sequences
 * joining an active set between two shared decoder calls, each decoding exactly its own chunk
 * (PyTorch's greedy tokens of reference.json), whatever its strategy and whenever it joined.
 * Joins are made to happen by waiting for the scheduler's own step counter, never for time.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BackendError, InputError } from '../../../src/errors.js';
import type { ActionChunk, Observation } from '../../../src/pipeline/types.js';
import {
  decodeChunks,
  decodeChunksGreedy,
} from '../../../src/policy/autoregressive/batch-decode.js';
import {
  DecodeSequence,
  startSequence,
  type DecodeResult,
  type DecodeStrategy,
} from '../../../src/policy/autoregressive/decode.js';
import {
  DecoderGraphs,
  type PrefillInput,
} from '../../../src/policy/autoregressive/decoder-graphs.js';
import { ArPipeline, type ArDecoding } from '../../../src/policy/autoregressive/pipeline.js';
import {
  DecodeScheduler,
  startEach,
  type Admission,
} from '../../../src/policy/autoregressive/scheduler.js';
import { UniformBinTokenizer } from '../../../src/policy/autoregressive/uniform-bins.js';
import { TemporalPruner } from '../../../src/pruning/strategies.js';
import { arObservation, arPipelineOptions, makeArPackage, removeArPackages } from './ar-package.js';
import { AR_REFERENCE, AR_REFERENCE_INPUTS } from './ar-reference.js';

const fixture = new URL('../../fixtures/ar-decoder/', import.meta.url);
const reference = AR_REFERENCE;
const inputs = AR_REFERENCE_INPUTS;
const expected = reference.cases.map((c) => c.tokens);
const tokenizer = new UniformBinTokenizer(reference.horizon, reference.action_dim);
const n = reference.horizon * reference.action_dim;
const FIRST = reference.first_action_position;
const [A, B] = inputs as [PrefillInput, PrefillInput];
let graphs: DecoderGraphs;
let pkg: string;
const open: ArPipeline[] = [];

beforeAll(async () => {
  graphs = await DecoderGraphs.load(
    fileURLToPath(new URL('prefill.onnx', fixture)),
    fileURLToPath(new URL('decoder.onnx', fixture)),
    { intraOpNumThreads: 1 },
  );
  pkg = await makeArPackage();
});

afterAll(async () => {
  await graphs.close();
  await Promise.all(open.map((p) => p.release()));
  await removeArPackages();
});

/** Until `done()` holds, checked once per turn of the event loop (each decoder call takes several). */
async function until(done: () => boolean): Promise<void> {
  for (let turns = 0; !done(); turns++) {
    if (turns > 1_000_000) throw new Error('the condition never held');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** An admission of `input` decoding by `strategy`, its result recorded in `order` when it ends. */
function admit(
  input: PrefillInput,
  strategy: DecodeStrategy,
  name: string,
  order: string[],
): () => Promise<{ sequence: DecodeSequence; finish: (r: DecodeResult) => DecodeResult }> {
  return async () => ({
    sequence: await startSequence(graphs, tokenizer, input, strategy, 0, FIRST),
    finish: (r) => {
      order.push(name);
      return r;
    },
  });
}

/** A scheduler of requests that start themselves, one after another. */
const schedulerOf = (maxActive: number) =>
  new DecodeScheduler(graphs, maxActive, startEach<DecodeResult>);

const jacobi: DecodeStrategy = { kind: 'jacobi', window: n };
/** A perfect draft: the whole chunk is verified in one decoder call. */
const perfect = (tokens: number[]): DecodeStrategy => ({
  kind: 'speculative',
  window: n,
  draft: tokens,
});

describe('DecodeSequence in shared decoder calls', () => {
  it('decodes greedy, Jacobi and speculative sequences in one batch, each its own greedy tokens', async () => {
    const results = await decodeChunks(
      graphs,
      tokenizer,
      [
        { input: A, strategy: { kind: 'greedy' } },
        { input: B, strategy: jacobi },
        { input: A, strategy: perfect(expected[0] as number[]) },
        { input: B, strategy: perfect(expected[0] as number[]) },
      ],
      0,
      FIRST,
    );
    expect(results.map((r) => r.tokens)).toEqual([
      expected[0],
      expected[1],
      expected[0],
      expected[1],
    ]);
    expect(results[0]?.decoderCalls).toBe(n - 1);
    expect(results[1]?.decoderCalls).toBeLessThanOrEqual(n - 1);
    // Token 1 from the prefill, 2..n-1 the draft's, n from the last row: one call.
    expect(results[2]?.decoderCalls).toBe(1);
    expect(results[2]?.guessesAccepted).toBe(n - 2);
    // Another observation's chunk as the draft: wrong guesses cost calls, never tokens.
    expect(results[3]?.guessesFed).toBeGreaterThan(0);
    const greedy = await decodeChunksGreedy(graphs, tokenizer, [A, B], 0, FIRST);
    expect(greedy.map((r) => r.tokens)).toEqual([expected[0], expected[1]]);
  });
});

describe('DecodeScheduler: continuous batching', () => {
  it('admits a request into the running batch between two decoder calls; a short one that joins late finishes first', async () => {
    const scheduler = schedulerOf(4);
    const order: string[] = [];
    const long = scheduler.submit(admit(A, { kind: 'greedy' }, 'long', order));
    await until(() => scheduler.stats().steps >= 3);
    expect(scheduler.pending).toEqual({ waiting: 0, active: 1 });
    const joiners = [
      scheduler.submit(admit(B, jacobi, 'jacobi', order)),
      scheduler.submit(admit(A, perfect(expected[0] as number[]), 'short', order)),
    ] as const;
    const [first, second, third] = await Promise.all([long, ...joiners]);
    expect([first.tokens, second.tokens, third.tokens]).toEqual([
      expected[0],
      expected[1],
      expected[0],
    ]);
    expect(third.decoderCalls).toBe(1);
    // The short request came last and was verified in one call, while the long one went on.
    expect(order.indexOf('short')).toBeLessThan(order.indexOf('long'));
    const stats = scheduler.stats();
    expect(stats).toMatchObject({ admitted: 3, joined: 2, failed: 0, max_active: 3 });
    // Shared calls: fewer steps than the sequences' calls together.
    const calls = first.decoderCalls + second.decoderCalls + 1;
    expect(stats.steps).toBeLessThan(calls);
    await scheduler.idle();
    expect(scheduler.pending).toEqual({ waiting: 0, active: 0 });
  });

  it('holds at most maxActive sequences; the next waits for a place', async () => {
    const scheduler = schedulerOf(2);
    const order: string[] = [];
    const results = await Promise.all(
      ['a', 'b', 'c'].map((name, i) =>
        scheduler.submit(admit(i === 1 ? B : A, { kind: 'greedy' }, name, order)),
      ),
    );
    expect(results.map((r) => r.tokens)).toEqual([expected[0], expected[1], expected[0]]);
    const stats = scheduler.stats();
    expect(stats.max_active).toBe(2);
    expect(stats.admitted).toBe(3);
    // c waited for a place: a and b decoded together, then c alone.
    expect(stats.steps).toBe(2 * (n - 1));
    expect(order.indexOf('c')).toBe(2);
  });

  it('keeps caches bounded while the batch never empties: a joiner does not inherit the padding', async () => {
    const scheduler = schedulerOf(2);
    const prefix = (await graphs.prefill(B, FIRST)).state.valid.length;
    const lengths: number[] = [];
    const chained: Promise<DecodeResult>[] = [];
    // Sixteen requests, each arriving half a chunk after the one before: always two decoding.
    for (let i = 0; i < 16; i++) {
      await until(() => scheduler.stats().steps >= i * 8);
      chained.push(
        scheduler.submit(async () => {
          const sequence = await startSequence(graphs, tokenizer, B, { kind: 'greedy' }, 0, FIRST);
          return {
            sequence,
            finish: (r: DecodeResult) => {
              lengths.push(sequence.state.valid.length);
              return r;
            },
          };
        }),
      );
    }
    const results = await Promise.all(chained);
    expect(results.every((r) => r.tokens.join() === expected[1]?.join())).toBe(true);
    expect(scheduler.stats().joined).toBe(15);
    // Its own prefix and chunk, plus at most the padding it may hold before it is dropped.
    for (const length of lengths) expect(length).toBeLessThanOrEqual(prefix + 3 * n + 32);
  });

  it('fails a request whose admission fails alone, and goes on with the others', async () => {
    const scheduler = schedulerOf(4);
    const order: string[] = [];
    const running = scheduler.submit(admit(A, { kind: 'greedy' }, 'a', order));
    await until(() => scheduler.stats().steps >= 1);
    // A state of the wrong length: ONNX Runtime fails the prefill of this request only.
    const broken: PrefillInput = { ...B, state: new Float32Array(5) };
    const bad = scheduler.submit(admit(broken, { kind: 'greedy' }, 'bad', order));
    const after = scheduler.submit(admit(B, jacobi, 'b', order));
    await expect(bad).rejects.toBeInstanceOf(BackendError);
    expect((await running).tokens).toEqual(expected[0]);
    expect((await after).tokens).toEqual(expected[1]);
    // A finish that throws (an unsafe chunk) rejects its own request only.
    const refused = scheduler.submit(async () => ({
      sequence: await startSequence(graphs, tokenizer, A, { kind: 'greedy' }, 0, FIRST),
      finish: (): never => {
        throw new InputError('Expected a safe chunk', { field: 'actions' });
      },
    }));
    const kept = scheduler.submit(admit(B, { kind: 'greedy' }, 'kept', order));
    await expect(refused).rejects.toBeInstanceOf(InputError);
    expect((await kept).tokens).toEqual(expected[1]);
    expect(scheduler.stats()).toMatchObject({ failed: 2, admitted: 4 });
  });
});

describe('DecodeScheduler: admitting the waiting requests together', () => {
  it('starts the requests waiting at the same time in one start, and those arriving later in the next', async () => {
    const groups: string[][] = [];
    const scheduler = new DecodeScheduler<{ name: string; input: PrefillInput }, string>(
      graphs,
      4,
      async (requests) => {
        groups.push(requests.map((r) => r.name));
        const sequences = await Promise.all(
          requests.map((r) =>
            startSequence(graphs, tokenizer, r.input, { kind: 'greedy' }, 0, FIRST),
          ),
        );
        return sequences.map((sequence, i) => ({
          status: 'fulfilled' as const,
          value: {
            sequence,
            finish: (r: DecodeResult) => `${requests[i]?.name}:${r.tokens.join()}`,
          },
        }));
      },
    );
    const first = ['a', 'b', 'c'].map((name, i) =>
      scheduler.submit({ name, input: i === 1 ? B : A }),
    );
    await until(() => scheduler.stats().steps >= 2);
    const late = ['d', 'e'].map((name) => scheduler.submit({ name, input: B }));
    const done = await Promise.all([...first, ...late]);
    expect(done).toEqual([
      `a:${expected[0]?.join()}`,
      `b:${expected[1]?.join()}`,
      `c:${expected[0]?.join()}`,
      `d:${expected[1]?.join()}`,
      // The active set holds four: e waited for a place, and started alone.
      `e:${expected[1]?.join()}`,
    ]);
    expect(groups).toEqual([['a', 'b', 'c'], ['d'], ['e']]);
    expect(scheduler.stats()).toMatchObject({ admitted: 5, starts: 3, joined: 2, failed: 0 });
  });

  it('fails the requests of a start that throws or leaves them out, and serves the next ones', async () => {
    let calls = 0;
    const scheduler = new DecodeScheduler<PrefillInput, number[]>(graphs, 4, async (requests) => {
      calls++;
      if (calls === 1) throw new BackendError('the encoder failed', { field: 'graphs.encoder' });
      if (calls === 2) return [];
      const sequences = await Promise.all(
        requests.map((input) =>
          startSequence(graphs, tokenizer, input, { kind: 'greedy' }, 0, FIRST),
        ),
      );
      return sequences.map((sequence): PromiseSettledResult<Admission<number[]>> => ({
        status: 'fulfilled',
        value: { sequence, finish: (r) => r.tokens },
      }));
    });
    const thrown = [scheduler.submit(A), scheduler.submit(B)];
    await expect(thrown[0]).rejects.toBeInstanceOf(BackendError);
    await expect(thrown[1]).rejects.toBeInstanceOf(BackendError);
    await expect(scheduler.submit(A)).rejects.toThrow(/no admission/);
    expect(await scheduler.submit(B)).toEqual(expected[1]);
    expect(scheduler.stats()).toMatchObject({ failed: 3, admitted: 1, starts: 3 });
  });
});

describe('ArPipeline with continuous batching', () => {
  const obs = arObservation;

  async function pipeline(
    strategy: ArDecoding,
    extra: { maxBatch?: number; continuous?: boolean } = {},
  ): Promise<ArPipeline> {
    const p = await ArPipeline.create(pkg, arPipelineOptions(strategy, extra));
    open.push(p);
    return p;
  }

  it('gives a request that joins the running batch exactly its own greedy chunk; a bad one fails alone', async () => {
    const single = await pipeline('greedy');
    const p = await pipeline('jacobi', { maxBatch: 4, continuous: true });
    expect(p.continuous).toBe(true);
    const sent = [obs(0, { stream: 'r0' }), obs(3, { stream: 'r1' }), obs(5, { stream: 'r2' })];
    const want: number[][] = [];
    for (const o of sent) want.push(Array.from((await single.infer(o)).actions));
    const first = p.infer(sent[0] as Observation);
    await until(() => (p.batching?.steps ?? 0) >= 1);
    const bad = p.infer(obs(1, { state: [0.5, Number.NaN] }));
    const rest = [p.infer(sent[1] as Observation), p.infer(sent[2] as Observation)];
    await expect(bad).rejects.toMatchObject({ name: 'InputError', field: 'state[1]' });
    const chunks: ActionChunk[] = await Promise.all([first, ...rest]);
    expect(chunks.map((c) => Array.from(c.actions))).toEqual(want);
    chunks.forEach((c) => {
      expect(c.actions.every((v) => Number.isFinite(v) && v >= 0 && v <= 1)).toBe(true);
    });
    const batching = p.batching;
    expect(batching?.admitted).toBe(3);
    expect(batching?.joined).toBeGreaterThanOrEqual(1);
    expect(p.decodeTotals.chunks).toBe(3);
    // Still serving, and batches go through the scheduler too.
    const prepared = await p.prepare(sent[1] as Observation);
    const settled = await p.inferBatch([prepared, obs(2, { keepCount: 999 })]);
    expect(settled[0]).toMatchObject({ status: 'fulfilled' });
    expect(Array.from((settled[0] as PromiseFulfilledResult<ActionChunk>).value.actions)).toEqual(
      want[1],
    );
    expect(settled[1]).toMatchObject({ status: 'rejected' });
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ field: 'keep_count' });
    p.resetBatching();
    expect(p.batching?.admitted).toBe(0);
  });

  it('admits the requests handed over together with one encoder call and one prefill; a failed group starts each alone, a failed prefill without encoding again', async () => {
    const single = await pipeline('greedy');
    const p = await pipeline('greedy', { maxBatch: 4, continuous: true });
    const sent = [obs(0, { stream: 'r0' }), obs(3, { stream: 'r1' }), obs(5, { stream: 'r2' })];
    const want: number[][] = [];
    for (const o of sent) want.push(Array.from((await single.infer(o)).actions));
    const prepared = await Promise.all(sent.map((o) => p.prepare(o)));
    const { encoder, graphs: g } = p.policy.policy;
    const encoderRuns = vi.spyOn(encoder, 'run');
    const prefillRuns = vi.spyOn(g.prefillSession, 'run');
    // The latency-budget controller learns from starts that ran as planned only.
    const learned = vi.spyOn(p.policy, 'learn');
    const together = await p.inferBatch(prepared);
    expect([encoderRuns.mock.calls.length, prefillRuns.mock.calls.length]).toEqual([1, 1]);
    expect(learned).toHaveBeenCalledTimes(3);
    expect(
      together.map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(want);
    expect(p.batching).toMatchObject({ admitted: 3, starts: 1 });
    // The group's encoder call fails once: each request then starts alone and gets its chunk.
    encoderRuns.mockClear();
    encoderRuns.mockRejectedValueOnce(new Error('out of memory'));
    learned.mockClear();
    const alone = await p.inferBatch(prepared);
    expect(encoderRuns.mock.calls.length).toBe(1 + 3);
    expect(learned).not.toHaveBeenCalled();
    expect(
      alone.map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(want);
    // The group's prefill fails once: each request's prefill runs alone from the tokens already
    // encoded and pruned (a stateful pruner sees each frame once), and each gets its chunk.
    encoderRuns.mockClear();
    prefillRuns.mockClear();
    prefillRuns.mockRejectedValueOnce(new Error('out of memory'));
    learned.mockClear();
    const retried = await p.inferBatch(prepared);
    expect([encoderRuns.mock.calls.length, prefillRuns.mock.calls.length]).toEqual([1, 1 + 3]);
    expect(learned).not.toHaveBeenCalled();
    expect(
      retried.map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(want);
    // A prefill that fails alone fails only its own request.
    prefillRuns.mockClear();
    prefillRuns.mockRejectedValueOnce(new Error('out of memory'));
    prefillRuns.mockRejectedValueOnce(new Error('still out of memory'));
    const one = await p.inferBatch(prepared);
    expect(one.map((s) => s.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(
      one.slice(1).map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(want.slice(1));
    encoderRuns.mockRestore();
    prefillRuns.mockRestore();
    learned.mockRestore();
  });

  it('answers the calls made before release, their frames still decoding', async () => {
    const p = await ArPipeline.create(
      pkg,
      arPipelineOptions('greedy', { maxBatch: 4, continuous: true }),
    );
    const calls = [p.infer(obs(0)), p.infer(obs(1))];
    await p.release();
    const chunks = await Promise.all(calls);
    expect(chunks.map((c) => c.actions.length)).toEqual([16, 16]);
  });

  it('a temporal pruner sees each frame once when the group prefill is retried, and the chunks are those of a run without the failure', async () => {
    const temporal = {
      maxBatch: 4,
      continuous: true,
      pruning: {
        ...arPipelineOptions('greedy').pruning,
        strategy: 'temporal' as const,
        keepRatio: 0.5,
      },
    };
    const sent = [obs(0, { stream: 'r0' }), obs(3, { stream: 'r1' }), obs(5, { stream: 'r2' })];
    const clean = await pipeline('greedy', temporal);
    const want = (await clean.inferBatch(await Promise.all(sent.map((o) => clean.prepare(o))))).map(
      (s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions),
    );
    const p = await pipeline('greedy', temporal);
    const prepared = await Promise.all(sent.map((o) => p.prepare(o)));
    const prunes = vi.spyOn(TemporalPruner.prototype, 'prune');
    const prefillRuns = vi.spyOn(p.policy.policy.graphs.prefillSession, 'run');
    prefillRuns.mockRejectedValueOnce(new Error('out of memory'));
    const got = await p.inferBatch(prepared);
    expect(prefillRuns.mock.calls.length).toBe(1 + 3);
    expect(prunes).toHaveBeenCalledTimes(3);
    expect(
      got.map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(want);
    prunes.mockRestore();
    prefillRuns.mockRestore();
  });

  it('is off unless asked for: batches then run to the end before the next start', async () => {
    const p = await pipeline('greedy', { maxBatch: 4 });
    expect(p.continuous).toBe(false);
    expect(p.batching).toBeUndefined();
  });
});
