/** The compression × pruning matrix of `vla-node bench report`: closed loop on the shipped model. */

import { applyOverrides, validateConfig, type VlaConfig } from '../config/index.js';
import { simulate } from '../sim/experiment.js';
import type { SimReport } from '../sim/report.js';
import { median, round } from '../util/stats.js';
import type { ReportProgress } from './report-model.js';
import { MATRIX_PRECISIONS, RATIOS, STRATEGY, type MatrixCell } from './report-types.js';

/**
 * Every precision × keep ratio cell: `episodes` closed-loop episodes, `repeats` times (medians
 * of the runs).
 */
export async function matrix(
  base: VlaConfig,
  episodes: number,
  repeats: number,
  io: ReportProgress,
): Promise<MatrixCell[]> {
  const cells: MatrixCell[] = [];
  for (const precision of MATRIX_PRECISIONS) {
    for (const ratio of RATIOS) {
      const config = validateConfig(
        applyOverrides(base, {
          'model.precision': precision,
          'pruning.strategy': ratio === 1 ? 'none' : STRATEGY,
          'pruning.keep_ratio': ratio,
          'pruning.keep_count': 0,
          'runtime.latency_budget_ms': 0,
          'sim.episodes': episodes,
        }),
        'bench report',
      );
      const runs: SimReport[] = [];
      for (let i = 0; i < repeats; i++) runs.push(await simulate(config, 'model', () => undefined));
      const med = (f: (r: SimReport) => number | undefined): number =>
        median(runs.map((r) => f(r) ?? 0));
      const p50s = runs.map((r) => r.latency_ms?.p50 ?? 0);
      const first = runs[0];
      const cell: MatrixCell = {
        precision,
        keep_ratio: ratio,
        tokens_kept: first?.visual_tokens?.kept ?? 0,
        success_rate: med((r) => r.success_rate),
        end_to_end_ms: { p50: med((r) => r.latency_ms?.p50), p95: med((r) => r.latency_ms?.p95) },
        policy_ms: {
          p50: med((r) => r.stage_percentiles_ms?.policy?.p50),
          p95: med((r) => r.stage_percentiles_ms?.policy?.p95),
        },
        encode_ms: { p50: med((r) => r.stage_percentiles_ms?.encode?.p50) },
        repeats,
        p50_spread_pct: round(
          ((Math.max(...p50s) - Math.min(...p50s)) / med((r) => r.latency_ms?.p50)) * 100,
          1,
        ),
      };
      cells.push(cell);
      io.progress(
        `matrix ${precision} keep ${ratio}: success ${(100 * cell.success_rate).toFixed(0)}%, end-to-end p50 ${cell.end_to_end_ms.p50} ms, policy p50 ${cell.policy_ms.p50} ms`,
      );
    }
  }
  return cells;
}
