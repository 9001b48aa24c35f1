/**
 * The step of continuous batching: several sequences of different prefix lengths (here 144 and 37
 * visual tokens) decoded in shared decoder calls, their padding hidden by the attention mask, give
 * each sequence exactly the tokens it gets alone (PyTorch's greedy tokens of reference.json).
 */
import { fileURLToPath } from 'node:url';
import type * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  decodeChunksGreedy,
  stepSequences,
} from '../../../src/policy/autoregressive/batch-decode.js';
import { CacheRow } from '../../../src/policy/autoregressive/cache-rows.js';
import {
  compactTogether,
  startSequence,
  type DecodeSequence,
} from '../../../src/policy/autoregressive/decode.js';
import {
  DecoderGraphs,
  type KvState,
  type PrefillInput,
  type StepResult,
} from '../../../src/policy/autoregressive/decoder-graphs.js';
import { UniformBinTokenizer } from '../../../src/policy/autoregressive/uniform-bins.js';
import { AR_REFERENCE, AR_REFERENCE_INPUTS } from './ar-reference.js';

const dir = new URL('../../fixtures/ar-decoder/', import.meta.url);
const reference = AR_REFERENCE;
const inputs = AR_REFERENCE_INPUTS;
const expected = reference.cases.map((c) => c.tokens);
const tokenizer = new UniformBinTokenizer(reference.horizon, reference.action_dim);
const n = reference.horizon * reference.action_dim;
let graphs: DecoderGraphs;

beforeAll(async () => {
  graphs = await DecoderGraphs.load(
    fileURLToPath(new URL('prefill.onnx', dir)),
    fileURLToPath(new URL('decoder.onnx', dir)),
    { intraOpNumThreads: 1 },
  );
});
afterAll(async () => graphs.close());

describe('greedy decoding of several sequences in shared decoder calls', () => {
  it('gives each sequence its own greedy tokens whatever its prefix length and batch', async () => {
    expect(inputs[0]?.tokenPositions.length).not.toBe(inputs[1]?.tokenPositions.length);
    const batch = [inputs[0], inputs[1], inputs[0]] as PrefillInput[];
    const results = await decodeChunksGreedy(
      graphs,
      tokenizer,
      batch,
      0,
      reference.first_action_position,
    );
    expect(results.map((r) => r.tokens)).toEqual([expected[0], expected[1], expected[0]]);
    for (const r of results) {
      expect(r.decoderCalls).toBe(n - 1);
      expect(r.chunk).toHaveLength(n);
      expect(r.chunk.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);
    }
  });

  it('pads the fed tokens too: sequences feeding different counts share a call', async () => {
    const a = await graphs.prefill(inputs[0] as PrefillInput, reference.first_action_position);
    const b = await graphs.prefill(inputs[1] as PrefillInput, reference.first_action_position);
    const feeds = [[5, 9, 200], [17]];
    const alone = [
      await graphs.step(a.state, feeds[0] ?? []),
      await graphs.step(b.state, feeds[1] ?? []),
    ];
    const together = await graphs.stepMany([a.state, b.state], feeds);
    for (let i = 0; i < 2; i++) {
      const x = alone[i]?.logits ?? new Float32Array();
      const y = together[i]?.logits ?? new Float32Array();
      expect(y.length).toBe(x.length);
      let worst = 0;
      for (let k = 0; k < x.length; k++)
        worst = Math.max(worst, Math.abs((x[k] as number) - (y[k] as number)));
      expect(worst).toBeLessThan(1e-4);
      expect(together[i]?.state.nextPosition).toBe(alone[i]?.state.nextPosition);
    }
  });

  it("feeds a batch that steps together its last call's tensors as they are, and gathers a changed batch", async () => {
    const a = await graphs.prefill(inputs[0] as PrefillInput, reference.first_action_position);
    const b = await graphs.prefill(inputs[1] as PrefillInput, reference.first_action_position);
    const fedPast: ort.Tensor[][] = [];
    const run = graphs.decoderSession.run.bind(graphs.decoderSession);
    const spy = vi
      .spyOn(graphs.decoderSession, 'run')
      .mockImplementation((feeds: ort.InferenceSession.FeedsType) => {
        fedPast.push(
          Object.keys(feeds)
            .filter((k) => k.startsWith('past_'))
            .map((k) => feeds[k] as ort.Tensor),
        );
        return run(feeds);
      });
    try {
      const first = await graphs.stepMany([a.state, b.state], [[5, 9, 200], [17]]);
      const [ra, rb] = first.map((r) => r.state) as [KvState, KvState];
      // Row b was padded to a's longer prefix: its padding hidden, its own entries attended.
      expect(a.state.valid.length).toBeGreaterThan(b.state.valid.length);
      expect(rb.valid.length).toBe(a.state.valid.length + 1);
      expect(rb.valid.reduce((n, v) => n + v, 0)).toBe(
        b.state.valid.reduce((n, v) => n + v, 0) + 1,
      );
      // The same sequences, same order: the first call's present tensors go back in unchanged.
      const second = await graphs.stepMany([ra, rb], [[3], [4, 8]]);
      expect(fedPast[1]).toHaveLength(2 * graphs.layers);
      fedPast[1]?.forEach((t, i) => {
        expect(t).toBe(rowOf(ra).shared.presents[i]);
      });
      // Another order (and a row read alone, which slices it out): gathered, not passed through.
      const rows = second.map((r) => r.state) as [KvState, KvState];
      expect(rowOf(rows[0]).past[0]?.dims[2]).toBe(rows[0].valid.length);
      const third = await graphs.stepMany([rows[1], rows[0]], [[6], [7]]);
      fedPast[2]?.forEach((t, i) => {
        expect(t).not.toBe(rowOf(rows[0]).shared.presents[i]);
      });
      // Each sequence's logits are those of the same tokens fed to it alone.
      const soloA1 = await graphs.step(a.state, [5, 9, 200]);
      const soloA2 = await graphs.step(soloA1.state, [3]);
      const soloA3 = await graphs.step(soloA2.state, [7]);
      const soloB1 = await graphs.step(b.state, [17]);
      const soloB2 = await graphs.step(soloB1.state, [4, 8]);
      const soloB3 = await graphs.step(soloB2.state, [6]);
      const pairs: [StepResult | undefined, StepResult][] = [
        [second[0], soloA2],
        [second[1], soloB2],
        [third[1], soloA3],
        [third[0], soloB3],
      ];
      for (const [together, solo] of pairs) {
        expect(maxDifference(together?.logits, solo.logits)).toBeLessThan(1e-4);
        expect(together?.state.nextPosition).toBe(solo.state.nextPosition);
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe('dropping the hidden entries of sequences about to share a call', () => {
  const start = (input: PrefillInput): Promise<DecodeSequence> =>
    startSequence(graphs, tokenizer, input, { kind: 'greedy' }, 0, reference.first_action_position);
  const attended = (s: DecodeSequence): number => s.state.valid.reduce((n, v) => n + v, 0);

  it("keeps a short sequence's padding while a longer one shares the call, and drops every row's once the call would shrink", async () => {
    const long = await start(inputs[0] as PrefillInput);
    const short = await start(inputs[1] as PrefillInput);
    await stepSequences(graphs, [long, short]);
    const padded = short.state.valid.length;
    expect(padded - attended(short)).toBeGreaterThan(16); // the padding to the long prefix
    compactTogether([long, short]);
    // The long sequence attends to nearly all its cache: dropping the short one's padding would not
    // shorten the call, so both rows stay the last call's.
    expect(short.state.valid.length).toBe(padded);
    expect(short.state).toBeInstanceOf(CacheRow);
    // Alone, its padding is most of its cache: dropped.
    compactTogether([short]);
    expect(short.state.valid.length).toBe(attended(short));
    expect(short.state.valid.every((v) => v === 1)).toBe(true);
    // The rest of its chunk is still greedy's.
    while ((await stepSequences(graphs, [short])) > 0);
    expect(short.result().tokens).toEqual(expected[1]);
  });
});

/** `state` as the row of a shared call that `stepMany` returns. */
function rowOf(state: KvState): CacheRow {
  if (!(state instanceof CacheRow)) throw new Error('Expected a row of a shared call');
  return state;
}

function maxDifference(x: Float32Array | undefined, y: Float32Array): number {
  expect(x?.length).toBe(y.length);
  let worst = 0;
  for (let k = 0; k < y.length; k++)
    worst = Math.max(worst, Math.abs((x?.[k] as number) - (y[k] as number)));
  return worst;
}
