import { describe, expect, it } from 'vitest';
import { expertChunk } from '../../src/sim/expert.js';
import { objectMask, renderScene } from '../../src/sim/render.js';
import { episodeSeed, Rng } from '../../src/util/rng.js';
import { blindAgent, expertAgent, runEpisodes, type EpisodeResult } from '../../src/sim/runner.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { episodeProgress } from '../../src/sim/configured-run.js';
import { COLOURS, distance, instructionFor, sampleScene, WORLD } from '../../src/sim/world.js';

const episodes = { executeSteps: 4, maxSteps: 60, cameraWidth: 128, cameraHeight: 128 } as const;

function pixel(data: Uint8Array, width: number, x: number, y: number): number[] {
  const o = (Math.floor(y) * width + Math.floor(x)) * 3;
  return [data[o] ?? -1, data[o + 1] ?? -1, data[o + 2] ?? -1];
}

describe('Rng', () => {
  it('repeats its sequence for the same seed and differs for another', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(sa);
    expect(sa.every((v) => v >= 0 && v < 1)).toBe(true);
  });

  it('derives distinct episode seeds', () => {
    const seeds = new Set(Array.from({ length: 1000 }, (_, i) => episodeSeed(1, i)));
    expect(seeds.size).toBe(1000);
  });
});

describe('scenes', () => {
  it('are deterministic per seed, with distinct colours and spaced blocks', () => {
    for (let s = 0; s < 50; s++) {
      const scene = sampleScene(new Rng(s));
      expect(sampleScene(new Rng(s))).toEqual(scene);
      expect(new Set(scene.blocks.map((b) => b.colour)).size).toBe(WORLD.blocks);
      for (const [i, a] of scene.blocks.entries()) {
        for (const b of scene.blocks.slice(i + 1)) {
          expect(distance(a.centre, b.centre)).toBeGreaterThanOrEqual(WORLD.minBlockSpacing);
        }
      }
      expect(distance(scene.start, scene.task.goal)).toBeGreaterThanOrEqual(WORLD.minStartDistance);
      const target = scene.blocks[scene.task.target];
      expect(target).toBeDefined();
      expect(scene.task.instruction).toContain(target?.colour);
    }
  });

  it.each([
    ['reach', undefined, 'move to the red block'],
    ['left', 'left', 'move to the left of the red block'],
    ['right', 'right', 'move to the right of the red block'],
    ['above', 'above', 'move above the red block'],
    ['below', 'below', 'move below the red block'],
  ] as const)('words the %s task', (_name, relation, text) => {
    expect(instructionFor('red', relation)).toBe(text);
  });

  it('places relation goals beside the named block', () => {
    const scene = sampleScene(new Rng(3), 'relation');
    expect(scene.task.kind).toBe('relation');
    const block = scene.blocks[scene.task.target];
    expect(block).toBeDefined();
    if (block === undefined || scene.task.kind !== 'relation') return;
    expect(distance(block.centre, scene.task.goal)).toBeCloseTo(WORLD.relationOffset, 6);
    const dx = scene.task.goal.x - block.centre.x;
    const dy = scene.task.goal.y - block.centre.y;
    const expected = { left: [-1, 0], right: [1, 0], above: [0, -1], below: [0, 1] }[
      scene.task.relation
    ];
    expect([Math.sign(Math.round(dx * 100)), Math.sign(Math.round(dy * 100))]).toEqual(expected);
  });
});

describe('rendering', () => {
  it('draws each block in its colour and the effector on top', () => {
    const sim = new TabletopSim({ seed: 11 });
    const obs = sim.observe();
    expect(obs.image.encoding).toBe('rgb8');
    expect(obs.image.data.length).toBe(128 * 128 * 3);
    for (const block of sim.scene.blocks) {
      if (distance(block.centre, sim.effector) < 0.1) continue;
      expect(pixel(obs.image.data, 128, block.centre.x * 128, block.centre.y * 128)).toEqual([
        ...COLOURS[block.colour],
      ]);
    }
    expect(pixel(obs.image.data, 128, sim.effector.x * 128, sim.effector.y * 128)).toEqual([
      245, 245, 245,
    ]);
  });

  it('renders the same pixels for the same state', () => {
    const a = new TabletopSim({ seed: 5 }).observe().image.data.slice();
    const b = new TabletopSim({ seed: 5 }).observe().image.data.slice();
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('marks the patches that show blocks or the effector', () => {
    const scene = sampleScene(new Rng(9));
    const mask = new Uint8Array(144);
    objectMask(scene.blocks, scene.start, 12, 12, mask);
    for (const b of scene.blocks) {
      expect(mask[Math.floor(b.centre.y * 12) * 12 + Math.floor(b.centre.x * 12)]).toBe(1);
    }
    const marked = mask.reduce((s, v) => s + v, 0);
    expect(marked).toBeGreaterThan(4);
    expect(marked).toBeLessThan(60);
    const out = new Uint8Array(32 * 32 * 3);
    renderScene(scene.blocks, scene.start, 32, 32, out);
    expect(out.some((v) => v !== 0)).toBe(true);
  });
});

describe('dynamics', () => {
  it('moves at most WORLD.maxStep per step towards the target and stays on the table', () => {
    const sim = new TabletopSim({ seed: 2 });
    const before = sim.effector;
    sim.step([before.x + 1, before.y + 1]);
    expect(distance(before, sim.effector)).toBeCloseTo(WORLD.maxStep, 9);
    for (let i = 0; i < 40 && !sim.done; i++) sim.step([5, -5]);
    expect(sim.effector.x).toBeLessThanOrEqual(1);
    expect(sim.effector.y).toBeGreaterThanOrEqual(0);
  });

  it('rejects non-finite actions', () => {
    const sim = new TabletopSim({ seed: 2 });
    expect(() => {
      sim.step([Number.NaN, 0.5]);
    }).toThrow(/finite/);
    expect(() => {
      sim.step([0.5]);
    }).toThrow(RangeError);
  });

  it('succeeds when the effector reaches the goal and ends at maxSteps otherwise', () => {
    const sim = new TabletopSim({ seed: 4, maxSteps: 100 });
    const chunk = new Float32Array(16);
    while (!sim.done) {
      expertChunk(sim.effector, sim.scene.task.goal, 8, chunk);
      sim.step(chunk.subarray(0, 2));
    }
    expect(sim.success).toBe(true);
    expect(distance(sim.effector, sim.scene.task.goal)).toBeLessThanOrEqual(WORLD.successRadius);
    const idle = new TabletopSim({ seed: 4, maxSteps: 5 });
    for (let i = 0; i < 10; i++) idle.step([idle.effector.x, idle.effector.y]);
    expect(idle.done).toBe(true);
    expect(idle.success).toBe(false);
    expect(idle.steps).toBe(5);
  });
});

describe('closed loop with scripted agents', () => {
  it('the expert solves every episode of both task forms', async () => {
    const summary = await runEpisodes(expertAgent(8), { ...episodes, episodes: 100, seed: 1 });
    expect(summary.success_rate).toBe(1);
    expect(summary.by_task.reach.episodes).toBeGreaterThan(20);
    expect(summary.by_task.relation.episodes).toBeGreaterThan(20);
  });

  it('a language-blind agent succeeds at most about one time in three', async () => {
    const summary = await runEpisodes(blindAgent(8), { ...episodes, episodes: 300, seed: 1 });
    expect(summary.success_rate).toBeLessThanOrEqual(1 / 3);
    // It still solves some reach tasks: the measurement is not vacuous.
    expect(summary.by_task.reach.success_rate).toBeGreaterThan(0);
  });

  it('keeps no per-episode results unless asked, with the same totals (constant memory)', async () => {
    const timing = {
      mode: 'replace',
      controlRateHz: 10,
      horizon: 8,
      injectDelayMs: 250,
      injectJitterMs: 100,
      stallProbability: 0.05,
      stallSteps: 3,
      maxFrameAgeMs: 300,
      executor: {
        ensembleDecay: 0.5,
        rtcDecaySteps: 2,
        marginSteps: 0,
        safeAction: 'hold',
        limits: { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0.1 },
      },
    } as const;
    const run = { ...episodes, episodes: 30, seed: 4, timing };
    // Timed episodes take real inference time, so two runs may differ by a deadline miss: the
    // totals are compared with the episodes of the same run, which onEpisode sees either way.
    const seen: EpisodeResult[] = [];
    const lean = await runEpisodes(blindAgent(8), {
      ...run,
      onEpisode: (r) => {
        seen.push(r);
      },
    });
    expect(lean.results).toHaveLength(0);
    expect(seen).toHaveLength(30);
    const kept = await runEpisodes(blindAgent(8), { ...run, keepResults: true });
    expect(kept.results).toHaveLength(30);
    const sum = (f: (r: EpisodeResult) => number | undefined) =>
      seen.reduce((t, r) => t + (f(r) ?? 0), 0);
    expect(lean.totals).toMatchObject({
      idleSteps: sum((r) => r.idleSteps),
      deadlineMisses: sum((r) => r.deadlineMisses),
      safeHoldSteps: sum((r) => r.safeHoldSteps),
      staleFrames: sum((r) => r.staleFrames),
      inferenceErrors: sum((r) => r.inferenceErrors),
    });
    expect(lean.totals.deadlineMisses).toBeGreaterThan(0);
    expect(lean.totals.smoothness).toBeCloseTo(sum((r) => r.smoothness) / 30, 12);
    expect(lean.successes).toBe(seen.filter((r) => r.success).length);
    expect(lean.mean_steps).toBeCloseTo(sum((r) => r.steps) / 30, 12);
    // The kept run's own totals agree with its kept results.
    expect(kept.totals.deadlineMisses).toBe(
      kept.results.reduce((t, r) => t + (r.deadlineMisses ?? 0), 0),
    );
  });

  it('gives the same results for the same seed', async () => {
    const run = { ...episodes, episodes: 20, seed: 9, keepResults: true };
    const a = await runEpisodes(blindAgent(8), run);
    const b = await runEpisodes(blindAgent(8), run);
    expect(a.results).toHaveLength(20);
    expect(b.results).toEqual(a.results);
  });
});

describe('episodeProgress', () => {
  it('writes one line per episode with the success so far', () => {
    const lines: string[] = [];
    const onEpisode = episodeProgress(3, (l) => lines.push(l));
    const result = (success: boolean, steps: number): EpisodeResult =>
      ({ success, steps, instruction: 'move to the red block' }) as EpisodeResult;
    onEpisode(result(true, 9));
    onEpisode(result(false, 40));
    onEpisode(result(true, 11));
    expect(lines).toEqual([
      'episode 1/3 success 9 steps  "move to the red block"  (success so far 1/1)',
      'episode 2/3 FAIL    40 steps  "move to the red block"  (success so far 1/2)',
      'episode 3/3 success 11 steps  "move to the red block"  (success so far 2/3)',
    ]);
  });
});
