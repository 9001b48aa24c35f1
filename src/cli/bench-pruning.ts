import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import {
  applyOverrides,
  PRUNING_STRATEGIES,
  resolvePackagePath,
  validateConfig,
  type PruningStrategy,
  type VlaConfig,
} from '../config/index.js';
import { lineChartSvg } from './chart.js';
import type { CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs } from './setup.js';
import { simulate } from '../sim/experiment.js';

const RATIOS = [1, 0.5, 0.25, 0.125] as const;

/** One cell of the strategy × keep-ratio matrix. */
export interface PruningCell {
  readonly strategy: PruningStrategy;
  readonly keep_ratio: number;
  readonly tokens_kept: number;
  readonly tokens_total: number;
  readonly success_rate: number;
  readonly policy_ms: { readonly p50: number; readonly p95: number };
  readonly end_to_end_ms: { readonly p50: number; readonly p95: number };
  readonly prune_ms: { readonly p50: number; readonly p95: number };
}

function cellConfig(base: VlaConfig, strategy: PruningStrategy, ratio: number): VlaConfig {
  return validateConfig(
    applyOverrides(base, {
      'pruning.strategy': strategy,
      'pruning.keep_ratio': ratio,
      'pruning.keep_count': 0,
    }),
    'bench pruning',
  );
}

/** Markdown table of the matrix. */
export function pruningTable(cells: readonly PruningCell[]): string {
  const lines = [
    '| strategy | keep ratio | tokens kept | success rate | policy p50 / p95 (ms) | end-to-end p50 / p95 (ms) |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const c of cells) {
    lines.push(
      `| ${c.strategy} | ${c.keep_ratio} | ${c.tokens_kept}/${c.tokens_total} | ${(100 * c.success_rate).toFixed(1)}% | ${c.policy_ms.p50.toFixed(3)} / ${c.policy_ms.p95.toFixed(3)} | ${c.end_to_end_ms.p50.toFixed(3)} / ${c.end_to_end_ms.p95.toFixed(3)} |`,
    );
  }
  return lines.join('\n');
}

/** The files `bench pruning` writes into its --out folder. */
const PRUNING_FILES = ['pruning.json', 'pruning.md', 'pruning.svg', 'pruning.png'];

export const benchPruningCommand: CommandSpec = {
  name: 'bench pruning',
  summary:
    'closed-loop success and latency of every pruning strategy at keep ratios 1, 0.5, 0.25, 0.125',
  options: {
    episodes: { type: 'string', default: '100', help: 'episodes per cell' },
    seed: {
      type: 'string',
      default: '1',
      help: 'seed of the episode sequence (same scenes in every cell)',
    },
    strategies: {
      type: 'string',
      help: `comma-separated subset of ${PRUNING_STRATEGIES.join(',')}`,
    },
    out: {
      type: 'string',
      default: 'bench/pruning',
      help: 'folder for pruning.json, pruning.md and pruning.svg/.png (existing ones need --force)',
    },
    ...FORCE_OPTION,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const base = await configFromArgs({
      ...values,
      set: [
        ...(Array.isArray(values.set) ? values.set : []),
        `sim.episodes=${String(values.episodes)}`,
        `sim.seed=${String(values.seed)}`,
      ],
    });
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out), files: PRUNING_FILES }],
      [{ what: 'the model package', path: resolvePackagePath(base.model.path), enclosing: true }],
    );
    const wanted =
      typeof values.strategies === 'string'
        ? values.strategies.split(',').map((s) => s.trim())
        : [...PRUNING_STRATEGIES];
    const strategies = wanted.map(
      (s) =>
        validateConfig(applyOverrides(base, { 'pruning.strategy': s }), '--strategies').pruning
          .strategy,
    );
    const cells: PruningCell[] = [];
    for (const strategy of strategies) {
      for (const ratio of strategy === 'none' ? [1] : RATIOS) {
        const report = await simulate(cellConfig(base, strategy, ratio), 'model', () => undefined);
        const stage = report.stage_percentiles_ms;
        const cell: PruningCell = {
          strategy,
          keep_ratio: ratio,
          tokens_kept: report.visual_tokens?.kept ?? 0,
          tokens_total: report.visual_tokens?.total ?? 0,
          success_rate: report.success_rate,
          policy_ms: { p50: stage?.policy?.p50 ?? 0, p95: stage?.policy?.p95 ?? 0 },
          prune_ms: { p50: stage?.prune?.p50 ?? 0, p95: stage?.prune?.p95 ?? 0 },
          end_to_end_ms: { p50: report.latency_ms?.p50 ?? 0, p95: report.latency_ms?.p95 ?? 0 },
        };
        cells.push(cell);
        io.progress(
          `${strategy.padEnd(9)} keep ${String(ratio).padEnd(5)} success ${(100 * cell.success_rate).toFixed(1).padStart(5)}%  policy p50 ${cell.policy_ms.p50.toFixed(3)} ms  end-to-end p50 ${cell.end_to_end_ms.p50.toFixed(3)} ms`,
        );
      }
    }
    const out = resolve(String(values.out));
    await mkdir(out, { recursive: true });
    const table = pruningTable(cells);
    const series = strategies.map((s) => ({
      name: s,
      points: cells
        .filter((c) => c.strategy === s)
        .map((c) => ({ x: c.keep_ratio, y: c.success_rate })),
    }));
    const latency = strategies.map((s) => ({
      name: s,
      points: cells
        .filter((c) => c.strategy === s)
        .map((c) => ({ x: c.keep_ratio, y: c.policy_ms.p50 })),
    }));
    const svg = lineChartSvg([
      {
        title: 'closed-loop success rate',
        xLabel: 'keep ratio',
        yLabel: 'success rate',
        series,
        yMin: 0,
        yMax: 1,
      },
      {
        title: 'policy stage p50 (ms)',
        xLabel: 'keep ratio',
        yLabel: 'ms',
        series: latency,
        yMin: 0,
      },
    ]);
    const result = {
      episodes_per_cell: base.sim.episodes,
      seed: base.sim.seed,
      model: base.model.path,
      precision: base.model.precision,
      cells,
      files: {
        json: join(out, 'pruning.json'),
        markdown: join(out, 'pruning.md'),
        svg: join(out, 'pruning.svg'),
        png: join(out, 'pruning.png'),
      },
    };
    await writeFile(result.files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(result.files.markdown, `${table}\n`);
    await writeFile(result.files.svg, svg);
    await sharp(Buffer.from(svg)).png().toFile(result.files.png);
    io.result(result, table);
    return 0;
  },
};
