import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../../../src/errors.js';
import { SymbolBpe } from '../../../src/policy/autoregressive/bpe.js';
import { dctColumns, idctColumns } from '../../../src/policy/autoregressive/dct.js';
import { FastTokenizer, roundHalfEven } from '../../../src/policy/autoregressive/fast.js';
import { UniformBinTokenizer } from '../../../src/policy/autoregressive/uniform-bins.js';

/** Made by test/fixtures/action-tokenizers/make.py from the NumPy/SciPy reference tokenizers. */
interface Fixtures {
  uniform_bins: {
    horizon: number;
    action_dim: number;
    chunk: number[];
    tokens: number[];
    decoded: number[];
  }[];
  fast: {
    spec: {
      horizon: number;
      action_dim: number;
      scale: number;
      min_token: number;
      alphabet: number;
      merges: [number, number][];
    };
    cases: { chunk: number[]; symbols: number[]; tokens: number[]; decoded: number[] }[];
  }[];
  dct: { horizon: number; action_dim: number; x: number[]; coefficients: number[] }[];
}
const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/action-tokenizers/fixtures.json', import.meta.url), 'utf8'),
) as Fixtures;

function fast(spec: Fixtures['fast'][number]['spec']): FastTokenizer {
  return new FastTokenizer({
    horizon: spec.horizon,
    actionDim: spec.action_dim,
    scale: spec.scale,
    minToken: spec.min_token,
    alphabet: spec.alphabet,
    merges: spec.merges,
  });
}

describe('DCT', () => {
  it('matches scipy.fft.dct(norm="ortho") along time and inverts itself', () => {
    for (const f of fixtures.dct) {
      const c = dctColumns(f.x, f.horizon, f.action_dim);
      c.forEach((v, i) => {
        expect(v).toBeCloseTo(f.coefficients[i] as number, 12);
      });
      idctColumns(c, f.horizon, f.action_dim).forEach((v, i) => {
        expect(v).toBeCloseTo(f.x[i] as number, 12);
      });
    }
  });

  it('rounds halves to even as numpy.around does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, -2, 2, -3,
    ]);
  });
});

describe('uniform bins (OpenVLA)', () => {
  it('gives the reference tokens and decoded values, edges and out-of-range values included', () => {
    for (const f of fixtures.uniform_bins) {
      const t = new UniformBinTokenizer(f.horizon, f.action_dim);
      expect(t.encode(f.chunk)).toEqual(f.tokens);
      t.decode(f.tokens).forEach((v, i) => {
        expect(v).toBeCloseTo(f.decoded[i] as number, 6);
      });
    }
  });

  it('round-trips within one bin width and always admits exactly horizon × dim tokens', () => {
    const t = new UniformBinTokenizer(8, 2);
    const chunk = Array.from({ length: 16 }, (_, i) => Math.sin(i) * 0.9);
    t.decode(t.encode(chunk)).forEach((v, i) => {
      expect(Math.abs(v - (chunk[i] as number))).toBeLessThanOrEqual(2 / 255);
    });
    const mask = new Uint8Array(t.vocabSize);
    expect(t.allowedNext(new Array(15).fill(3), mask)).toBe(true);
    expect(mask.every((m) => m === 1)).toBe(true);
    expect(t.allowedNext(new Array(16).fill(3), mask)).toBe(false);
    expect(t.decode([]).every(Number.isFinite)).toBe(true);
  });
});

describe('FAST (DCT + BPE)', () => {
  it('gives the reference symbols, tokens and decoded chunks', () => {
    for (const f of fixtures.fast) {
      const t = fast(f.spec);
      for (const c of f.cases) {
        expect(t.symbols(c.chunk)).toEqual(c.symbols);
        expect(t.encode(c.chunk)).toEqual(c.tokens);
        t.decode(c.tokens).forEach((v, i) => {
          expect(v).toBeCloseTo(c.decoded[i] as number, 6);
        });
      }
    }
  });

  it('compresses smooth chunks and round-trips within the quantisation step', () => {
    for (const f of fixtures.fast) {
      const t = fast(f.spec);
      for (const c of f.cases) {
        const tokens = t.encode(c.chunk);
        expect(tokens.length).toBeLessThan(c.symbols.length);
        // Each coefficient is off by at most 0.5 / scale; the orthonormal inverse keeps the error's
        // norm, so no value is off by more than that norm.
        const bound = (0.5 / f.spec.scale) * Math.sqrt(c.symbols.length);
        t.decode(tokens).forEach((v, i) => {
          expect(Math.abs(v - (c.chunk[i] as number))).toBeLessThanOrEqual(bound);
        });
      }
    }
  });

  it('decodes any admitted sequence to a whole finite chunk, and the constraint ends it', () => {
    const spec = fixtures.fast[0]?.spec;
    if (spec === undefined) throw new Error('fixtures hold no FAST tokenizer');
    const t = fast(spec);
    const n = spec.horizon * spec.action_dim;
    const mask = new Uint8Array(t.vocabSize);
    // A greedy walk that always takes the longest admitted token fills the chunk and then stops.
    const tokens: number[] = [];
    while (t.allowedNext(tokens, mask)) {
      let best = -1;
      for (let id = 0; id < t.endToken; id++)
        if (mask[id] === 1 && (best < 0 || t.bpe.symbolLength(id) > t.bpe.symbolLength(best)))
          best = id;
      tokens.push(best < 0 ? t.endToken : best);
    }
    expect(tokens.reduce((s, id) => s + t.bpe.symbolLength(id), 0)).toBe(n);
    expect(mask[t.endToken]).toBe(0);
    for (const seq of [[], [t.endToken], [0], tokens, [...tokens, 0, 0]]) {
      const chunk = t.decode(seq);
      expect(chunk).toHaveLength(n);
      expect(chunk.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)).toBe(true);
    }
    // The end token is admitted only after at least one token.
    t.allowedNext([], mask);
    expect(mask[t.endToken]).toBe(0);
  });
});

describe('symbol BPE', () => {
  it('refuses merges that use tokens not yet defined, and ids outside the vocabulary', () => {
    expect(() => new SymbolBpe(4, [[0, 5]])).toThrow(ModelError);
    expect(
      () =>
        new SymbolBpe(4, [
          [0, 1],
          [0, 1],
        ]),
    ).toThrow(/merged once/);
    const bpe = new SymbolBpe(4, [
      [0, 1],
      [4, 2],
    ]);
    expect(bpe.encode([0, 1, 2, 0, 1, 3])).toEqual([5, 4, 3]);
    expect(bpe.decode([5, 4, 3])).toEqual([0, 1, 2, 0, 1, 3]);
    expect(() => bpe.decode([6])).toThrow(/token id in \[0, 6\)/);
  });
});
