import { describe, expect, it } from 'vitest';
import { PRUNING_STRATEGIES } from '../../src/config/index.js';
import { InputError } from '../../src/errors.js';
import { keptOverlay } from '../../src/pruning/overlay.js';
import { tokenBudget, type PruneInput } from '../../src/pruning/pruner.js';
import { createPruner, poolWindow, TemporalPruner } from '../../src/pruning/strategies.js';
import { Rng } from '../../src/util/rng.js';

const GRID = { width: 12, height: 12 };
const N = 144;
const D = 8;
const SIZE = 96;

function frame(seed: number, stream = 'camera'): PruneInput {
  const rng = new Rng(seed);
  return {
    tokens: Float32Array.from({ length: N * D }, () => rng.normal()),
    saliency: Float32Array.from({ length: N }, () => rng.next()),
    grid: GRID,
    tokenDim: D,
    rgb: Uint8Array.from({ length: SIZE * SIZE * 3 }, () => rng.int(256)),
    imageWidth: SIZE,
    imageHeight: SIZE,
    stream,
  };
}

function run(
  strategy: (typeof PRUNING_STRATEGIES)[number],
  input: PruneInput,
  budget: number,
  seed = 0,
) {
  const pruner = createPruner(strategy, { seed });
  const out = { positions: new Int32Array(N), tokens: new Float32Array(N * D) };
  const count = pruner.prune(input, budget, out);
  return {
    count,
    positions: Array.from(out.positions.subarray(0, count)),
    tokens: out.tokens.subarray(0, count * D),
    pruner,
    out,
  };
}

describe('tokenBudget', () => {
  it.each([
    [1, 0, 144],
    [0.5, 0, 72],
    [0.25, 0, 36],
    [0.125, 0, 18],
    [0.001, 0, 1],
    [0.5, 10, 10],
    [1, 144, 144],
  ])('ratio %d, count %d → %d tokens', (ratio, count, expected) => {
    expect(tokenBudget(N, ratio, count)).toBe(expected);
  });

  it.each([
    [0, 0, 'pruning.keep_ratio', /\(0, 1\]/],
    [1.5, 0, 'pruning.keep_ratio', /\(0, 1\] but received 1.5/],
    [Number.NaN, 0, 'pruning.keep_ratio', /NaN/],
    [1, 145, 'pruning.keep_count', /\[0, 144\].*received 145/],
    [1, -1, 'pruning.keep_count', /\[0, 144\]/],
    [1, 2.5, 'pruning.keep_count', /2.5/],
  ])(
    'rejects ratio %d, count %d naming %s and the allowed range',
    (ratio, count, field, message) => {
      const error = (() => {
        try {
          return tokenBudget(N, ratio, count);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).field).toBe(field);
      expect((error as Error).message).toMatch(message);
    },
  );
});

describe.each(PRUNING_STRATEGIES)('%s pruner', (strategy) => {
  it.each([144, 72, 36, 18, 1])(
    'keeps at most %d tokens, in ascending grid order, deterministically',
    (budget) => {
      const input = frame(7);
      const a = run(strategy, input, budget, 3);
      expect(a.count).toBeGreaterThan(0);
      if (strategy === 'none')
        expect(a.count).toBe(N); // no pruning, whatever the budget
      else expect(a.count).toBeLessThanOrEqual(budget);
      if (strategy !== 'pool' && strategy !== 'none') expect(a.count).toBe(budget);
      expect(new Set(a.positions).size).toBe(a.count);
      expect(a.positions).toEqual([...a.positions].sort((x, y) => x - y));
      expect(a.positions.every((p) => p >= 0 && p < N)).toBe(true);
      expect(run(strategy, input, budget, 3).positions).toEqual(a.positions);
      if (strategy !== 'pool') {
        a.positions.forEach((p, i) => {
          expect(Array.from(a.tokens.subarray(i * D, (i + 1) * D))).toEqual(
            Array.from(input.tokens.subarray(p * D, (p + 1) * D)),
          );
        });
      }
    },
  );
});

describe('strategies', () => {
  it('saliency keeps exactly the most salient tokens', () => {
    const input = frame(1);
    const { positions } = run('saliency', input, 10);
    const ranked = Array.from(input.saliency.keys()).sort(
      (a, b) => (input.saliency[b] ?? 0) - (input.saliency[a] ?? 0),
    );
    expect(positions).toEqual(ranked.slice(0, 10).sort((a, b) => a - b));
  });

  it('diversity starts from the most salient token and spreads over distinct embeddings', () => {
    const input = frame(2);
    // Make 100 tokens identical copies of token 0: a diverse set keeps at most one of them.
    for (let i = 1; i < 100; i++) input.tokens.copyWithin(i * D, 0, D);
    const top = input.saliency.indexOf(Math.max(...input.saliency));
    const { positions } = run('diversity', input, 40);
    expect(positions).toContain(top);
    expect(positions.filter((p) => p < 100).length).toBeLessThanOrEqual(2);
  });

  it('random differs between frames, repeats for the same seed after a reset, and per stream', () => {
    const input = frame(3);
    const pruner = createPruner('random', { seed: 9 });
    const out = { positions: new Int32Array(N), tokens: new Float32Array(N * D) };
    const take = (i: PruneInput) => {
      pruner.prune(i, 20, out);
      return Array.from(out.positions.subarray(0, 20));
    };
    const first = take(input);
    const second = take(input);
    expect(second).not.toEqual(first);
    pruner.reset();
    expect(take(input)).toEqual(first);
    // Another stream has its own frame count: it does not advance this one's.
    expect(take({ ...input, stream: 'wrist' })).not.toEqual(first);
    expect(take(input)).toEqual(second);
    expect(run('random', input, 20, 10).positions).not.toEqual(first);
  });

  it('temporal keeps the patches that changed and forgets on reset', () => {
    const pruner = createPruner('temporal', { seed: 0 });
    const out = { positions: new Int32Array(N), tokens: new Float32Array(N * D) };
    const a = frame(4);
    const flat = { ...a, saliency: new Float32Array(N).fill(0.1) };
    pruner.prune(flat, 10, out);
    // Change the pixels of patch (row 5, col 7) only; its token must now be kept.
    const rgb = flat.rgb.slice();
    const patch = 8;
    for (let y = 5 * patch; y < 6 * patch; y++) {
      for (let x = 7 * patch; x < 8 * patch; x++)
        for (let c = 0; c < 3; c++)
          rgb[(y * SIZE + x) * 3 + c] = 255 - (rgb[(y * SIZE + x) * 3 + c] ?? 0);
    }
    pruner.prune({ ...flat, rgb }, 10, out);
    expect(Array.from(out.positions.subarray(0, 10))).toContain(5 * 12 + 7);
    // Another stream has no history: saliency alone (all equal → the first indices).
    pruner.prune({ ...flat, rgb, stream: 'wrist' }, 10, out);
    expect(Array.from(out.positions.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    pruner.reset();
    pruner.prune({ ...flat, rgb }, 10, out);
    expect(Array.from(out.positions.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(TemporalPruner.CHANGE_SCALE).toBeGreaterThan(0);
  });

  it.each([
    [144, [1, 1], 144],
    [72, [2, 1], 72],
    [36, [2, 2], 36],
    [18, [4, 2], 18],
    [1, [12, 12], 1],
  ] as const)('pool picks windows for budget %d', (budget, window, count) => {
    const [pw, ph] = poolWindow(12, 12, budget);
    expect(Math.ceil(12 / pw) * Math.ceil(12 / ph)).toBe(count);
    expect(pw * ph).toBe(window[0] * window[1]);
  });

  it('pool averages each window into one token placed inside the window', () => {
    const input = frame(5);
    const { count, positions, tokens } = run('pool', input, 36);
    expect(count).toBe(36);
    // Window 0 covers grid cells 0, 1, 12, 13.
    const mean = Array.from(
      { length: D },
      (_, j) => [0, 1, 12, 13].reduce((s, c) => s + (input.tokens[c * D + j] ?? 0), 0) / 4,
    );
    Array.from(tokens.subarray(0, D)).forEach((v, j) => {
      expect(v).toBeCloseTo(mean[j] ?? NaN, 5);
    });
    expect([0, 1, 12, 13]).toContain(positions[0]);
  });
});

describe('keptOverlay', () => {
  it('keeps kept patches, dims the others, and outlines kept patches', () => {
    const rgb = new Uint8Array(SIZE * SIZE * 3).fill(200);
    const out = keptOverlay(rgb, SIZE, SIZE, GRID, Int32Array.of(13), 1);
    const at = (x: number, y: number) =>
      Array.from(out.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3));
    expect(at(12, 12)).toEqual([200, 200, 200]); // inside patch 13 (row 1, col 1)
    expect(at(8, 8)).toEqual([0, 255, 0]); // its outline
    expect(at(50, 50)).toEqual([90, 90, 90]); // a pruned patch, dimmed
  });
});
