import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { simulateAr } from '../../src/cli/sim-ar.js';
import { simulateFlow } from '../../src/cli/sim-flow.js';
import { loadConfig } from '../../src/config/index.js';
import { simulate } from '../../src/sim/experiment.js';
import { formatReport, simReport } from '../../src/sim/report.js';
import type { SimReport } from '../../src/sim/report.js';
import { TINY_VLA } from '../helpers.js';

const MODELS = fileURLToPath(new URL('../../models/', import.meta.url));

/** One short run of every family with `agent`, under the same parameters. */
async function reports(agent: 'expert' | 'model'): Promise<Record<string, SimReport>> {
  const config = async (path: string) =>
    loadConfig({ overrides: { 'model.path': path, 'sim.episodes': 2, 'sim.seed': 7 } });
  const quiet = (): void => undefined;
  return {
    'encoder + policy': await simulate(await config(TINY_VLA), agent, quiet),
    autoregressive: await simulateAr(await config(`${MODELS}tiny-vla-ar`), agent, quiet),
    flow: await simulateFlow(await config(`${MODELS}tiny-vla-flow`), agent, quiet),
  };
}

describe('the sim report', () => {
  it('summarises by task only the tasks the episodes drew', async () => {
    const config = await loadConfig({
      overrides: { 'model.path': TINY_VLA, 'sim.episodes': 1, 'sim.seed': 7 },
    });
    const r = await simulate(config, 'expert', () => undefined);
    const drawn = Object.entries(r.by_task).filter(([, v]) => v.episodes > 0);
    expect(drawn).toHaveLength(1);
    expect(Object.keys(r.by_task).length).toBeGreaterThan(1);
    const line = formatReport(r)
      .split('\n')
      .find((l) => l.startsWith('  by task: '));
    const [task, summary] = drawn[0] as [string, { success_rate: number }];
    expect(line).toBe(`  by task: ${task} ${(100 * summary.success_rate).toFixed(1)}% of 1`);
  });

  it.each(['expert', 'model'] as const)(
    'of every family starts with the common fields in the same order, then the family’s own (%s agent)',
    async (agent) => {
      const all = await reports(agent);
      const base = all['encoder + policy'];
      if (base === undefined) throw new Error('no encoder + policy report');
      const common = Object.keys(base);
      // The public order of the common fields, as every release has written them (users and
      // `npm run bench` read these reports).
      expect(common).toEqual([
        'episodes',
        'successes',
        'success_rate',
        'by_task',
        'mean_steps',
        'agent',
        'seed',
        'model',
        'precision',
        'provider',
        'latency_ms',
        'stage_ms',
        'stage_percentiles_ms',
        'strategy',
        'visual_tokens',
        'keep_ratio',
        'latency_at_final_ratio_ms',
        'latency_budget_ms',
        'execute_steps',
        'merge_mode',
        'timed',
        'injected_delay_ms',
        'deadline_misses',
        'safe_hold_steps',
        'idle_steps',
        'stale_frames',
        'inference_errors',
        'smoothness',
      ]);
      for (const [family, report] of Object.entries(all)) {
        expect(Object.keys(report).slice(0, common.length), family).toEqual(common);
        expect(report.agent, family).toBe(agent);
        expect(report.seed, family).toBe(7);
        expect(report.episodes, family).toBe(2);
      }
      expect(Object.keys(all.autoregressive ?? {}).slice(common.length)).toEqual([
        'autoregressive',
      ]);
      expect(Object.keys(all.flow ?? {}).slice(common.length)).toEqual(['boundary_jump', 'flow']);
    },
    120_000,
  );

  it('gives the scripted agents null model figures and rounds as the reports always have', async () => {
    const config = await loadConfig({ overrides: { 'model.path': TINY_VLA } });
    const totals = {
      idleSteps: 1,
      deadlineMisses: 2,
      safeHoldSteps: 3,
      staleFrames: 4,
      inferenceErrors: 5,
      smoothness: 0.0123456789,
      boundaryJump: 0,
    };
    const summary = {
      episodes: 3,
      successes: 2,
      success_rate: 2 / 3,
      by_task: {
        reach: { episodes: 2, success_rate: 1 },
        relation: { episodes: 1, success_rate: 0 },
      },
      mean_steps: 12.3456,
      totals,
      results: [],
    };
    const r = simReport(
      config,
      'blind',
      'tiny-vla',
      { summary, executeSteps: 4, timed: true },
      undefined,
    );
    expect(r.mean_steps).toBe(12.35);
    expect(r.smoothness).toBe(0.01235);
    expect([r.deadline_misses, r.safe_hold_steps, r.idle_steps, r.stale_frames]).toEqual([
      2, 3, 1, 4,
    ]);
    expect(r.inference_errors).toBe(5);
    for (const key of [
      'precision',
      'provider',
      'latency_ms',
      'stage_ms',
      'stage_percentiles_ms',
      'visual_tokens',
      'keep_ratio',
      'latency_at_final_ratio_ms',
    ] as const) {
      expect(r[key], key).toBeNull();
    }
    expect(
      simReport(config, 'blind', 'tiny-vla', { summary, executeSteps: 4, timed: false }, undefined)
        .timed,
    ).toBe(false);
    expect(
      simReport(
        config,
        'blind',
        'tiny-vla',
        {
          summary: { ...summary, totals: { ...totals, smoothness: undefined } },
          executeSteps: 4,
          timed: false,
        },
        undefined,
      ).smoothness,
    ).toBeNull();
  });
});
