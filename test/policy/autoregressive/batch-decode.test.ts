/**
 * The step of continuous batching: several sequences of different prefix lengths (here 144 and 37
 * visual tokens) decoded in shared decoder calls, their padding hidden by the attention mask, give
 * each sequence exactly the tokens it gets alone (PyTorch's greedy tokens of reference.json).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeChunksGreedy } from '../../../src/policy/autoregressive/batch-decode.js';
import {
  DecoderGraphs,
  type PrefillInput,
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
});
