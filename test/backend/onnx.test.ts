import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  MAX_BATCH,
  OnnxBackend,
  providerAvailability,
  type BackendOptions,
  type ExecutionProvider,
} from '../../src/backend/onnx.js';
import { BackendError, InputError, ModelError } from '../../src/errors.js';
import { FrameIngest } from '../../src/ingest/index.js';
import { loadModelPackage, selectVariant, type ModelPackage } from '../../src/model/manifest.js';
import { episodeSeed } from '../../src/util/rng.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import {
  at,
  copyPackage,
  copyWithManifest,
  maxAbsDiff,
  PACKAGE_DIR,
  readGolden,
  readJson,
  removeCopies,
  sha256Of,
  writeJson,
  type Golden,
} from '../model/package.js';

const CPU: BackendOptions = {
  executionProviders: ['cpu'],
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimization: 'all',
  tensorrtCachePath: '',
};

function withProviders(executionProviders: readonly ExecutionProvider[]): BackendOptions {
  return { ...CPU, executionProviders };
}

const availability = new Map(providerAvailability().map((a) => [a.provider, a]));
function provider(p: ExecutionProvider): { available: boolean; reason: string } {
  const a = availability.get(p);
  if (a === undefined) throw new Error(`providerAvailability() does not list ${p}`);
  return a;
}
const cuda = provider('cuda');
const tensorrt = provider('tensorrt');
if (!cuda.available) console.warn(`skipping the CUDA golden check: ${cuda.reason}`);
if (tensorrt.available) {
  console.warn(
    `skipping the TensorRT-unavailable check: TensorRT is available here (${tensorrt.reason})`,
  );
}

const golden: Golden = await readGolden();

/** The sessions' shared prototype, to count release() calls (the typings expose a factory). */
const sessionPrototype = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession })
  .prototype;

async function create(pkg: ModelPackage, options: BackendOptions = CPU): Promise<OnnxBackend> {
  return OnnxBackend.create(pkg, selectVariant(pkg, 'fp32'), options);
}

/** The rejection of `promise` (fails the test if it resolves, releasing what it made). */
async function rejection(promise: Promise<OnnxBackend>): Promise<unknown> {
  let backend: OnnxBackend;
  try {
    backend = await promise;
  } catch (error) {
    return error;
  }
  await backend.release();
  throw new Error('expected OnnxBackend.create to reject');
}

interface Inputs {
  readonly ids: BigInt64Array;
  readonly state: Float32Array;
  readonly rawState: Float32Array;
}

/** Render the golden observation into the backend's pixel buffer; returns the policy's other inputs. */
async function goldenObservation(pkg: ModelPackage, backend: OnnxBackend): Promise<Inputs> {
  const m = pkg.manifest;
  const sim = new TabletopSim({ seed: episodeSeed(golden.dataset_seed, golden.episode) });
  const obs = sim.observe();
  const { width, height, resize, mean, std } = m.image;
  await new FrameIngest({ width, height, resize, mean, std }).toTensor(obs.image, backend.pixels);
  const ids = new BigInt64Array(m.tokenizer.max_length);
  pkg.tokenizer.encodeInto(obs.instruction, ids);
  const state = Float32Array.from(
    obs.state,
    (x, i) => (x - (m.state.mean[i] ?? NaN)) / (m.state.std[i] ?? NaN),
  );
  return { ids, state, rawState: obs.state };
}

/** Copy the tokens at grid indices `positions` into the backend's kept-token buffer, in that order. */
function keep(
  backend: OnnxBackend,
  tokens: Float32Array,
  dim: number,
  positions: readonly number[],
) {
  const outTokens = backend.keptTokens;
  positions.forEach((p, i) => {
    outTokens.set(tokens.subarray(p * dim, (p + 1) * dim), i * dim);
  });
  return Int32Array.from(positions);
}

const range = (n: number, step = 1): number[] => Array.from({ length: n }, (_, i) => i * step);

/** encode() then act() on all tokens in grid order, as export.py's golden fixture does. */
async function runGolden(pkg: ModelPackage, backend: OnnxBackend) {
  const m = pkg.manifest;
  const inputs = await goldenObservation(pkg, backend);
  const { tokens, saliency } = await backend.encode();
  const n = m.patch_grid.width * m.patch_grid.height;
  const d = m.token_dim;
  expect(tokens.length).toBe(n * d);
  expect(saliency.length).toBe(n);
  const result = {
    inputs,
    saliency: Float32Array.from(saliency),
    firstToken: tokens.slice(0, d),
    actions: new Float32Array(0),
  };
  const actions = await backend.act(
    n,
    keep(backend, tokens, d, range(n)),
    inputs.ids,
    inputs.state,
  );
  return { ...result, actions: Float32Array.from(actions) };
}

describe('OnnxBackend on the shipped fp32 variant (CPU)', () => {
  let pkg: ModelPackage;
  let backend: OnnxBackend;
  beforeAll(async () => {
    pkg = await loadModelPackage(PACKAGE_DIR);
    backend = await create(pkg);
  });
  afterAll(async () => {
    await backend.release();
  });

  it('runs on the CPU provider with no fallbacks', () => {
    expect(backend.provider).toBe('cpu');
    expect(backend.fallbacks).toEqual([]);
    expect(backend.variant.precision).toBe('fp32');
    const m = pkg.manifest;
    expect(backend.pixels.length).toBe(3 * m.image.width * m.image.height);
  });

  it('reproduces the golden observation’s inputs', async () => {
    const { ids, rawState } = await goldenObservation(pkg, backend);
    expect(Array.from(ids, Number)).toEqual(golden.instruction_ids);
    expect(maxAbsDiff(rawState, golden.state)).toBeLessThan(1e-6);
  });

  it('matches PyTorch’s golden outputs within 1e-4', async () => {
    const out = await runGolden(pkg, backend);
    const m = pkg.manifest;
    expect(golden.actions_normalised.length).toBe(m.chunk.horizon * m.chunk.action_dim);
    expect(maxAbsDiff(out.saliency, golden.saliency)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.firstToken, golden.visual_tokens_first)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.actions, golden.actions_normalised)).toBeLessThan(1e-4);
  });

  it('acts on 144, 36 and 1 kept tokens, with identical outputs for identical inputs', async () => {
    const m = pkg.manifest;
    const n = m.patch_grid.width * m.patch_grid.height;
    const d = m.token_dim;
    const inputs = await goldenObservation(pkg, backend);
    const tokens = Float32Array.from((await backend.encode()).tokens);
    // All tokens, every 4th and the last one: 144, 36 and 1 on the shipped 12×12 grid.
    const sets = [range(n), range(Math.floor(n / 4), 4), [n - 1]];
    const act = async (positions: readonly number[]): Promise<number[]> =>
      Array.from(
        await backend.act(
          positions.length,
          keep(backend, tokens, d, positions),
          inputs.ids,
          inputs.state,
        ),
      );

    const first: number[][] = [];
    for (const positions of sets) {
      const actions = await act(positions);
      expect(actions).toHaveLength(m.chunk.horizon * m.chunk.action_dim);
      expect(actions.every(Number.isFinite)).toBe(true);
      first.push(actions);
    }
    // Again in reverse order: cached tensors of other sizes and leftovers in the shared buffers
    // must not leak into a run.
    for (const [i, positions] of [...sets.entries()].reverse()) {
      expect(await act(positions)).toEqual(first[i]);
    }
    // Fewer tokens is a different input: the policy's output changes.
    expect(first[2]).not.toEqual(first[0]);
  });

  it('reads the instruction and state it is given on every call', async () => {
    const m = pkg.manifest;
    const n = m.patch_grid.width * m.patch_grid.height;
    const inputs = await goldenObservation(pkg, backend);
    const tokens = Float32Array.from((await backend.encode()).tokens);
    const fill = keep(backend, tokens, m.token_dim, range(n));
    const base = Array.from(await backend.act(n, fill, inputs.ids, inputs.state));
    const otherIds = new BigInt64Array(inputs.ids.length).fill(BigInt(pkg.tokenizer.padId));
    const moved = inputs.state.map((x) => x + 1);
    expect(Array.from(await backend.act(n, fill, otherIds, inputs.state))).not.toEqual(base);
    expect(Array.from(await backend.act(n, fill, inputs.ids, moved))).not.toEqual(base);
    expect(Array.from(await backend.act(n, fill, inputs.ids, inputs.state))).toEqual(base);
  });
});

describe('execution provider chain', () => {
  let pkg: ModelPackage;
  beforeAll(async () => {
    pkg = await loadModelPackage(PACKAGE_DIR);
  });

  it('uses CUDA when available, and otherwise falls back to the CPU saying why', async () => {
    const log: string[] = [];
    const backend = await create(pkg, {
      ...withProviders(['cuda', 'cpu']),
      log: (line) => log.push(line),
    });
    try {
      if (cuda.available) {
        expect(backend.provider).toBe('cuda');
        expect(backend.fallbacks).toEqual([]);
      } else {
        expect(backend.provider).toBe('cpu');
        expect(backend.fallbacks).toEqual([{ provider: 'cuda', reason: cuda.reason }]);
        expect(cuda.reason.length).toBeGreaterThan(0);
        expect(log.some((line) => line.includes('cuda') && line.includes(cuda.reason))).toBe(true);
      }
    } finally {
      await backend.release();
    }
  });

  it.skipIf(tensorrt.available)(
    'fails with a BackendError when the only provider, TensorRT, is missing',
    async () => {
      const error = await rejection(create(pkg, withProviders(['tensorrt'])));
      expect(error).toBeInstanceOf(BackendError);
      const e = error as BackendError;
      expect(e.code).toBe('BACKEND');
      expect(e.field).toBe('backend.execution_providers');
      expect(e.message).toContain('Expected');
      expect(e.message).toContain('tensorrt');
      expect(e.message).toContain(tensorrt.reason);
    },
  );

  it.skipIf(!cuda.available)('matches the golden outputs on CUDA within 1e-3', async () => {
    const backend = await create(pkg, withProviders(['cuda']));
    try {
      expect(backend.provider).toBe('cuda');
      const out = await runGolden(pkg, backend);
      expect(maxAbsDiff(out.saliency, golden.saliency)).toBeLessThan(1e-3);
      expect(maxAbsDiff(out.firstToken, golden.visual_tokens_first)).toBeLessThan(1e-3);
      expect(maxAbsDiff(out.actions, golden.actions_normalised)).toBeLessThan(1e-3);
    } finally {
      await backend.release();
    }
  });
});

describe('manifest and graph disagreements', () => {
  afterAll(removeCopies);

  it('rejects a manifest that renames policy input 0, naming both names', async () => {
    let original = '';
    const dir = await copyWithManifest((m) => {
      const input = at(m, 'graphs', 'policy', 'inputs', 0);
      original = input.name as string;
      input.name = `${original}_renamed`;
    });
    const release = vi.spyOn(sessionPrototype, 'release');
    let error: unknown;
    try {
      error = await rejection(create(await loadModelPackage(dir)));
      expect(release).toHaveBeenCalledTimes(2); // both sessions are released
    } finally {
      release.mockRestore();
    }
    expect(error).toBeInstanceOf(ModelError);
    const e = error as ModelError;
    expect(e.code).toBe('MODEL_MISMATCH');
    expect(e.field).toBe('manifest.graphs.policy.inputs[0].name');
    expect(e.message).toContain(JSON.stringify(`${original}_renamed`));
    expect(e.message).toContain(JSON.stringify(original));
  });

  it('rejects a manifest that declares the encoder tokens float16', async () => {
    let declared = '';
    const dir = await copyWithManifest((m) => {
      const output = at(m, 'graphs', 'encoder', 'outputs', 0);
      declared = output.dtype as string;
      output.dtype = 'float16';
    });
    const error = await rejection(create(await loadModelPackage(dir)));
    expect(error).toBeInstanceOf(ModelError);
    const e = error as ModelError;
    expect(e.code).toBe('MODEL_MISMATCH');
    expect(e.field).toBe('manifest.graphs.encoder.outputs[0].dtype');
    expect(e.message).toContain('float16');
    expect(e.message).toContain(declared);
  });

  it('rejects a corrupt ONNX file whose hash matches, naming the file and releasing the other session', async () => {
    const dir = await copyPackage();
    const manifestPath = join(dir, 'manifest.json');
    const m = await readJson(manifestPath);
    const policy = at(m, 'variants', 0, 'files', 'policy');
    const path = join(dir, policy.path as string);
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length >> 4));
    policy.sha256 = await sha256Of(path);
    await writeJson(manifestPath, m);
    const pkg = await loadModelPackage(dir); // the hash check passes

    const release = vi.spyOn(sessionPrototype, 'release');
    try {
      const error = await rejection(create(pkg));
      expect(error).toBeInstanceOf(ModelError);
      const e = error as ModelError;
      expect(e.code).toBe('MODEL_FILE');
      expect(e.field).toBe('model.path');
      expect(e.message).toContain('Expected a valid ONNX model');
      expect(e.message).toContain(path);
      // The encoder loaded fine; its session must not be leaked.
      expect(release).toHaveBeenCalledTimes(1);
    } finally {
      release.mockRestore();
    }
  });
});

/** Every graph tensor's first dimension as the manifest at `dir` declares it. */
function setBatch(m: Record<string, unknown>, dim: number | string): void {
  for (const role of ['encoder', 'policy']) {
    for (const kind of ['inputs', 'outputs']) {
      const tensors = at(m, 'graphs', role)[kind] as { shape: (number | string)[] }[];
      for (const t of tensors) t.shape[0] = dim;
    }
  }
}

/** Rewrite the first dimension of every input and output of the ONNX file at `path`. */
async function fixBatch(path: string, size: number): Promise<void> {
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(await readFile(path));
  const graph = model.graph;
  if (graph === null || graph === undefined) throw new Error(`no graph in ${path}`);
  for (const v of [...(graph.input ?? []), ...(graph.output ?? [])]) {
    const dim = v.type?.tensorType?.shape?.dim?.[0];
    if (dim === undefined) throw new Error(`no dimension 0 on ${String(v.name)}`);
    Reflect.deleteProperty(dim, 'dimParam'); // protobufjs writes every field that is set
    dim.dimValue = size;
  }
  await writeFile(path, onnx.ModelProto.encode(model).finish());
}

describe('batches', () => {
  afterAll(removeCopies);

  it('runs a batch when the manifest names the batch dimension, equal to one by one', async () => {
    const dir = await copyWithManifest((m) => {
      setBatch(m, 'batch');
    });
    const pkg = await loadModelPackage(dir);
    const backend = await create(pkg);
    try {
      expect(backend.maxBatch).toBe(MAX_BATCH);
      const m = pkg.manifest;
      const n = m.patch_grid.width * m.patch_grid.height;
      const d = m.token_dim;
      const per = m.chunk.horizon * m.chunk.action_dim;
      const ingest = new FrameIngest({ ...m.image });
      const sims = [3, 4, 5].map((seed) => new TabletopSim({ seed }).observe());
      // One by one.
      const single: { tokens: Float32Array; saliency: Float32Array; actions: Float32Array }[] = [];
      const inputs = sims.map((obs, i) => {
        const ids = new BigInt64Array(m.tokenizer.max_length);
        pkg.tokenizer.encodeInto(obs.instruction, ids);
        const state = Float32Array.from(obs.state, (x, j) => x + i - (m.state.mean[j] ?? 0));
        const positions = Int32Array.from(range(n / 4, 4 - (i % 2)));
        return { obs, ids, state, positions };
      });
      for (const { obs, ids, state, positions } of inputs) {
        await ingest.toTensor(obs.image, backend.pixels);
        const out = await backend.encode();
        const tokens = Float32Array.from(out.tokens);
        const actions = Float32Array.from(
          await backend.act(
            positions.length,
            keep(backend, tokens, d, Array.from(positions)),
            ids,
            state,
          ),
        );
        single.push({ tokens, saliency: Float32Array.from(out.saliency), actions });
      }
      // As one batch.
      const slots = backend.pixelSlots(inputs.length);
      for (const [i, { obs }] of inputs.entries()) {
        await ingest.toTensor(obs.image, slots[i] as Float32Array);
      }
      const out = await backend.encodeBatch(inputs.length);
      expect(out.tokens.length).toBe(inputs.length * n * d);
      single.forEach((s, i) => {
        expect(maxAbsDiff(out.tokens.subarray(i * n * d, (i + 1) * n * d), s.tokens)).toBeLessThan(
          1e-5,
        );
        expect(maxAbsDiff(out.saliency.subarray(i * n, (i + 1) * n), s.saliency)).toBeLessThan(
          1e-5,
        );
      });
      const count = n / 4;
      const policyInputs = inputs.map(({ ids, state, positions }, i) => {
        const tokens = new Float32Array(count * d);
        Array.from(positions).forEach((p, k) => {
          tokens.set(
            (single[i] as { tokens: Float32Array }).tokens.subarray(p * d, (p + 1) * d),
            k * d,
          );
        });
        return { tokens, positions, instructionIds: ids, state };
      });
      const actions = Float32Array.from(await backend.actBatch(count, policyInputs));
      expect(actions.length).toBe(inputs.length * per);
      single.forEach((s, i) => {
        expect(maxAbsDiff(actions.subarray(i * per, (i + 1) * per), s.actions)).toBeLessThan(1e-5);
      });
      // A smaller batch after a larger one reuses the buffers.
      const two = await backend.actBatch(count, policyInputs.slice(1));
      expect(
        maxAbsDiff(two.subarray(0, per), (single[1] as { actions: Float32Array }).actions),
      ).toBeLessThan(1e-5);
      // And the first batch again: every slot's positions changed twice since it was first run.
      const again = Float32Array.from(await backend.actBatch(count, policyInputs));
      expect(maxAbsDiff(again, actions)).toBe(0);
      await expect(backend.actBatch(count, [])).rejects.toMatchObject({ field: 'batch' });
      await expect(
        backend.actBatch(count, [{ ...policyInputs[0], state: new Float32Array(1) } as never]),
      ).rejects.toMatchObject({ name: 'InputError', field: 'policy.inputs[0].state' });
    } finally {
      await backend.release();
    }
  });

  it('takes one observation at a time when the manifest says 1', async () => {
    const dir = await copyWithManifest((m) => {
      setBatch(m, 1);
    });
    const backend = await create(await loadModelPackage(dir));
    try {
      expect(backend.maxBatch).toBe(1);
      let error: unknown;
      try {
        backend.pixelSlots(2);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputError);
      expect(error).toMatchObject({ field: 'batch' });
      expect((error as Error).message).toMatch(/declares no batch dimension/);
      expect(backend.pixelSlots(1)).toHaveLength(1);
    } finally {
      await backend.release();
    }
  });

  it.each([
    [
      'names a batch dimension the graph fixes to 1',
      'batch',
      1,
      /open batch dimension.*fixes it to 1/,
    ],
    [
      'says 1 but the graph fixes the batch to 4',
      1,
      4,
      /dimension 0 \(the batch\) to be 1 or open but the ONNX file fixes it to 4/,
    ],
  ] as const)('rejects a manifest that %s', async (_name, declared, fixed, message) => {
    const dir = await copyWithManifest((m) => {
      setBatch(m, declared);
    });
    const manifest = await readJson(join(dir, 'manifest.json'));
    const encoder = at(manifest, 'variants', 0, 'files', 'encoder');
    await fixBatch(join(dir, encoder.path as string), fixed);
    encoder.sha256 = await sha256Of(join(dir, encoder.path as string));
    await writeJson(join(dir, 'manifest.json'), manifest);
    const error = await rejection(create(await loadModelPackage(dir)));
    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({
      code: 'MODEL_MISMATCH',
      field: 'manifest.graphs.encoder.inputs[0].shape[0]',
    });
    expect((error as Error).message).toMatch(message);
  });

  it('accepts a graph fixed to batch 1 under a manifest that says 1', async () => {
    const dir = await copyWithManifest((m) => {
      setBatch(m, 1);
    });
    const manifest = await readJson(join(dir, 'manifest.json'));
    const encoder = at(manifest, 'variants', 0, 'files', 'encoder');
    await fixBatch(join(dir, encoder.path as string), 1);
    encoder.sha256 = await sha256Of(join(dir, encoder.path as string));
    await writeJson(join(dir, 'manifest.json'), manifest);
    const backend = await create(await loadModelPackage(dir));
    try {
      expect(backend.maxBatch).toBe(1);
      expect((await backend.encode()).saliency.length).toBe(144);
    } finally {
      await backend.release();
    }
  });
});
