/**
 * The instruction's keys and values cached across frames: the fixture's instruction graph +
 * prefill with past (test/fixtures/ar-decoder/instruction.onnx, prefill-with-past.onnx) are the
 * same random weights as its full prefill (prefill.onnx), so both layouts must give the same
 * logits, the same cache and PyTorch's greedy tokens (reference.json), alone and in batches; the
 * cache must be hit by a second frame with the same instruction and missed by a new one.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ModelError } from '../../../src/errors.js';
import { decodeChunksGreedy } from '../../../src/policy/autoregressive/batch-decode.js';
import { decodeChunk } from '../../../src/policy/autoregressive/decode.js';
import {
  DecoderGraphs,
  type PrefillInput,
  type StepResult,
} from '../../../src/policy/autoregressive/decoder-graphs.js';
import type { Observation } from '../../../src/pipeline/types.js';
import { readArPackage } from '../../../src/policy/autoregressive/package.js';
import { ArPipeline, type ArPipelineOptions } from '../../../src/policy/autoregressive/pipeline.js';
import { ArPolicy, type ArObservation } from '../../../src/policy/autoregressive/policy.js';
import { PrunedArPolicy } from '../../../src/policy/autoregressive/pruned.js';
import { UniformBinTokenizer } from '../../../src/policy/autoregressive/uniform-bins.js';
import {
  AR_FIXTURE_DIR,
  at,
  makeArPackage,
  removeArPackages,
  type Json,
  arObservation,
  arPipelineOptions,
} from './ar-package.js';
import { AR_REFERENCE, AR_REFERENCE_INPUTS } from './ar-reference.js';

const fixture = (name: string): string => join(AR_FIXTURE_DIR, name);
const reference = AR_REFERENCE;
const inputs = AR_REFERENCE_INPUTS;
const expected = reference.cases.map((c) => c.tokens);
const tokenizer = new UniformBinTokenizer(reference.horizon, reference.action_dim);
const first = reference.first_action_position;
const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 };

let full: DecoderGraphs;
let cached: DecoderGraphs;

const loadCached = (instructionCacheSize?: number): Promise<DecoderGraphs> =>
  DecoderGraphs.load(fixture('prefill-with-past.onnx'), fixture('decoder.onnx'), THREADS, {
    instruction: fixture('instruction.onnx'),
    ...(instructionCacheSize === undefined ? {} : { instructionCacheSize }),
  });

beforeAll(async () => {
  full = await DecoderGraphs.load(fixture('prefill.onnx'), fixture('decoder.onnx'), THREADS);
  cached = await loadCached();
});
afterAll(async () => {
  await Promise.all([full.close(), cached.close(), removeArPackages()]);
});

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/** Largest difference over the cache entries the decoder attends to (`valid`). */
function cacheDiff(a: StepResult, b: StepResult): number {
  expect(Array.from(b.state.valid)).toEqual(Array.from(a.state.valid));
  let worst = 0;
  a.state.past.forEach((x: ort.Tensor, i) => {
    const y = b.state.past[i] as ort.Tensor;
    expect(y.dims).toEqual(x.dims);
    const [, heads, length, dim] = x.dims as [number, number, number, number];
    const xd = x.data as Float32Array;
    const yd = y.data as Float32Array;
    for (let h = 0; h < heads; h++)
      for (let p = 0; p < length; p++) {
        if (a.state.valid[p] === 0) continue;
        for (let d = 0; d < dim; d++) {
          const j = (h * length + p) * dim + d;
          worst = Math.max(worst, Math.abs((xd[j] as number) - (yd[j] as number)));
        }
      }
  });
  return worst;
}

/** Two observations keeping as many visual tokens, with other instructions and states. */
function twoOfAKind(): [PrefillInput, PrefillInput] {
  const x = inputs[1] as PrefillInput;
  return [
    x,
    {
      ...x,
      instructionIds: (inputs[0] as PrefillInput).instructionIds,
      state: x.state.map((v) => -v),
    },
  ];
}

describe('the instruction graph + prefill with past', () => {
  it("gives the full prefill's logits and cache, and PyTorch's greedy tokens", async () => {
    for (const [i, input] of inputs.entries()) {
      const a = await full.prefill(input, first);
      const b = await cached.prefill(input, first);
      expect(maxDiff(a.logits, b.logits)).toBeLessThan(1e-5);
      expect(cacheDiff(a, b)).toBeLessThan(1e-5);
      expect(b.state.nextPosition).toBe(a.state.nextPosition);
      const greedy = await decodeChunk(cached, tokenizer, input, { kind: 'greedy' }, 0, first);
      expect(greedy.tokens).toEqual(expected[i]);
      const jacobi = await decodeChunk(
        cached,
        tokenizer,
        input,
        { kind: 'jacobi', window: 6 },
        0,
        first,
      );
      expect(jacobi.tokens).toEqual(expected[i]);
    }
  });

  it("decodes batches (shared decoder calls) to each sequence's own greedy tokens", async () => {
    const graphs = await loadCached();
    try {
      const batch = [inputs[0], inputs[1], inputs[0]] as PrefillInput[];
      const results = await decodeChunksGreedy(graphs, tokenizer, batch, 0, first);
      expect(results.map((r) => r.tokens)).toEqual([expected[0], expected[1], expected[0]]);
      // Two distinct instructions in the batch: the instruction graph ran twice.
      expect(graphs.instructionCache).toMatchObject({ misses: 2, hits: 1, size: 2 });
    } finally {
      await graphs.close();
    }
  });

  it('prefills observations that keep as many tokens in one call, each to its own logits, cache and tokens', async () => {
    const [x, y] = twoOfAKind();
    for (const layout of ['full prefill', 'instruction graph + prefill with past']) {
      const graphs =
        layout === 'full prefill'
          ? await DecoderGraphs.load(fixture('prefill.onnx'), fixture('decoder.onnx'), THREADS)
          : await loadCached();
      try {
        const alone = [await graphs.prefill(x, first), await graphs.prefill(y, first)];
        const prefills = vi.spyOn(graphs.prefillSession, 'run');
        const decoder = vi.spyOn(graphs.decoderSession, 'run');
        const many = await graphs.prefillMany([x, y, x], first);
        expect(prefills).toHaveBeenCalledTimes(1);
        many.forEach((m, i) => {
          const a = alone[i % 2] as StepResult;
          expect(maxDiff(m.logits, a.logits)).toBeLessThan(1e-5);
          expect(cacheDiff(a, m)).toBeLessThan(1e-5);
          expect(m.state.nextPosition).toBe(a.state.nextPosition);
        });
        // Decoded together, each gets its own greedy tokens; the first decoder call took the
        // prefill's cache tensors as they were.
        const solo = await decodeChunk(graphs, tokenizer, y, { kind: 'greedy' }, 0, first);
        prefills.mockClear();
        decoder.mockClear();
        const results = await decodeChunksGreedy(graphs, tokenizer, [x, y, x], 0, first);
        expect(results.map((r) => r.tokens)).toEqual([expected[1], solo.tokens, expected[1]]);
        const presents = (await prefills.mock.results[0]?.value) as ort.InferenceSession.ReturnType;
        const fed = decoder.mock.calls[0]?.[0] as ort.InferenceSession.FeedsType;
        expect(fed['past_key_values.0.key']).toBe(presents['present.0.key']);
        prefills.mockRestore();
        decoder.mockRestore();
      } finally {
        await graphs.close();
      }
    }
  });

  it('feeds a prefill whose batch dimension is fixed to 1 one observation per call, each to what it gives alone', async () => {
    const [x, y] = twoOfAKind();
    const open = await DecoderGraphs.load(
      fixture('prefill.onnx'),
      fixture('decoder.onnx'),
      THREADS,
    );
    const fixed = await DecoderGraphs.load(
      fixture('prefill-batch1.onnx'),
      fixture('decoder.onnx'),
      THREADS,
    );
    try {
      expect([open.prefillBatches, fixed.prefillBatches]).toEqual([true, false]);
      const alone = [await open.prefill(x, first), await open.prefill(y, first)];
      const prefills = vi.spyOn(fixed.prefillSession, 'run');
      // ONNX Runtime refuses a batch of 3 on this graph: these are three calls of one.
      const many = await fixed.prefillMany([x, y, x], first);
      expect(prefills).toHaveBeenCalledTimes(3);
      prefills.mockRestore();
      many.forEach((m, i) => {
        const a = alone[i % 2] as StepResult;
        expect(maxDiff(m.logits, a.logits)).toBeLessThan(1e-5);
        expect(cacheDiff(a, m)).toBeLessThan(1e-5);
      });
      const results = await decodeChunksGreedy(fixed, tokenizer, [x, y, x], 0, first);
      const solo = await decodeChunk(open, tokenizer, y, { kind: 'greedy' }, 0, first);
      expect(results.map((r) => r.tokens)).toEqual([expected[1], solo.tokens, expected[1]]);
    } finally {
      await Promise.all([open.close(), fixed.close()]);
    }
  });

  it('is hit by a second frame with the same instruction and missed by a new one', async () => {
    const graphs = await loadCached();
    try {
      const [a, b] = inputs as [PrefillInput, PrefillInput];
      expect(full.instructionCache).toBeUndefined();
      expect(graphs.instructionCache).toEqual({
        hits: 0,
        misses: 0,
        evictions: 0,
        size: 0,
        capacity: 16,
      });
      await graphs.prefill(a, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 0, misses: 1, size: 1 });
      // The next frame: another observation, the same instruction.
      const next: PrefillInput = { ...b, instructionIds: a.instructionIds };
      const hit = await graphs.prefill(next, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 1, misses: 1, size: 1 });
      const reference = await full.prefill(next, first);
      expect(maxDiff(reference.logits, hit.logits)).toBeLessThan(1e-5);
      expect(cacheDiff(reference, hit)).toBeLessThan(1e-5);
      // A new instruction misses; the cache bypassed runs the graph and counts nothing.
      await graphs.prefill(b, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 1, misses: 2, size: 2 });
      const bypass = await graphs.prefill(b, first, { useCache: false });
      expect(graphs.instructionCache).toMatchObject({ hits: 1, misses: 2, size: 2 });
      expect(maxDiff((await full.prefill(b, first)).logits, bypass.logits)).toBeLessThan(1e-5);
    } finally {
      await graphs.close();
    }
  });

  it('keeps at most its capacity, dropping the least recently used instruction', async () => {
    const graphs = await loadCached(2);
    try {
      const words = (w: number[]): PrefillInput => ({
        ...(inputs[1] as PrefillInput),
        instructionIds: BigInt64Array.from({ length: 12 }, (_, i) => BigInt(w[i] ?? 0)),
      });
      const [x, y, z] = [words([4, 9]), words([7, 1]), words([3])];
      await graphs.prefill(x, first);
      await graphs.prefill(y, first);
      await graphs.prefill(x, first); // x is now the most recent: y goes first
      await graphs.prefill(z, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 1, misses: 3, evictions: 1, size: 2 });
      await graphs.prefill(x, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 2, misses: 3 });
      await graphs.prefill(y, first);
      expect(graphs.instructionCache).toMatchObject({ hits: 2, misses: 4, evictions: 2 });
    } finally {
      await graphs.close();
    }
  });
});

describe('a package with the instruction graph', () => {
  let plain: ArPolicy;
  let withCache: ArPolicy;
  beforeAll(async () => {
    plain = await ArPolicy.load(await makeArPackage(), THREADS);
    withCache = await ArPolicy.load(await makeArPackage(undefined, { instruction: true }), THREADS);
  });
  afterAll(async () => {
    await Promise.all([plain.close(), withCache.close()]);
  });

  const observation = (seed: number, instruction: string): ArObservation => {
    const { width, height } = plain.pkg.image;
    return {
      pixels: Float32Array.from({ length: 3 * width * height }, (_, i) => Math.sin(i * seed)),
      rgb: new Uint8Array(width * height * 3).fill(40 + seed),
      instruction,
      state: Float32Array.from([0.3 + 0.05 * seed, 0.6]),
    };
  };

  it('reads the role and its file', () => {
    expect(withCache.pkg.files.instruction).toBe('instruction.onnx');
    expect(plain.pkg.files.instruction).toBeUndefined();
    expect(plain.graphs.instructionCache).toBeUndefined();
  });

  it('decodes every frame as the package without it, frame by frame and in batches', async () => {
    const frames = [
      observation(1, 'move to the red block'),
      observation(2, 'move to the red block'),
      observation(3, 'move to the blue block'),
      observation(4, 'move to the red block'),
    ];
    const before = withCache.graphs.instructionCache as { hits: number; misses: number };
    for (const obs of frames) {
      const a = await plain.act(obs, { strategy: 'greedy' });
      const b = await withCache.act(obs, { strategy: 'greedy' });
      expect(b.tokens).toEqual(a.tokens);
      expect(Array.from(b.actions)).toEqual(Array.from(a.actions));
    }
    // Two instructions over four frames: computed twice, reused twice.
    expect(withCache.graphs.instructionCache).toMatchObject({
      misses: before.misses + 2,
      hits: before.hits + 2,
    });
    const pruning = {
      strategy: 'saliency' as const,
      keepRatio: 0.5,
      keepCount: 0,
      minKeepRatio: 0.5,
      seed: 1,
      latencyBudgetMs: 0,
    };
    const batch = frames.map((obs) => ({ obs }));
    const a = await new PrunedArPolicy(plain, pruning).actGreedyMany(batch);
    const b = await new PrunedArPolicy(withCache, pruning).actGreedyMany(batch);
    expect(b.map((r) => r.tokens)).toEqual(a.map((r) => r.tokens));
    expect(b.map((r) => r.keptTokens)).toEqual(a.map((r) => r.keptTokens));
  });
});

describe('ArPipeline on a package with the instruction graph', () => {
  const observation = (shift: number, instruction: string): Observation =>
    arObservation(shift, { instruction });

  it('serves single requests and batches as the package without it', async () => {
    const options: ArPipelineOptions = arPipelineOptions('greedy', { maxBatch: 4 });
    const plain = await ArPipeline.create(await makeArPackage(), options);
    const cached = await ArPipeline.create(
      await makeArPackage(undefined, { instruction: true }),
      options,
    );
    try {
      const batch = [
        observation(0, 'move to the red block'),
        observation(2, 'move to the blue block'),
        observation(4, 'move to the red block'),
      ];
      const chunks = async (p: ArPipeline): Promise<number[][]> =>
        (await p.inferBatch(batch)).map((s) => {
          expect(s.status).toBe('fulfilled');
          return s.status === 'fulfilled' ? Array.from(s.value.actions) : [];
        });
      expect(await chunks(cached)).toEqual(await chunks(plain));
      const single = observation(6, 'move to the blue block');
      expect(Array.from((await cached.infer(single)).actions)).toEqual(
        Array.from((await plain.infer(single)).actions),
      );
      // The blue instruction came from the batch's cache.
      expect(cached.policy.policy.graphs.instructionCache?.hits).toBeGreaterThanOrEqual(2);
    } finally {
      await Promise.all([plain.release(), cached.release()]);
    }
  });
});

async function rehash(dir: string, role: string): Promise<void> {
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Json;
  const file = at(m, 'variants', 0, 'files', role) as { path: string; sha256: string };
  file.sha256 = createHash('sha256')
    .update(await readFile(join(dir, file.path)))
    .digest('hex');
  await writeFile(path, JSON.stringify(m));
}

describe('the instruction role refused', () => {
  const refused = async (dir: string): Promise<ModelError> => {
    const error = await ArPolicy.load(dir, THREADS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    return error as ModelError;
  };

  it('names the manifest field of a misnamed instruction input', async () => {
    const dir = await makeArPackage(
      (m) => {
        at(m, 'graphs', 'instruction', 'inputs', 0).name = 'input_ids';
      },
      { instruction: true },
    );
    const error = await readArPackage(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).field).toBe('manifest.graphs.instruction.inputs[0].name');
    expect((error as ModelError).message).toMatch(/Expected "instruction_ids" but received/);
  });

  it('names the field when the instruction graph has too few cache pairs', async () => {
    const dir = await makeArPackage(
      (m) => {
        (at(m, 'graphs', 'instruction').outputs as Json[]).pop();
      },
      { instruction: true },
    );
    const error = await refused(dir);
    expect(error.code).toBe('INVALID_MANIFEST');
    expect(error.field).toBe('manifest.graphs.instruction');
    expect(error.message).toMatch(/Expected the instruction graph to have 1 inputs and 4 outputs/);
  });

  it('needs the file of the role, and no file without it', async () => {
    const missing = await refused(
      await makeArPackage(
        (m) => {
          delete at(m, 'variants', 0, 'files').instruction;
        },
        { instruction: true },
      ),
    );
    expect(missing.field).toBe('manifest.variants[0].files.instruction');
    const extra = await refused(
      await makeArPackage((m) => {
        at(m, 'variants', 0, 'files').instruction = at(m, 'variants', 0, 'files', 'prefill');
      }),
    );
    expect(extra.field).toBe('manifest.variants[0].files.instruction');
    expect(extra.message).toMatch(/Expected no instruction file/);
  });

  it("refuses an ONNX instruction graph whose signature is not the manifest's", async () => {
    // The full prefill has instruction_ids in and present pairs out, but three more inputs.
    const dir = await makeArPackage(undefined, { instruction: true });
    await copyFile(fixture('prefill.onnx'), join(dir, 'instruction.onnx'));
    await rehash(dir, 'instruction');
    const error = await refused(dir);
    expect(error.code).toBe('MODEL_MISMATCH');
    expect(error.field).toBe('manifest.graphs.instruction.inputs');
    expect(error.message).toMatch(/instruction graph to have 1 inputs \(instruction_ids\)/);
  });

  it('refuses a full prefill where the package promises one with past', async () => {
    const dir = await makeArPackage(undefined, { instruction: true });
    await copyFile(fixture('prefill.onnx'), join(dir, 'prefill.onnx'));
    await rehash(dir, 'prefill');
    const error = await refused(dir);
    expect(error.code).toBe('MODEL_MISMATCH');
    expect(error.field).toBe('graphs.prefill.inputs');
    expect(error.message).toMatch(/attention_mask, past_key_values\.0\.key.* missing/);
  });
});
