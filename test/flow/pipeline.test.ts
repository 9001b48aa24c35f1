import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { matchCameras } from '../../src/flow/cameras.js';
import { FlowPipeline, stampSeed, type FlowPipelineOptions } from '../../src/flow/pipeline.js';
import type { RawFrame } from '../../src/ingest/index.js';
import { loadFlowPackage, type FlowPackage } from '../../src/model/flow-manifest.js';
import type { CameraFrame, Observation } from '../../src/pipeline/types.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { FLOW_DIR, NO_CACHES } from './package.js';

let pkg: FlowPackage;
const pipelines: FlowPipeline[] = [];

const OPTIONS: FlowPipelineOptions = {
  pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
  caches: NO_CACHES,
  limits: { min: [], max: [], maxDeltaPerStep: 0 },
  intraOpThreads: 1,
};

async function open(overrides: Partial<FlowPipelineOptions> = {}): Promise<FlowPipeline> {
  const p = await FlowPipeline.create(pkg, { ...OPTIONS, ...overrides });
  pipelines.push(p);
  return p;
}

beforeAll(async () => {
  pkg = await loadFlowPackage(FLOW_DIR);
});
afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.release()));
});

/** Both of the simulator's cameras of one scene, named, with fresh copies of the pixels. */
function observation(seed = 5, extra: Partial<Observation> = {}): Observation {
  const sim = new TabletopSim({ seed });
  const o = sim.observe();
  const copy = (f: RawFrame): RawFrame => ({ ...f, data: Uint8Array.from(f.data) });
  const table = copy(o.image);
  const wrist = copy(sim.wristImage());
  return {
    frame: table,
    cameras: [
      { camera: 'table', frame: table },
      { camera: 'wrist', frame: wrist },
    ],
    instruction: o.instruction,
    state: Array.from(o.state),
    stamp: 1_700_000_000_000,
    ...extra,
  };
}

/** The two named cameras of {@link observation}. */
function twoCameras(obs: Observation): [CameraFrame, CameraFrame] {
  const [table, wrist] = obs.cameras ?? [];
  if (table === undefined || wrist === undefined) throw new Error('expected two cameras');
  return [table, wrist];
}

function inputError(run: () => unknown): InputError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error('expected an InputError');
}

async function rejection(p: Promise<unknown>): Promise<InputError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  return error as InputError;
}

describe('matchCameras', () => {
  const names = ['table', 'wrist'];
  it('matches named images by name in any order, unnamed ones by position', () => {
    expect(matchCameras(names, ['wrist', 'table'])).toEqual([1, 0]);
    expect(matchCameras(names, ['table', 'wrist'])).toEqual([0, 1]);
    expect(matchCameras(names, [undefined, undefined])).toEqual([0, 1]);
  });
  it('names the field of a missing, unknown, repeated or unnamed camera', () => {
    const missing = inputError(() => matchCameras(names, ['table']));
    expect(missing.field).toBe('images');
    expect(missing.message).toContain('"wrist"');
    expect(inputError(() => matchCameras(names, ['table', 'wrist', 'depth'])).field).toBe(
      'images[2].camera',
    );
    expect(inputError(() => matchCameras(names, ['table', 'table'])).field).toBe(
      'images[1].camera',
    );
    expect(inputError(() => matchCameras(names, ['table', undefined])).field).toBe(
      'images[1].camera',
    );
    const count = inputError(() => matchCameras(names, [undefined]));
    expect(count.field).toBe('images');
    expect(count.message).toContain('table, wrist');
  });
});

describe('FlowPipeline', () => {
  it('turns two cameras into a horizon × action_dim chunk of finite values within the limits', async () => {
    const p = await open({ warmupRuns: 1 });
    const m = pkg.manifest;
    const chunk = await p.infer(observation());
    expect(chunk.horizon).toBe(m.chunk.horizon);
    expect(chunk.actionDim).toBe(m.chunk.action_dim);
    expect(chunk.actions.length).toBe(m.chunk.horizon * m.chunk.action_dim);
    expect(chunk.sequence).toBe(0); // the warm-up does not count
    expect(chunk.tokens.total).toBe(p.totalTokens);
    expect(chunk.tokens.kept).toBe(p.totalTokens);
    chunk.actions.forEach((v, i) => {
      const d = i % m.chunk.action_dim;
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(m.action.min[d] as number);
      expect(v).toBeLessThanOrEqual(m.action.max[d] as number);
    });
    expect(chunk.latencyMs).toBeGreaterThan(0);
  });

  it('gives the same chunk for the same seed and another for another seed', async () => {
    const a = await open();
    const b = await open();
    const first = await a.infer(observation(5, { seed: 42 }));
    const again = await b.infer(observation(5, { seed: 42 }));
    expect(Array.from(again.actions)).toEqual(Array.from(first.actions));
    const other = await a.infer(observation(5, { seed: 43 }));
    expect(Array.from(other.actions)).not.toEqual(Array.from(first.actions));
  });

  it('seeds an observation without a seed from its stamp', async () => {
    const p = await open();
    const stamped = await p.infer(observation(5, { stamp: 1234.5 }));
    const explicit = await p.infer(observation(5, { stamp: 99, seed: stampSeed(1234.5) }));
    expect(Array.from(explicit.actions)).toEqual(Array.from(stamped.actions));
    const later = await p.infer(observation(5, { stamp: 1267.5 }));
    expect(Array.from(later.actions)).not.toEqual(Array.from(stamped.actions));
  });

  it('matches cameras by name whatever their order, and unnamed ones by the manifest order', async () => {
    const p = await open();
    const obs = observation(5, { seed: 7 });
    const cams = obs.cameras ?? [];
    const named = await p.infer(obs);
    const reversed = await p.infer({ ...obs, cameras: [...cams].reverse() });
    const unnamed = await p.infer({
      ...obs,
      cameras: cams.map((c) => ({ frame: c.frame })),
    });
    expect(Array.from(reversed.actions)).toEqual(Array.from(named.actions));
    expect(Array.from(unnamed.actions)).toEqual(Array.from(named.actions));
    // The cameras do matter: the two images swapped under unnamed order change the chunk.
    const swapped = await p.infer({
      ...obs,
      cameras: [...cams].reverse().map((c) => ({ frame: c.frame })),
    });
    expect(Array.from(swapped.actions)).not.toEqual(Array.from(named.actions));
  });

  it('refuses a missing or unknown camera, naming the field, and serves the next observation', async () => {
    const p = await open();
    const obs = observation(5, { seed: 3 });
    const [table, wrist] = twoCameras(obs);
    const missing = await rejection(p.infer({ ...obs, cameras: [table] }));
    expect(missing.field).toBe('images');
    expect(missing.message).toContain('"wrist"');
    const unknown = await rejection(
      p.infer({ ...obs, cameras: [table, wrist, { camera: 'depth', frame: table.frame }] }),
    );
    expect(unknown.field).toBe('images[2].camera');
    const good = await p.infer(obs);
    expect(good.actions.length).toBe(pkg.manifest.chunk.horizon * pkg.manifest.chunk.action_dim);
  });

  it('refuses a bad observation at once, not after the observations queued before it', async () => {
    const p = await open();
    const order: string[] = [];
    const good = p.infer(observation(5, { seed: 1 })).then(() => order.push('good'));
    const bad = p
      .infer(observation(5, { state: [NaN, 0] }))
      .catch((e: unknown) => order.push(e instanceof InputError ? 'bad' : 'other'));
    await Promise.all([good, bad]);
    expect(order).toEqual(['bad', 'good']);
  });

  it("names the request's image when one camera's frame is bad", async () => {
    const p = await open();
    const obs = observation();
    const [table, wrist] = twoCameras(obs);
    const short = { ...(wrist.frame as RawFrame), data: new Uint8Array(10) };
    const error = await rejection(
      p.infer({ ...obs, cameras: [{ camera: 'wrist', frame: short }, table] }),
    );
    expect(error.field).toMatch(/^images\[0\]/);
  });

  it('gives a sequence of raw frames (converted into reused buffers) what fresh images give', async () => {
    // The pipeline converts both cameras' raw frames into buffers it reuses frame after frame;
    // the policy called with the frames themselves gives each conversion a buffer of its own.
    // With the cross-frame cache on, which compares each frame with what it kept of the one
    // before, the two must still agree frame by frame.
    const caches = { instruction: true, visualThreshold: 4, visualCameras: ['table'] };
    const pipeline = await open({ caches });
    const reference = (await open({ caches })).policy;
    let reused = 0;
    for (const seed of [5, 8, 8, 11, 5]) {
      const obs = observation(seed, { seed: 1 });
      const [table, wrist] = twoCameras(obs);
      const chunk = await pipeline.infer(obs);
      const alone = await reference.infer({
        images: [table.frame, wrist.frame],
        instruction: obs.instruction,
        state: obs.state,
        seed: 1,
      });
      expect(chunk.clamped).toBe(0);
      expect(Array.from(chunk.actions)).toEqual(Array.from(alone.actions));
      reused += alone.reusedTokens;
    }
    // The repeated frame reused the table camera's tokens: the cache was exercised.
    expect(reused).toBeGreaterThan(0);
  });

  it('refuses a camera entry without a frame, naming the image, and serves the next one', async () => {
    const p = await open();
    const obs = observation();
    const [table] = twoCameras(obs);
    for (const frame of [null, undefined, 7]) {
      const error = await rejection(
        p.infer({
          ...obs,
          cameras: [table, { camera: 'wrist', frame: frame as unknown as RawFrame }],
        }),
      );
      expect(error.field).toMatch(/^images\[1\]/);
    }
    expect((await p.infer(obs)).actions.length).toBe(
      pkg.manifest.chunk.horizon * pkg.manifest.chunk.action_dim,
    );
  });

  it('refuses bad state, seed and keep_count with their fields', async () => {
    const p = await open();
    expect((await rejection(p.infer(observation(5, { state: [0.5, NaN] })))).field).toBe(
      'state[1]',
    );
    expect((await rejection(p.infer(observation(5, { seed: -1 })))).field).toBe('seed');
    expect((await rejection(p.infer(observation(5, { seed: 2 ** 32 })))).field).toBe('seed');
    expect((await rejection(p.infer(observation(5, { keepCount: 10 })))).field).toBe('keep_count');
  });

  it("keeps one stream's cross-frame reuse from another's: a new stream starts afresh", async () => {
    // Reuse every table token whose patch moved at all (a threshold no frame exceeds).
    const caches = { instruction: true, visualThreshold: 255, visualCameras: ['table'] };
    const p = await open({ caches });
    const fresh = await open({ caches });
    const first = observation(5, { seed: 1, stream: 'a' });
    const second = observation(8, { seed: 1, stream: 'a' });
    await p.infer(first);
    const reused = await p.infer(second);
    expect(reused.tokens.kept).toBe(p.totalTokens);
    const alone = await fresh.infer(second);
    // Same stream: the second frame reused the first's keys/values, so its chunk differs.
    expect(Array.from(reused.actions)).not.toEqual(Array.from(alone.actions));
    // Another stream between them: the second frame is computed afresh.
    await p.infer(first);
    await p.infer(observation(5, { seed: 1, stream: 'b' }));
    const afterOther = await p.infer(second);
    expect(Array.from(afterOther.actions)).toEqual(Array.from(alone.actions));
    // And the bridge's reset of the stream does the same.
    await p.infer(first);
    p.pruner.reset('a');
    expect(Array.from((await p.infer(second)).actions)).toEqual(Array.from(alone.actions));
  });

  it('clamps to configured limits and the per-step change limit, counting what it changed', async () => {
    const m = pkg.manifest;
    const min = m.action.min.map((lo, d) => lo + 0.45 * ((m.action.max[d] as number) - lo));
    const max = m.action.min.map((lo, d) => lo + 0.55 * ((m.action.max[d] as number) - lo));
    const p = await open({ limits: { min, max, maxDeltaPerStep: 0.001 } });
    const chunk = await p.infer(observation(5, { seed: 1 }));
    expect(chunk.clamped).toBeGreaterThan(0);
    const A = m.chunk.action_dim;
    chunk.actions.forEach((v, i) => {
      const d = i % A;
      expect(v).toBeGreaterThanOrEqual(min[d] as number);
      expect(v).toBeLessThanOrEqual(max[d] as number);
      if (i >= A) {
        expect(Math.abs(v - (chunk.actions[i - A] as number))).toBeLessThanOrEqual(0.001 + 1e-6);
      }
    });
  });
});
