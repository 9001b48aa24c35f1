import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { FlowPolicy, type FlowRequest } from '../../src/flow/policy.js';
import { loadFlowPackage, type FlowPackage } from '../../src/model/flow-manifest.js';
import { simCameraFrames } from '../../src/sim/flow-agent.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { episodeSeed } from '../../src/util/rng.js';
import { FLOW_DIR, flowOptions, readFlowGolden, type FlowGolden } from './package.js';

let pkg: FlowPackage;
let golden: FlowGolden;
const policies: FlowPolicy[] = [];

async function open(options = flowOptions()): Promise<FlowPolicy> {
  const p = await FlowPolicy.create(pkg, options);
  policies.push(p);
  return p;
}

beforeAll(async () => {
  pkg = await loadFlowPackage(FLOW_DIR);
  golden = await readFlowGolden();
});
afterAll(async () => {
  await Promise.all(policies.map((p) => p.release()));
});

/** The observation the golden fixture was made from: step 0 of its dataset episode. */
function goldenRequest(steps: number | undefined): FlowRequest {
  const { noise: _noise, ...rest } = goldenNoisyRequest(steps);
  return rest;
}

/** {@link goldenRequest} with PyTorch's initial noise. */
function goldenNoisyRequest(steps: number | undefined): FlowRequest {
  const sim = new TabletopSim({ seed: episodeSeed(golden.dataset_seed, golden.episode) });
  const obs = sim.observe();
  return {
    images: simCameraFrames(['table', 'wrist'], obs, sim).map((f) =>
      f.kind === 'raw' ? { ...f, data: Uint8Array.from(f.data) } : f,
    ),
    instruction: obs.instruction,
    state: obs.state,
    seed: 0,
    ...(steps === undefined ? {} : { steps }),
    noise: Float32Array.from(golden.noise),
  };
}

/** PyTorch's normalised chunk as the runtime returns it: de-normalised and clamped. */
function expected(normalised: readonly number[]): number[] {
  const m = pkg.manifest;
  const A = m.chunk.action_dim;
  return normalised.map((v, i) => {
    const a = i % A;
    const x = v * (m.action.std[a] as number) + (m.action.mean[a] as number);
    return Math.min(m.action.max[a] as number, Math.max(m.action.min[a] as number, x));
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
}

describe('the flow runtime against PyTorch (golden.json)', () => {
  it('reproduces the observation the fixture was made from', () => {
    const req = goldenRequest(10);
    expect(Array.from(req.state)).toEqual(golden.state.map((v) => Math.fround(v)));
  });

  for (const steps of [10, 5, 2, 1]) {
    it(`integrates the expert to PyTorch's chunk at ${steps} steps`, async () => {
      const policy = await open();
      const r = await policy.infer(goldenNoisyRequest(steps));
      const want = expected(golden.actions_normalised_by_steps[String(steps)] ?? []);
      // Four graphs and up to ten Euler steps of float32 arithmetic in a different order.
      expect(maxAbsDiff(r.actions, want)).toBeLessThan(1e-4);
      expect(r.steps).toBe(steps);
    });
  }

  it('made its instruction cache exact by the block-causal mask (PyTorch split vs one masked pass)', () => {
    expect(golden.split_vs_masked_max_abs).toBeLessThan(1e-5);
  });
});

describe('seeded denoising', () => {
  it('gives the same chunk for the same request and seed, another for another seed', async () => {
    const a = await open();
    const b = await open();
    const req = { ...goldenRequest(10), seed: 1234 };
    const first = await a.infer(req);
    const again = await b.infer(req);
    expect(Array.from(again.actions)).toEqual(Array.from(first.actions));
    const other = await a.infer({ ...req, seed: 99 });
    expect(Array.from(other.actions)).not.toEqual(Array.from(first.actions));
    for (const v of first.actions) expect(Number.isFinite(v)).toBe(true);
  });
});

describe('caches', () => {
  /** The requests of the first frames of an episode driven by the policy itself. */
  async function rollout(policy: FlowPolicy, frames: number): Promise<Float32Array[]> {
    const sim = new TabletopSim({ seed: 11 });
    const out: Float32Array[] = [];
    for (let f = 0; f < frames && !sim.done; f++) {
      const obs = sim.observe();
      const r = await policy.infer({
        images: simCameraFrames(['table', 'wrist'], obs, sim),
        instruction: obs.instruction,
        state: obs.state,
        seed: f,
      });
      out.push(r.actions);
      for (let s = 0; s < 3; s++) sim.step([r.actions[2 * s] ?? 0, r.actions[2 * s + 1] ?? 0]);
    }
    return out;
  }

  it('instruction keys/values cached across frames give the uncached chunks exactly', async () => {
    const cached = await open(
      flowOptions({ caches: { instruction: true, visualThreshold: null, visualCameras: [] } }),
    );
    const uncached = await open();
    const a = await rollout(cached, 4);
    const b = await rollout(uncached, 4);
    // The trained model may finish the episode in fewer frames; the cache must serve at least one.
    expect(a.length).toBeGreaterThanOrEqual(2);
    expect(b.length).toBe(a.length);
    // Bit-identical: the cached tensors are the very values the instruction graph returns, and
    // no frame can change them (the instruction block attends to itself only).
    a.forEach((chunk, i) => {
      expect(Array.from(chunk)).toEqual(Array.from(b[i] as Float32Array));
    });
  });

  it('reports whether the instruction came from the cache', async () => {
    const policy = await open(
      flowOptions({ caches: { instruction: true, visualThreshold: null, visualCameras: [] } }),
    );
    const req = goldenRequest(2);
    expect((await policy.infer(req)).instructionCached).toBe(false);
    expect((await policy.infer(req)).instructionCached).toBe(true);
    expect(
      (await policy.infer({ ...req, instruction: 'move to the blue block' })).instructionCached,
    ).toBe(false);
  });

  it('reuses visual keys/values of unchanged patches; on an unchanged frame the chunk is the same', async () => {
    const policy = await open(
      flowOptions({ caches: { instruction: true, visualThreshold: 0, visualCameras: ['table'] } }),
    );
    const fresh = await open();
    const req = goldenNoisyRequest(10);
    const first = await policy.infer(req);
    expect(first.reusedTokens).toBe(0);
    const second = await policy.infer(req);
    // Every table token is unchanged (threshold 0: identical pixels); the wrist camera is not
    // listed (it moves with the robot), so its tokens are recomputed.
    const grid = pkg.manifest.cameras[0]?.patch_grid;
    expect(second.reusedTokens).toBe((grid?.width ?? 0) * (grid?.height ?? 0));
    const reference = await fresh.infer(req);
    // Same keys/values in another order (the attention is order-free): equal to float rounding.
    expect(maxAbsDiff(second.actions, reference.actions)).toBeLessThan(1e-4);
  });
});

describe('bad requests', () => {
  it('names the field: the number of images, a non-finite state', async () => {
    const policy = await open();
    const req = goldenRequest(1);
    await expect(policy.infer({ ...req, images: req.images.slice(0, 1) })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      field: 'images',
    });
    await expect(
      policy.infer({ ...req, state: Float32Array.of(Number.NaN, 0.5) }),
    ).rejects.toBeInstanceOf(InputError);
    await expect(policy.infer({ ...req, steps: 0 })).rejects.toMatchObject({ field: 'steps' });
  });
});

describe('latency budget', () => {
  it("lowers the denoising steps once the tokens are at their minimum, and a request's own steps still win", async () => {
    const base = flowOptions();
    const policy = await open({
      ...base,
      // Unreachable: every window is over budget. The tokens are already at their minimum
      // (min keep ratio = keep ratio), so the controller goes straight to the steps.
      latencyBudget: { budgetMs: 0.001, minKeepRatio: base.pruning.keepRatio, minSteps: 3 },
    });
    expect(policy.effort).toEqual({ keepRatio: base.pruning.keepRatio, steps: policy.steps });
    const used: number[] = [];
    for (let i = 0; i < 45; i++) used.push((await policy.infer(goldenRequest(undefined))).steps);
    expect(used[0]).toBe(policy.steps);
    expect(used[used.length - 1]).toBeLessThan(policy.steps);
    expect(used[used.length - 1]).toBeGreaterThanOrEqual(3);
    expect(used[used.length - 1]).toBe(policy.effort?.steps);
    expect((await policy.infer(goldenRequest(7))).steps).toBe(7);
    const fixed = await open(base);
    expect(fixed.effort).toBeUndefined();
  });
});
