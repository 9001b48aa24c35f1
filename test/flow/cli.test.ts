import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchFlowCommand } from '../../src/cli/bench-flow.js';
import type { CommandIo } from '../../src/cli/command.js';
import { infoCommand } from '../../src/cli/info.js';
import { simCommand } from '../../src/cli/sim.js';
import { ModelError } from '../../src/errors.js';
import { at, copyFlowPackage, FLOW_DIR, removeFlowCopies } from './package.js';

const temps: string[] = [];
afterAll(async () => {
  await removeFlowCopies();
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

function capture(): { io: CommandIo; results: Record<string, unknown>[] } {
  const results: Record<string, unknown>[] = [];
  return {
    results,
    io: {
      json: true,
      progress: () => undefined,
      result: (v) => results.push(v as Record<string, unknown>),
    },
  };
}

const THREADS = ['backend.intra_op_threads=1'];

describe('info on a flow package', () => {
  it('validates the v2 roles against the graphs and runs a warm-up', async () => {
    const { io, results } = capture();
    expect(await infoCommand.run({ model: FLOW_DIR, set: THREADS }, io, [])).toBe(0);
    const model = at(results[0], 'model');
    expect(model.format).toBe('vla-node/model@2');
    expect((model.cameras as { name: string }[]).map((c) => c.name)).toEqual(['table', 'wrist']);
    const variant = at(results[0], 'variants', 0);
    expect(Object.keys(at(variant, 'files')).sort()).toEqual([
      'encoder',
      'expert',
      'instruction',
      'prefix',
    ]);
  });

  it('fails with the typed error naming the variant and the field', async () => {
    const dir = await copyFlowPackage((m) => {
      at(m, 'graphs', 'expert', 'outputs', 0).name = 'v';
    });
    const error = await infoCommand
      .run({ model: dir, set: THREADS }, capture().io, [])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('MODEL_MISMATCH');
    expect((error as ModelError).field).toBe('manifest.graphs.expert.outputs[0].name');
    expect((error as ModelError).message).toMatch(/^variant fp32: Expected/);
  });
});

describe('sim and bench flow on a flow package', () => {
  it('runs closed-loop episodes on both cameras with the standard command', async () => {
    const { io, results } = capture();
    const code = await simCommand.run(
      { model: FLOW_DIR, episodes: '3', seed: '1', set: THREADS },
      io,
      [],
    );
    expect(code).toBe(0);
    const r = results[0] as Record<string, unknown>;
    expect(r.episodes).toBe(3);
    expect(r.model).toBe('tiny-vla-flow');
    expect(at(r, 'flow').cameras).toEqual(['table', 'wrist']);
    expect(at(r, 'visual_tokens').total).toBe(128);
  });

  it('bench flow reports every configuration on the same episodes', async () => {
    const out = await mkdtemp(join(tmpdir(), 'vla-bench-flow-'));
    temps.push(out);
    const { io, results } = capture();
    await benchFlowCommand.run(
      {
        episodes: '1',
        seed: '1',
        model: FLOW_DIR,
        threshold: '2',
        'reuse-cameras': 'table',
        steps: '1',
        'delay-ms': '200',
        'jitter-ms': '0',
        out,
        force: true,
        set: THREADS,
      },
      io,
      [],
    );
    const r = results[0] as {
      rows: { name: string; steps: number }[];
      rtc: { rows: { mode: string }[] };
    };
    expect(r.rows.map((x) => x.name)).toEqual([
      'uncached',
      'keys/values copied per step',
      'instruction cache',
      'instruction + visual reuse (threshold 2)',
      '1 steps',
      'all: instruction + visual reuse + 1 steps',
    ]);
    expect(r.rtc.rows.map((x) => x.mode)).toEqual([
      'replace',
      'ensemble (ACT)',
      'rtc blend',
      'rtc guided inpainting (Black et al.)',
    ]);
  });
});
