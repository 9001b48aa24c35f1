import { copyFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { InputError } from '../../src/errors.js';
import {
  ADDON_PATH,
  buildPath,
  loadAddon,
  nativeLoad,
  runnableBuilds,
} from '../../src/native/binding.js';
import {
  kernelBackend,
  kernels,
  nativeKernels,
  referenceKernels,
  warnOnce,
  type Kernels,
} from '../../src/native/index.js';
import { ROOT } from '../helpers.js';
import { NATIVE_BUILDS, skipWithoutNative } from './builds.js';
import { Rng } from '../../src/util/rng.js';

const RUNS = { numRuns: 200 };

skipWithoutNative('native kernels against the reference');

/** A small deterministic PRNG for large generated inputs. */
function random(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const SCORE_MODES = ['uniform', 'ties', 'nan', 'special'] as const;
type ScoreMode = (typeof SCORE_MODES)[number];
const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1e-45, 3.4e38, -1];
const TIES = [-1, 0, -0, 0.5, 1];

function scoresOf(n: number, mode: ScoreMode, seed: number): Float32Array {
  const next = random(seed);
  const pick = (values: readonly number[]): number =>
    values[Math.floor(next() * values.length)] ?? 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (mode === 'uniform') out[i] = next() * 2 - 1;
    else if (mode === 'ties') out[i] = pick(TIES);
    else if (mode === 'nan') out[i] = next() < 0.3 ? NaN : next() * 2 - 1;
    else out[i] = pick(SPECIAL);
  }
  return out;
}

const TOKEN_MODES = [
  'uniform',
  'ties',
  'zero-rows',
  'duplicates',
  'nan',
  'nan-rows',
  'special',
] as const;
type TokenMode = (typeof TOKEN_MODES)[number];

/** Float32 values at the edges: infinities, the extremes of the normal and subnormal ranges, -0. */
const SPECIAL_FLOATS = [Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45, -1e-45, 1.2e-38, -0, 0];

function tokensOf(n: number, dim: number, mode: TokenMode, seed: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n * dim; i++) {
    out[i] = mode === 'ties' ? Math.floor(next() * 3) - 1 : next() * 2 - 1;
    if (mode === 'special' && next() < 0.05) {
      out[i] = SPECIAL_FLOATS[Math.floor(next() * SPECIAL_FLOATS.length)] ?? 0;
    }
  }
  for (let r = 0; r < n; r++) {
    const row = out.subarray(r * dim, (r + 1) * dim);
    if (mode === 'zero-rows' && next() < 0.3) row.fill(0);
    if (mode === 'duplicates' && r >= 3) row.set(out.subarray((r % 3) * dim, (r % 3) * dim + dim));
    if (mode === 'nan' && next() < 0.2) row[Math.floor(next() * dim)] = NaN;
    // Most rows NaN: every minimum distance can be NaN, where the first unselected row is taken.
    if (mode === 'nan-rows' && next() < 0.8) row[Math.floor(next() * dim)] = NaN;
  }
  return out;
}

function bytesOf(length: number, seed: number, from?: Uint8Array): Uint8Array {
  const next = random(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    // Half the bytes of a second image equal the first's, so patches range from equal to unlike.
    out[i] = from !== undefined && next() < 0.5 ? (from[i] ?? 0) : Math.floor(next() * 256);
  }
  return out;
}

/** Element-wise Object.is equality (fast on large arrays, unlike toEqual). */
function expectIdentical(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      expect.fail(`element ${i}: ${actual[i]} differs from ${expected[i]}`);
    }
  }
}

/**
 * Sizes: the shipped model's (144 tokens × 64 dims), small ones (n = 1 included), and larger ones
 * whose n and dim are and are not multiples of the native kernels' vector widths (4, 8, 16).
 */
const tokenShape = fc.oneof(
  fc.constant({ n: 144, dim: 64 }),
  fc.record({ n: fc.integer({ min: 1, max: 40 }), dim: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ n: fc.integer({ min: 1, max: 200 }), dim: fc.integer({ min: 1, max: 80 }) }),
);

const topKCase = fc
  .record({
    n: fc.oneof(
      fc.constant(144),
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 1, max: 400 }),
    ),
    mode: fc.constantFrom(...SCORE_MODES),
    seed: fc.integer(),
  })
  .chain((c) =>
    fc
      .record({ k: fc.oneof(fc.integer({ min: 1, max: c.n }), fc.constant(c.n)) })
      .map((r) => ({ ...c, ...r })),
  );

const diversityCase = fc
  .record({ shape: tokenShape, mode: fc.constantFrom(...TOKEN_MODES), seed: fc.integer() })
  .chain((c) =>
    fc
      .record({
        k: fc.integer({ min: 1, max: c.shape.n }),
        first: fc.integer({ min: 0, max: c.shape.n - 1 }),
      })
      .map((r) => ({ ...c, ...r })),
  );

/** Grids: the shipped 96×96 on 12×12, patches of any width, and patches a multiple of 8 pixels
 * wide (whole 8-byte groups, the native SIMD path) on rows of many lengths. */
const imageCase = fc.oneof(
  fc.record({
    gridW: fc.constant(12),
    gridH: fc.constant(12),
    pw: fc.constant(8),
    ph: fc.constant(8),
    seed: fc.integer(),
  }),
  fc.record({
    gridW: fc.integer({ min: 1, max: 6 }),
    gridH: fc.integer({ min: 1, max: 6 }),
    pw: fc.integer({ min: 1, max: 7 }),
    ph: fc.integer({ min: 1, max: 7 }),
    seed: fc.integer(),
  }),
  fc.record({
    gridW: fc.integer({ min: 1, max: 9 }),
    gridH: fc.integer({ min: 1, max: 4 }),
    pw: fc.constantFrom(8, 16, 24, 40),
    ph: fc.integer({ min: 1, max: 5 }),
    seed: fc.integer(),
  }),
);

// --- brute-force definitions -------------------------------------------------------------------

/** topK by sorting every index (larger first, NaN last, lower index on ties). */
function bruteTopK(scores: Float32Array, k: number): number[] {
  const rank = (v: number): number => (Number.isNaN(v) ? -Infinity : v);
  const order = Array.from(scores.keys()).sort((i, j) => {
    const a = scores[i] as number;
    const b = scores[j] as number;
    if (Number.isNaN(a) !== Number.isNaN(b)) return Number.isNaN(a) ? 1 : -1;
    return rank(b) - rank(a) || i - j;
  });
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Cosine distance as documented, with the dot products summed in the documented lane order. */
function cosineDistance(t: Float32Array, dim: number, i: number, j: number): number {
  const dot = (a: number, b: number): number => {
    const lanes = [0, 0, 0, 0];
    for (let d = 0; d < dim; d++) {
      lanes[d % 4] = (lanes[d % 4] ?? 0) + (t[a * dim + d] ?? 0) * (t[b * dim + d] ?? 0);
    }
    const [s0 = 0, s1 = 0, s2 = 0, s3 = 0] = lanes;
    return s0 + s1 + (s2 + s3);
  };
  const ni = Math.sqrt(dot(i, i));
  const nj = Math.sqrt(dot(j, j));
  return ni === 0 || nj === 0 ? 1 : 1 - dot(i, j) / (ni * nj);
}

/** The greedy max-min definition, recomputing each candidate's minimum over the selected set. */
function bruteDiversity(t: Float32Array, n: number, dim: number, k: number, first: number) {
  const chosen = [first];
  while (chosen.length < k) {
    let best = -1;
    let bestDist = -Infinity;
    for (let i = 0; i < n; i++) {
      if (chosen.includes(i)) continue;
      const d = Math.min(...chosen.map((s) => cosineDistance(t, dim, s, i)));
      if (d > bestDist) {
        best = i;
        bestDist = d;
      }
    }
    chosen.push(best);
  }
  return chosen.sort((a, b) => a - b);
}

function brutePatchDifference(
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  height: number,
  gridW: number,
  gridH: number,
): Float32Array {
  const pw = width / gridW;
  const ph = height / gridH;
  const out = new Float32Array(gridW * gridH);
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      let sum = 0;
      for (let y = gy * ph; y < (gy + 1) * ph; y++) {
        for (let x = gx * pw; x < (gx + 1) * pw; x++) {
          for (let c = 0; c < 3; c++) {
            const p = (y * width + x) * 3 + c;
            sum += Math.abs((a[p] ?? 0) - (b[p] ?? 0));
          }
        }
      }
      out[gy * gridW + gx] = sum / (pw * ph * 3);
    }
  }
  return out;
}

// --- reference against the definitions ---------------------------------------------------------

describe('reference kernels against brute-force definitions', () => {
  it('topK equals a full sort', () => {
    const smallScores = fc.array(fc.oneof(fc.float(), fc.constantFrom(0, -0, 1, NaN, -Infinity)), {
      minLength: 1,
      maxLength: 40,
    });
    const cases = smallScores.chain((s) =>
      fc.record({
        scores: fc.constant(Float32Array.from(s)),
        k: fc.integer({ min: 1, max: s.length }),
      }),
    );
    fc.assert(
      fc.property(cases, ({ scores, k }) => {
        const out = new Int32Array(k);
        referenceKernels.topK(scores, k, out);
        expect(Array.from(out)).toEqual(bruteTopK(scores, k));
      }),
      RUNS,
    );
  });

  it('topK handles k = 1, k = n, n = 1, ties and NaN', () => {
    const run = (scores: number[], k: number): number[] => {
      const out = new Int32Array(k);
      referenceKernels.topK(Float32Array.from(scores), k, out);
      return Array.from(out);
    };
    expect(run([0.5], 1)).toEqual([0]);
    expect(run([1, 3, 2], 1)).toEqual([1]);
    expect(run([1, 3, 2], 3)).toEqual([0, 1, 2]);
    expect(run([2, 2, 2, 2], 2)).toEqual([0, 1]);
    expect(run([NaN, 1, NaN, -Infinity], 2)).toEqual([1, 3]);
    expect(run([NaN, NaN, NaN], 2)).toEqual([0, 1]);
    expect(run([0, -0, 1], 2)).toEqual([0, 2]);
  });

  it('maxMinDiversity follows the greedy max-min definition', () => {
    const small = fc
      .record({
        n: fc.integer({ min: 1, max: 14 }),
        dim: fc.integer({ min: 1, max: 6 }),
        mode: fc.constantFrom<TokenMode>('uniform', 'ties', 'zero-rows', 'duplicates'),
        seed: fc.integer(),
      })
      .chain((c) =>
        fc
          .record({
            k: fc.integer({ min: 1, max: c.n }),
            first: fc.integer({ min: 0, max: c.n - 1 }),
          })
          .map((r) => ({ ...c, ...r })),
      );
    fc.assert(
      fc.property(small, ({ n, dim, mode, seed, k, first }) => {
        const tokens = tokensOf(n, dim, mode, seed);
        const out = new Int32Array(k);
        referenceKernels.maxMinDiversity(tokens, n, dim, k, first, out);
        const got = Array.from(out);
        expect(got).toContain(first);
        expect(new Set(got).size).toBe(k);
        expect(got).toEqual([...got].sort((a, b) => a - b));
        expect(got).toEqual(bruteDiversity(tokens, n, dim, k, first));
      }),
      RUNS,
    );
  });

  it('maxMinDiversity treats a zero row as distance 1 from everything', () => {
    // Rows: e1, e1 (a duplicate, distance 0), zero (distance 1), -e1 (distance 2).
    const tokens = Float32Array.from([1, 0, 1, 0, 0, 0, -1, 0]);
    const out = new Int32Array(3);
    referenceKernels.maxMinDiversity(tokens, 4, 2, 2, 0, out);
    expect(Array.from(out.subarray(0, 2))).toEqual([0, 3]);
    referenceKernels.maxMinDiversity(tokens, 4, 2, 3, 0, out);
    expect(Array.from(out)).toEqual([0, 2, 3]);
    referenceKernels.maxMinDiversity(tokens, 1, 2, 1, 0, out);
    expect(out[0]).toBe(0);
  });

  it('patchDifference equals the per-patch mean', () => {
    fc.assert(
      fc.property(imageCase, ({ gridW, gridH, pw, ph, seed }) => {
        const [width, height] = [gridW * pw, gridH * ph];
        const a = bytesOf(width * height * 3, seed);
        const b = bytesOf(width * height * 3, seed + 1, a);
        const out = new Float32Array(gridW * gridH);
        referenceKernels.patchDifference(a, b, width, height, gridW, gridH, out);
        expectIdentical(out, brutePatchDifference(a, b, width, height, gridW, gridH));
        for (const v of out) expect(v >= 0 && v <= 255).toBe(true);
      }),
      RUNS,
    );
  });

  it('normalizeRgb maps each channel through its table into planes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (pixels, seed) => {
        const rgb = bytesOf(pixels * 3, seed);
        const lut = tokensOf(768, 1, 'uniform', seed);
        const out = new Float32Array(pixels * 3);
        referenceKernels.normalizeRgb(rgb, lut, out);
        const want = new Float32Array(pixels * 3);
        for (let p = 0; p < pixels; p++) {
          for (let c = 0; c < 3; c++)
            want[c * pixels + p] = lut[c * 256 + (rgb[p * 3 + c] ?? 0)] ?? 0;
        }
        expectIdentical(out, want);
      }),
      RUNS,
    );
  });

  it('gatherRows copies the indexed rows in order', () => {
    fc.assert(
      fc.property(tokenShape, fc.integer(), (shape, seed) => {
        const { n, dim } = shape;
        const tokens = tokensOf(n, dim, 'uniform', seed);
        const next = random(seed);
        const idx = Int32Array.from({ length: n }, () => Math.floor(next() * n));
        const out = new Float32Array(n * dim);
        referenceKernels.gatherRows(tokens, dim, idx, n, out);
        const want = new Float32Array(n * dim);
        idx.forEach((row, i) => {
          want.set(tokens.subarray(row * dim, (row + 1) * dim), i * dim);
        });
        expectIdentical(out, want);
      }),
      RUNS,
    );
  });
});

// --- native against reference ------------------------------------------------------------------

for (const [build, native] of NATIVE_BUILDS)
  describe(`native kernels (${build} build) against the reference`, () => {
    it('topK selects identically', () => {
      fc.assert(
        fc.property(topKCase, ({ n, k, mode, seed }) => {
          const scores = scoresOf(n, mode, seed);
          const got = new Int32Array(k);
          const want = new Int32Array(k);
          native.topK(scores, k, got);
          referenceKernels.topK(scores, k, want);
          expect(got).toEqual(want);
        }),
        RUNS,
      );
    });

    it('maxMinDiversity selects identically', () => {
      fc.assert(
        fc.property(diversityCase, ({ shape: { n, dim }, mode, seed, k, first }) => {
          const tokens = tokensOf(n, dim, mode, seed);
          const got = new Int32Array(k);
          const want = new Int32Array(k);
          native.maxMinDiversity(tokens, n, dim, k, first, got);
          referenceKernels.maxMinDiversity(tokens, n, dim, k, first, want);
          expect(got).toEqual(want);
        }),
        RUNS,
      );
    });

    it('maxMinDiversity takes the first unselected row when every distance is NaN', () => {
      // Row 0 holds a NaN, so every distance to it is NaN, and stays the minimum (d < NaN is false).
      const tokens = tokensOf(20, 11, 'uniform', 7);
      tokens[3] = NaN;
      const got = new Int32Array(4);
      const want = new Int32Array(4);
      native.maxMinDiversity(tokens, 20, 11, 4, 0, got);
      referenceKernels.maxMinDiversity(tokens, 20, 11, 4, 0, want);
      expect(Array.from(want)).toEqual([0, 1, 2, 3]);
      expect(got).toEqual(want);
    });

    it('patchDifference agrees bit for bit', () => {
      fc.assert(
        fc.property(imageCase, ({ gridW, gridH, pw, ph, seed }) => {
          const [width, height] = [gridW * pw, gridH * ph];
          const a = bytesOf(width * height * 3, seed);
          const b = bytesOf(width * height * 3, seed + 1, a);
          const got = new Float32Array(gridW * gridH);
          const want = new Float32Array(gridW * gridH);
          native.patchDifference(a, b, width, height, gridW, gridH, got);
          referenceKernels.patchDifference(a, b, width, height, gridW, gridH, want);
          expectIdentical(got, want);
        }),
        RUNS,
      );
    });

    it('normalizeRgb agrees bit for bit', () => {
      // Pixel counts below, at and past multiples of the native kernel's 64-pixel blocks.
      const pixels = fc.oneof(
        fc.constant(96 * 96),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 40 }).map((blocks) => blocks * 64),
        fc.integer({ min: 0, max: 3000 }),
      );
      fc.assert(
        fc.property(pixels, fc.integer(), fc.boolean(), (count, seed, special) => {
          const rgb = bytesOf(count * 3, seed);
          const lut = tokensOf(768, 1, special ? 'special' : 'uniform', seed);
          const got = new Float32Array(count * 3);
          const want = new Float32Array(count * 3);
          native.normalizeRgb(rgb, lut, got);
          referenceKernels.normalizeRgb(rgb, lut, want);
          expectIdentical(got, want);
        }),
        RUNS,
      );
    });

    it('gatherRows agrees bit for bit', () => {
      const cases = fc.record({
        shape: tokenShape,
        seed: fc.integer(),
        count: fc.integer({ min: 0, max: 50 }),
      });
      fc.assert(
        fc.property(cases, ({ shape: { n, dim }, seed, count }) => {
          const tokens = tokensOf(n, dim, 'nan', seed);
          const next = random(seed);
          const idx = Int32Array.from({ length: count }, () => Math.floor(next() * n));
          const got = new Float32Array(count * dim);
          const want = new Float32Array(count * dim);
          native.gatherRows(tokens, dim, idx, count, got);
          referenceKernels.gatherRows(tokens, dim, idx, count, want);
          expectIdentical(got, want);
        }),
        RUNS,
      );
    });

    it('writes into arrays that are views at an offset', () => {
      const buffer = new ArrayBuffer(4 * 64);
      const scores = new Float32Array(buffer, 16, 8);
      scores.set([3, 1, 4, 1, 5, 9, 2, 6]);
      const out = new Int32Array(buffer, 4 * 32, 3);
      native.topK(scores, 3, out);
      expect(Array.from(out)).toEqual([4, 5, 7]);
    });
  });

// --- bad calls ---------------------------------------------------------------------------------

const f32 = (n: number): Float32Array => new Float32Array(n);
const i32 = (n: number): Int32Array => new Int32Array(n);
const u8 = (n: number): Uint8Array => new Uint8Array(n);

interface BadCall {
  readonly call: (k: Kernels) => void;
  readonly field: string;
  readonly message: string;
}

/** The kernels as plain JavaScript sees them, to pass arguments of the wrong type. */
const untyped = (k: Kernels): Record<keyof Kernels, (...args: unknown[]) => void> =>
  k as unknown as Record<keyof Kernels, (...args: unknown[]) => void>;

/** countBytePairs calls with one bad argument: case, arguments, the field named, the message. */
const BYTE_PAIR_CALLS: readonly (readonly [
  string,
  Parameters<Kernels['countBytePairs']>,
  string,
  string,
])[] = [
  [
    'not a Uint8Array',
    [new Int32Array(4) as unknown as Uint8Array, 0, 0xff, 0xda, 1],
    'bytes',
    'Expected an Uint8Array for bytes but received Int32Array of 16 bytes',
  ],
  [
    'from past the end',
    [new Uint8Array(4), 5, 0xff, 0xda, 1],
    'from',
    'Expected an integer in [0, 4] for from but received 5',
  ],
  [
    'first not a byte',
    [new Uint8Array(4), 0, 256, 0xda, 1],
    'first',
    'Expected an integer in [0, 255] for first but received 256',
  ],
  [
    'second not an integer',
    [new Uint8Array(4), 0, 0xff, 0.5, 1],
    'second',
    'Expected an integer in [0, 255] for second but received 0.5',
  ],
  [
    'negative limit',
    [new Uint8Array(4), 0, 0xff, 0xda, -1],
    'limit',
    'Expected an integer in [0, 2147483646] for limit but received -1',
  ],
];

const BAD_CALLS: readonly (readonly [string, BadCall])[] = [
  [
    'topK: k above n',
    {
      call: (k) => {
        k.topK(f32(144), 200, i32(200));
      },
      field: 'k',
      message: 'Expected an integer in [1, 144] for k but received 200',
    },
  ],
  [
    'topK: k = 0',
    {
      call: (k) => {
        k.topK(f32(10), 0, i32(10));
      },
      field: 'k',
      message: 'Expected an integer in [1, 10] for k but received 0',
    },
  ],
  [
    'topK: fractional k',
    {
      call: (k) => {
        k.topK(f32(10), 1.5, i32(10));
      },
      field: 'k',
      message: 'Expected an integer in [1, 10] for k but received 1.5',
    },
  ],
  [
    'topK: empty scores',
    {
      call: (k) => {
        k.topK(f32(0), 1, i32(1));
      },
      field: 'scores',
      message: 'Expected a length of at least 1 for scores but received 0',
    },
  ],
  [
    'topK: scores of the wrong type',
    {
      call: (k) => {
        untyped(k).topK(new Float64Array(4), 1, i32(1));
      },
      field: 'scores',
      message: 'Expected a Float32Array for scores but received Float64Array of 32 bytes',
    },
  ],
  [
    'topK: out too short',
    {
      call: (k) => {
        k.topK(f32(144), 36, i32(10));
      },
      field: 'out',
      message: 'Expected a length of at least k = 36 for out but received 10',
    },
  ],
  [
    'topK: out of the wrong type',
    {
      call: (k) => {
        untyped(k).topK(f32(4), 1, [0]);
      },
      field: 'out',
      message: 'Expected an Int32Array for out but received array of length 1',
    },
  ],
  [
    'maxMinDiversity: tokens shorter than n * dim',
    {
      call: (k) => {
        k.maxMinDiversity(f32(100), 144, 64, 36, 0, i32(36));
      },
      field: 'tokens',
      message: 'Expected a length of at least n * dim = 9216 for tokens but received 100',
    },
  ],
  [
    'maxMinDiversity: n = 0',
    {
      call: (k) => {
        k.maxMinDiversity(f32(0), 0, 64, 1, 0, i32(1));
      },
      field: 'n',
      message: 'Expected an integer >= 1 for n but received 0',
    },
  ],
  [
    'maxMinDiversity: dim not an integer',
    {
      call: (k) => {
        k.maxMinDiversity(f32(10), 1, NaN, 1, 0, i32(1));
      },
      field: 'dim',
      message: 'Expected an integer >= 1 for dim but received NaN',
    },
  ],
  [
    'maxMinDiversity: k above n',
    {
      call: (k) => {
        k.maxMinDiversity(f32(9216), 144, 64, 200, 0, i32(200));
      },
      field: 'k',
      message: 'Expected an integer in [1, 144] for k but received 200',
    },
  ],
  [
    'maxMinDiversity: first = n',
    {
      call: (k) => {
        k.maxMinDiversity(f32(9216), 144, 64, 36, 144, i32(36));
      },
      field: 'first',
      message: 'Expected an integer in [0, 143] for first but received 144',
    },
  ],
  [
    'maxMinDiversity: negative first',
    {
      call: (k) => {
        k.maxMinDiversity(f32(9216), 144, 64, 36, -1, i32(36));
      },
      field: 'first',
      message: 'Expected an integer in [0, 143] for first but received -1',
    },
  ],
  [
    'maxMinDiversity: out too short',
    {
      call: (k) => {
        k.maxMinDiversity(f32(9216), 144, 64, 36, 0, i32(35));
      },
      field: 'out',
      message: 'Expected a length of at least k = 36 for out but received 35',
    },
  ],
  [
    'patchDifference: a of the wrong size',
    {
      call: (k) => {
        k.patchDifference(u8(10), u8(27648), 96, 96, 12, 12, f32(144));
      },
      field: 'a',
      message: 'Expected a length of width * height * 3 = 27648 for a but received 10',
    },
  ],
  [
    'patchDifference: b of the wrong size',
    {
      call: (k) => {
        k.patchDifference(u8(27648), u8(27647), 96, 96, 12, 12, f32(144));
      },
      field: 'b',
      message: 'Expected a length of width * height * 3 = 27648 for b but received 27647',
    },
  ],
  [
    'patchDifference: gridW not dividing width',
    {
      call: (k) => {
        k.patchDifference(u8(27648), u8(27648), 96, 96, 7, 12, f32(144));
      },
      field: 'gridW',
      message: 'Expected a divisor of width 96 for gridW but received 7',
    },
  ],
  [
    'patchDifference: gridH not dividing height',
    {
      call: (k) => {
        k.patchDifference(u8(27648), u8(27648), 96, 96, 12, 5, f32(144));
      },
      field: 'gridH',
      message: 'Expected a divisor of height 96 for gridH but received 5',
    },
  ],
  [
    'patchDifference: gridW above width',
    {
      call: (k) => {
        k.patchDifference(u8(27648), u8(27648), 96, 96, 192, 12, f32(144));
      },
      field: 'gridW',
      message: 'Expected an integer in [1, 96] for gridW but received 192',
    },
  ],
  [
    'patchDifference: width = 0',
    {
      call: (k) => {
        k.patchDifference(u8(0), u8(0), 0, 96, 1, 12, f32(144));
      },
      field: 'width',
      message: 'Expected an integer >= 1 for width but received 0',
    },
  ],
  [
    'patchDifference: out too short',
    {
      call: (k) => {
        k.patchDifference(u8(27648), u8(27648), 96, 96, 12, 12, f32(143));
      },
      field: 'out',
      message: 'Expected a length of at least gridW * gridH = 144 for out but received 143',
    },
  ],
  [
    'normalizeRgb: rgb not whole pixels',
    {
      call: (k) => {
        k.normalizeRgb(u8(10), f32(768), f32(10));
      },
      field: 'rgb',
      message: 'Expected a length divisible by 3 (packed RGB8) for rgb but received 10',
    },
  ],
  [
    'normalizeRgb: lut of the wrong length',
    {
      call: (k) => {
        k.normalizeRgb(u8(12), f32(256), f32(12));
      },
      field: 'lut',
      message: 'Expected a length of 3 channels × 256 values = 768 for lut but received 256',
    },
  ],
  [
    'normalizeRgb: out too short',
    {
      call: (k) => {
        k.normalizeRgb(u8(27648), f32(768), f32(27647));
      },
      field: 'out',
      message: 'Expected a length of at least rgb.length = 27648 for out but received 27647',
    },
  ],
  [
    'normalizeRgb: out overlapping lut',
    {
      call: (k) => {
        const lut = f32(1000);
        k.normalizeRgb(u8(12), lut.subarray(0, 768), lut.subarray(760));
      },
      field: 'out',
      message: 'Expected memory that does not overlap lut for out but received an overlapping view',
    },
  ],
  [
    'gatherRows: row index out of range',
    {
      call: (k) => {
        k.gatherRows(f32(9216), 64, Int32Array.from([0, 144]), 2, f32(128));
      },
      field: 'idx[1]',
      message: 'Expected a row index in [0, 143] for idx[1] but received 144',
    },
  ],
  [
    'gatherRows: negative row index',
    {
      call: (k) => {
        k.gatherRows(f32(9216), 64, Int32Array.from([-1]), 1, f32(64));
      },
      field: 'idx[0]',
      message: 'Expected a row index in [0, 143] for idx[0] but received -1',
    },
  ],
  [
    'gatherRows: count above idx.length',
    {
      call: (k) => {
        k.gatherRows(f32(9216), 64, i32(36), 37, f32(9216));
      },
      field: 'count',
      message: 'Expected an integer in [0, 36] for count but received 37',
    },
  ],
  [
    'gatherRows: dim = 0',
    {
      call: (k) => {
        k.gatherRows(f32(9216), 0, i32(36), 36, f32(9216));
      },
      field: 'dim',
      message: 'Expected an integer >= 1 for dim but received 0',
    },
  ],
  [
    'gatherRows: out too short',
    {
      call: (k) => {
        k.gatherRows(f32(9216), 64, i32(36), 36, f32(64));
      },
      field: 'out',
      message: 'Expected a length of at least count * dim = 2304 for out but received 64',
    },
  ],
  [
    'gatherRows: out overlapping tokens',
    {
      call: (k) => {
        const tokens = f32(9216);
        k.gatherRows(tokens, 64, i32(36), 36, tokens.subarray(0, 2304));
      },
      field: 'out',
      message:
        'Expected memory that does not overlap tokens for out but received an overlapping view',
    },
  ],
  // countBytePairs with one bad argument among good ones.
  ...BYTE_PAIR_CALLS.map(
    ([name, args, field, message]) =>
      [
        `countBytePairs: ${name}`,
        {
          call: (k: Kernels) => {
            k.countBytePairs(...args);
          },
          field,
          message,
        },
      ] as const,
  ),
];

const BACKENDS: readonly (readonly [string, Kernels | undefined])[] = [
  ['typescript reference', referenceKernels],
  ['native', nativeKernels],
];

describe.each(BACKENDS)('bad calls (%s)', (_name, impl) => {
  it.skipIf(impl === undefined).each(BAD_CALLS)('%s', (_case, { call, field, message }) => {
    let thrown: unknown;
    try {
      call(impl as Kernels);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InputError);
    expect(thrown).toMatchObject({ code: 'INVALID_INPUT', field, message });
  });
});

// --- loading and backend choice ----------------------------------------------------------------

describe('backend', () => {
  it('uses the native kernels exactly when the addon loaded', () => {
    const backend = kernelBackend();
    expect(backend.name).toBe(nativeKernels === undefined ? 'typescript' : 'native');
    expect(kernels).toBe(nativeKernels ?? referenceKernels);
    expect(backend.reason).toContain(nativeLoad.path);
    if (nativeLoad.addon !== undefined) expect(backend.build).toBe(nativeLoad.build);
  });

  it('looks for the addon under the package root', () => {
    expect(ADDON_PATH).toBe(join(ROOT, 'native', 'build', 'Release', 'vla_native.node'));
    expect(buildPath('avx2')).toBe(
      join(ROOT, 'native', 'build', 'Release', 'vla_native_avx2.node'),
    );
  });

  it('runs the baseline build on a CPU without AVX2 (an install copied to an older CPU)', () => {
    const none = {
      build: 'baseline',
      arch: 'x64',
      avx2: false,
      fma: false,
      bmi: false,
      bmi2: false,
      avx512f: false,
      avx512bw: false,
      avx512dq: false,
      avx512vl: false,
      avx512cd: false,
      avx512vbmi: false,
    };
    expect(runnableBuilds(none)).toEqual([{ name: 'baseline', path: ADDON_PATH }]);
    const avx2Only = { ...none, avx2: true, fma: true, bmi: true, bmi2: true };
    expect(runnableBuilds(avx2Only).map((b) => b.name)).toEqual(
      existsSync(buildPath('avx2')) ? ['avx2', 'baseline'] : ['baseline'],
    );
  });

  it.skipIf(nativeLoad.addon === undefined)(
    'falls back to the baseline, saying why, where the faster builds are missing',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'vla-node-'));
      const path = join(dir, 'vla_native.node');
      copyFileSync(ADDON_PATH, path);
      const load = loadAddon(path, undefined);
      expect(load).toMatchObject({ build: 'baseline', path });
      if (process.arch === 'x64') {
        expect('choice' in load ? load.choice : '').toMatch(
          /portable x86-64 build \(avx512: .*avx2: /,
        );
      }
    },
  );

  it('refuses an unknown pinned build by name', () => {
    const load = loadAddon(ADDON_PATH, 'sse9');
    expect(load.addon).toBeUndefined();
    expect('error' in load ? load.error : '').toContain(
      'VLA_NODE_NATIVE_BUILD must be baseline|avx512|avx2 but is "sse9"',
    );
  });

  it('reports a missing addon with the path tried and the fix, without throwing', () => {
    const path = join(tmpdir(), 'vla-node-missing', 'vla_native.node');
    const load = loadAddon(path);
    expect(load.addon).toBeUndefined();
    expect(load.path).toBe(path);
    expect('error' in load ? load.error : '').toMatch(/Cannot find module.*npm run build:native/);
  });

  it('rejects a module that lacks the kernels', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vla-node-')), 'stale.cjs');
    writeFileSync(path, 'module.exports = { topK() {} };\n');
    const load = loadAddon(path);
    expect(load.addon).toBeUndefined();
    expect('error' in load ? load.error : '').toContain(
      'does not export maxMinDiversity, patchDifference, normalizeRgb, gatherRows',
    );
  });

  it('warns about a fallback once per process, naming the path tried', () => {
    const log = vi.fn<(message: string) => void>();
    warnOnce(log);
    warnOnce(log);
    if (nativeKernels === undefined) {
      expect(log).toHaveBeenCalledTimes(1);
      expect(log.mock.calls[0]?.[0]).toContain(ADDON_PATH);
      expect(log.mock.calls[0]?.[0]).toContain('npm run build:native');
    } else {
      expect(log).not.toHaveBeenCalled();
    }
  });
});
