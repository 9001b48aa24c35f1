import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../../src/errors.js';
import {
  argmaxAllowed,
  decodeChunk,
  type DecodeStrategy,
} from '../../../src/policy/autoregressive/decode.js';
import {
  DecoderGraphs,
  type PrefillInput,
} from '../../../src/policy/autoregressive/decoder-graphs.js';
import { FastTokenizer } from '../../../src/policy/autoregressive/fast.js';
import { UniformBinTokenizer } from '../../../src/policy/autoregressive/uniform-bins.js';
import { AR_REFERENCE, AR_REFERENCE_INPUTS } from './ar-reference.js';

/** test/fixtures/ar-decoder/make.py: a random-weight decoder pair and PyTorch's greedy decode. */
const dir = new URL('../../fixtures/ar-decoder/', import.meta.url);
const reference = AR_REFERENCE;
const inputs = AR_REFERENCE_INPUTS;
const tokenizer = new UniformBinTokenizer(reference.horizon, reference.action_dim);
const n = reference.horizon * reference.action_dim;
const first = reference.first_action_position;
let graphs: DecoderGraphs;

beforeAll(async () => {
  graphs = await DecoderGraphs.load(
    fileURLToPath(new URL('prefill.onnx', dir)),
    fileURLToPath(new URL('decoder.onnx', dir)),
  );
});
afterAll(async () => graphs.close());

describe('greedy decoding with a key-value cache', () => {
  it("reproduces PyTorch's greedy tokens, one decoder call per token after the first", async () => {
    for (const [i, input] of inputs.entries()) {
      const r = await decodeChunk(graphs, tokenizer, input, { kind: 'greedy' }, 0, first);
      expect(r.tokens).toEqual(reference.cases[i]?.tokens);
      expect(r.decoderCalls).toBe(n - 1);
      expect(r.chunk).toHaveLength(n);
      expect(r.chunk.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);
    }
  });
});

describe('faster decoding gives the same tokens as greedy', () => {
  const strategies = (truth: number[]): [string, DecodeStrategy][] => [
    ['jacobi window 4', { kind: 'jacobi', window: 4 }],
    ['jacobi window 16', { kind: 'jacobi', window: 16 }],
    ['speculative, exact draft', { kind: 'speculative', window: 16, draft: truth }],
    [
      'speculative, draft right for its first half',
      {
        kind: 'speculative',
        window: 8,
        draft: [...truth.slice(0, 8), ...truth.slice(0, 8).map((t) => (t + 1) % 256)],
      },
    ],
    [
      'speculative, draft shifted by one step',
      { kind: 'speculative', window: 8, draft: [...truth.slice(2), ...truth.slice(-2)] },
    ],
    [
      'speculative, wrong draft',
      { kind: 'speculative', window: 8, draft: truth.map((t) => (t + 7) % 256) },
    ],
  ];

  it('for every strategy and case, with fewer or equal sequential calls', async () => {
    for (const [i, input] of inputs.entries()) {
      const truth = reference.cases[i]?.tokens ?? [];
      for (const [name, strategy] of strategies(truth)) {
        const r = await decodeChunk(graphs, tokenizer, input, strategy, 0, first);
        expect(r.tokens, name).toEqual(truth);
        expect(r.decoderCalls, name).toBeLessThanOrEqual(n - 1);
      }
    }
  });

  it('an exact draft decodes the chunk in one decoder call', async () => {
    const truth = reference.cases[0]?.tokens ?? [];
    const r = await decodeChunk(
      graphs,
      tokenizer,
      inputs[0] as PrefillInput,
      {
        kind: 'speculative',
        window: n,
        draft: truth,
      },
      0,
      first,
    );
    // The prefill gives the first token and the call's last row the last one: n - 2 guesses.
    expect(r.decoderCalls).toBe(1);
    expect(r.guessesAccepted).toBe(n - 2);
  });
});

describe('constrained to the tokenizer', () => {
  // A FAST tokenizer over the first 150 merges of a trained one: 197 ids, the decoder's logits
  // beyond them are never chosen, and the end token is chosen only where FAST admits it.
  const fixtures = JSON.parse(
    readFileSync(
      new URL('../../fixtures/action-tokenizers/fixtures.json', import.meta.url),
      'utf8',
    ),
  ) as {
    fast: {
      spec: {
        horizon: number;
        action_dim: number;
        scale: number;
        min_token: number;
        alphabet: number;
        merges: [number, number][];
      };
    }[];
  };
  const spec = fixtures.fast[0]?.spec;
  if (spec === undefined) throw new Error('no FAST fixture');
  const fast = new FastTokenizer({
    horizon: spec.horizon,
    actionDim: spec.action_dim,
    scale: spec.scale,
    minToken: spec.min_token,
    alphabet: spec.alphabet,
    merges: spec.merges.slice(0, 150),
  });

  it('FAST: every strategy decodes the same admitted sequence, a whole chunk', async () => {
    for (const input of inputs) {
      const greedy = await decodeChunk(graphs, fast, input, { kind: 'greedy' }, 0, first);
      const mask = new Uint8Array(fast.vocabSize);
      greedy.tokens.forEach((t, i) => {
        expect(fast.allowedNext(greedy.tokens.slice(0, i), mask)).toBe(true);
        expect(mask[t]).toBe(1);
      });
      expect(fast.allowedNext(greedy.tokens, mask)).toBe(false);
      expect(greedy.chunk).toHaveLength(spec.horizon * spec.action_dim);
      expect(greedy.chunk.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);
      for (const strategy of [
        { kind: 'jacobi', window: 6 },
        { kind: 'speculative', window: 6, draft: greedy.tokens.slice(1) },
      ] as DecodeStrategy[]) {
        const r = await decodeChunk(graphs, fast, input, strategy, 0, first);
        expect(r.tokens).toEqual(greedy.tokens);
      }
    }
  });

  it('never picks a NaN logit, and a row without a finite admitted one is a backend error', () => {
    const logits = Float32Array.from([Number.NaN, 3, 5, Number.NaN]);
    expect(argmaxAllowed(logits, 0, Uint8Array.from([1, 1, 0, 1]))).toBe(1);
    expect(() => argmaxAllowed(logits, 0, Uint8Array.from([1, 0, 0, 1]))).toThrow(/finite logits/);
  });
});

describe('graph signatures', () => {
  it('refuses a prefill given as the decoder, naming the missing inputs', async () => {
    const prefill = fileURLToPath(new URL('prefill.onnx', dir));
    await expect(DecoderGraphs.load(prefill, prefill)).rejects.toThrow(ModelError);
    await expect(DecoderGraphs.load(prefill, prefill)).rejects.toThrow(/past_key_values\.0\.key/);
  });
});
