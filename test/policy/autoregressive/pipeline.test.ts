import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InputError } from '../../../src/errors.js';
import type { Frame } from '../../../src/ingest/index.js';
import type { ActionChunk, Observation } from '../../../src/pipeline/types.js';
import {
  ArPipeline,
  AR_DECODINGS,
  type ArDecoding,
  type ArPipelineOptions,
} from '../../../src/policy/autoregressive/pipeline.js';
import { arPipelineFromConfig } from '../../../src/policy/autoregressive/from-config.js';
import { loadConfig } from '../../../src/config/index.js';
import {
  arObservation,
  arPipelineOptions,
  makeArPackage,
  removeArPackages,
  type Json,
} from './ar-package.js';

let dir: string;
const open: ArPipeline[] = [];

const obs = arObservation;
const frame = (shift: number): Frame => arObservation(shift).frame;

async function pipeline(strategy: ArDecoding, extra?: Partial<ArPipelineOptions>) {
  const p = await ArPipeline.create(dir, arPipelineOptions(strategy, extra));
  open.push(p);
  return p;
}

function expectSafe(chunk: ActionChunk, min: readonly number[], max: readonly number[]): void {
  expect(chunk.horizon).toBe(8);
  expect(chunk.actionDim).toBe(2);
  expect(chunk.actions.length).toBe(16);
  chunk.actions.forEach((v, i) => {
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThanOrEqual(min[i % 2] as number);
    expect(v).toBeLessThanOrEqual(max[i % 2] as number);
  });
}

beforeAll(async () => {
  dir = await makeArPackage();
});

afterAll(async () => {
  await Promise.all(open.map((p) => p.release()));
  await removeArPackages();
});

describe('ArPipeline', () => {
  it('returns a horizon × action_dim chunk of finite values within the limits for every strategy, the same chunks for all', async () => {
    const chunks: Record<string, Float32Array[]> = {};
    for (const strategy of AR_DECODINGS) {
      const p = await pipeline(strategy);
      chunks[strategy] = [];
      // One stream, consecutive observations: speculative drafts from the chunk before.
      for (let i = 0; i < 3; i++) {
        const chunk = await p.infer(obs(i, { stream: 's', stamp: 1000 + 400 * i }));
        expectSafe(chunk, [0, 0], [1, 1]);
        expect(chunk.tokens).toEqual({ total: 144, kept: 144 });
        expect(chunk.sourceStamp).toBe(1000 + 400 * i);
        chunks[strategy].push(chunk.actions);
      }
      const t = p.decodeTotals;
      expect(t.chunks).toBe(3);
      expect(t.tokens).toBe(3 * 16);
      if (strategy === 'greedy') {
        expect(t.decoderCalls).toBe(3 * 15);
        expect(t.guessesFed).toBe(0);
      } else {
        expect(t.guessesFed).toBeGreaterThan(0);
        expect(t.decoderCalls).toBeLessThanOrEqual(3 * 15);
      }
    }
    expect(chunks.jacobi).toEqual(chunks.greedy);
    expect(chunks.speculative).toEqual(chunks.greedy);
  });

  it('drafts from the previous chunk of the same stream, shifted by the steps the stamps tell', async () => {
    const p = await pipeline('speculative');
    const jacobi = await pipeline('jacobi');
    await jacobi.infer(obs(1));
    const jacobiCalls = jacobi.decodeTotals.decoderCalls;
    await p.infer(obs(1, { stream: 'a', stamp: 5000 }));
    expect(p.decodeTotals.decoderCalls).toBe(jacobiCalls);
    // The same observation 1 ms later: nothing executed, the draft is the chunk itself.
    const before = { ...p.decodeTotals };
    await p.infer(obs(1, { stream: 'a', stamp: 5001 }));
    expect(p.decodeTotals.decoderCalls - before.decoderCalls).toBe(1);
    // Token 1 comes from the prefill, tokens 2..15 are the draft's guesses, token 16 the last row's.
    expect(p.decodeTotals.guessesAccepted - before.guessesAccepted).toBe(14);
    // Another stream has no draft; nor has stream a after its reset.
    const other = p.decodeTotals.decoderCalls;
    await p.infer(obs(1, { stream: 'b', stamp: 5002 }));
    expect(p.decodeTotals.decoderCalls - other).toBe(jacobiCalls);
    p.pruner.reset('a');
    const reset = p.decodeTotals.decoderCalls;
    await p.infer(obs(1, { stream: 'a', stamp: 5003 }));
    expect(p.decodeTotals.decoderCalls - reset).toBe(jacobiCalls);
  });

  it('counts the steps executed between two stamps at the configured control rate', async () => {
    // The same observation 40 ms later: no step executed at the fixture's rate, so the draft is
    // the chunk itself (one decoder call); at 100 Hz four steps were, so the draft is shifted by
    // four steps and no longer matches the chunk, which takes more calls (the same tokens).
    const calls = async (extra: Partial<ArPipelineOptions>): Promise<number> => {
      const p = await pipeline('speculative', extra);
      const first = await p.infer(obs(1, { stream: 'a', stamp: 5000 }));
      const before = p.decodeTotals.decoderCalls;
      const second = await p.infer(obs(1, { stream: 'a', stamp: 5040 }));
      expect(second.actions).toEqual(first.actions);
      return p.decodeTotals.decoderCalls - before;
    };
    expect(await calls({})).toBe(1);
    expect(await calls({ controlRateHz: 0 })).toBe(1);
    expect(await calls({ controlRateHz: 100 })).toBeGreaterThan(1);
    // The rate it counts in is the one it says (what the simulator's agent stamps frames at).
    expect((await pipeline('speculative', { controlRateHz: 100 })).controlRateHz).toBe(100);
    const p = await pipeline('speculative', { controlRateHz: 0 });
    expect(p.controlRateHz).toBe(p.model.manifest.control_rate_hz);
  });

  it('refuses a bad state, frame, camera or keep_count with a typed error naming the field, then serves the next request', async () => {
    const p = await pipeline('greedy');
    const cases: [Observation, string][] = [
      [obs(0, { state: [0.5] }), 'state'],
      [obs(0, { state: [Number.NaN, 0.5] }), 'state[0]'],
      [obs(0, { state: [0.5, 1e9] }), 'state[1]'],
      [obs(0, { keepCount: 0 }), 'keep_count'],
      [obs(0, { keepCount: 145 }), 'keep_count'],
      [obs(0, { cameras: [{ camera: 'wrist', frame: frame(0) }] }), 'images[0].camera'],
      [obs(0, { cameras: [{ frame: frame(0) }, { frame: frame(1) }] }), 'images'],
      [obs(0, { instruction: 7 as unknown as string }), 'instruction'],
    ];
    for (const [bad, field] of cases) {
      const error = await p.infer(bad).catch((e: unknown) => e);
      expect(error, field).toBeInstanceOf(InputError);
      expect((error as InputError).field).toBe(field);
      expect((error as InputError).message).toMatch(/^Expected /);
    }
    const short = { ...frame(0), data: new Uint8Array(10) };
    const error = await p.infer(obs(0, { frame: short })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toMatch(/data/);
    expectSafe(await p.infer(obs(0)), [0, 0], [1, 1]);
    expect(p.decodeTotals.chunks).toBe(1);
  });

  it('takes a named camera and keep_count, pruning before the prefill', async () => {
    const p = await pipeline('greedy', {
      pruning: {
        strategy: 'saliency',
        keepRatio: 0.5,
        keepCount: 0,
        minKeepRatio: 0.1,
        seed: 0,
        latencyBudgetMs: 0,
      },
    });
    expect(p.tokenBudget).toBe(72);
    const named = await p.infer(obs(2, { cameras: [{ camera: 'table', frame: frame(2) }] }));
    expect(named.tokens.kept).toBe(72);
    const own = await p.infer(obs(2, { keepCount: 20 }));
    expect(own.tokens.kept).toBe(20);
    expect(p.tokenBudget).toBe(72);
  });

  it("drafts from the model's own chunk, not the chunk clamped to the action limits", async () => {
    // At the table's edge the decoded chunk leaves the manifest's limits; a draft made of the
    // clamped values would no longer be the model's tokens and would be rejected.
    const p = await pipeline('speculative');
    const edge = (stamp: number) => obs(1, { stream: 'edge', stamp, state: [0.99, 0.01] });
    const first = await p.infer(edge(7000));
    expect(first.clamped).toBeGreaterThan(0);
    const before = { ...p.decodeTotals };
    await p.infer(edge(7001));
    expect(p.decodeTotals.decoderCalls - before.decoderCalls).toBe(1);
  });

  it('clamps to configured limits and limits the per-step change, counting what it changed', async () => {
    const p = await pipeline('greedy', {
      limits: { min: [0.45, 0.45], max: [0.55, 0.55], maxDeltaPerStep: 0.01 },
    });
    const chunk = await p.infer(obs(0));
    expectSafe(chunk, [0.45, 0.45], [0.55, 0.55]);
    for (let t = 1; t < 8; t++)
      for (let j = 0; j < 2; j++)
        expect(
          Math.abs(
            (chunk.actions[t * 2 + j] as number) - (chunk.actions[(t - 1) * 2 + j] as number),
          ),
        ).toBeLessThanOrEqual(0.01 + 1e-6);
    expect(chunk.clamped).toBeGreaterThan(0);
  });

  it('decodes a batch together, each chunk its own greedy chunk; a bad entry fails alone', async () => {
    const single = await pipeline('greedy');
    const batched = await pipeline('speculative', { maxBatch: 4 });
    expect(batched.maxBatch).toBe(4);
    const good = [obs(0), obs(3, { keepCount: 30 }), obs(5)];
    const expected = [];
    for (const o of good) expected.push(Array.from((await single.infer(o)).actions));
    const prepared = await batched.prepare(good[2] as Observation);
    const { encoder, graphs } = batched.policy.policy;
    const encoderRuns = vi.spyOn(encoder, 'run');
    const prefillRuns = vi.spyOn(graphs.prefillSession, 'run');
    const settled = await batched.inferBatch([
      good[0] as Observation,
      obs(1, { state: [0.5, Number.POSITIVE_INFINITY] }),
      good[1] as Observation,
      prepared,
    ]);
    // The three good observations through the encoder, and through the prefill, in one call each.
    expect([encoderRuns.mock.calls.length, prefillRuns.mock.calls.length]).toEqual([1, 1]);
    encoderRuns.mockRestore();
    prefillRuns.mockRestore();
    expect(settled.map((s) => s.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    const bad = settled[1] as PromiseRejectedResult;
    expect(bad.reason).toBeInstanceOf(InputError);
    expect((bad.reason as InputError).field).toBe('state[1]');
    const chunks = [settled[0], settled[2], settled[3]].map(
      (s) => (s as PromiseFulfilledResult<ActionChunk>).value,
    );
    expect(chunks.map((c) => Array.from(c.actions))).toEqual(expected);
    // No pruner configured: keep_count is checked but every token is kept, as in VlaPipeline.
    expect(chunks.map((c) => c.tokens.kept)).toEqual([144, 144, 144]);
    chunks.forEach((c) => {
      expectSafe(c, [0, 0], [1, 1]);
    });
    // Served on: a single request after the batch, with the speculative draft the batch left.
    expectSafe(await batched.infer(obs(0)), [0, 0], [1, 1]);
  });

  it("encodes a batch one observation at a time where the manifest fixes the encoder's batch to 1", async () => {
    const fixed = await makeArPackage((m) => {
      const encoder = (m.graphs as Json).encoder as { inputs: Json[]; outputs: Json[] };
      for (const t of [...encoder.inputs, ...encoder.outputs]) (t.shape as unknown[])[0] = 1;
    });
    const p = await ArPipeline.create(fixed, arPipelineOptions('greedy', { maxBatch: 4 }));
    open.push(p);
    const single = await pipeline('greedy');
    const good = [obs(0), obs(3), obs(5)];
    const expected = [];
    for (const o of good) expected.push(Array.from((await single.infer(o)).actions));
    const encoderRuns = vi.spyOn(p.policy.policy.encoder, 'run');
    const settled = await p.inferBatch(good);
    expect(encoderRuns).toHaveBeenCalledTimes(3);
    encoderRuns.mockRestore();
    expect(
      settled.map((s) => Array.from((s as PromiseFulfilledResult<ActionChunk>).value.actions)),
    ).toEqual(expected);
  });

  it('is built from the parameter file, decoding as runtime.decoding says', async () => {
    const config = await loadConfig({
      overrides: {
        'runtime.decoding': 'jacobi',
        'runtime.decoding_window': 4,
        'backend.warmup_runs': 1,
        'pruning.strategy': 'pool',
        'pruning.keep_ratio': 0.25,
      },
    });
    const p = await arPipelineFromConfig(config, dir);
    open.push(p);
    expect(p.decoding).toEqual({ strategy: 'jacobi', window: 4 });
    expect(p.decodeTotals.chunks).toBe(0);
    const chunk = await p.infer(obs(0));
    expect(chunk.sequence).toBe(0);
    expect(chunk.tokens.kept).toBe(36);
    expect(p.decodeTotals.guessesFed).toBeGreaterThan(0);
    await expect(loadConfig({ overrides: { 'runtime.decoding': 'beam' } })).rejects.toMatchObject({
      field: 'runtime.decoding',
    });
  });
});
