import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { resolvePackagePath } from '../config/index.js';
import { ConfigError } from '../errors.js';
import type { FlowCacheOptions } from '../flow/policy.js';
import { loadFlowPackage } from '../model/flow-manifest.js';
import type { CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs } from './setup.js';
import { simulateFlow, type FlowRunOptions } from './sim-flow.js';

/** One configuration of the flow runtime, run on the same episodes as every other. */
export interface FlowBenchRow {
  readonly name: string;
  readonly steps: number;
  readonly caches: FlowCacheOptions;
  readonly copy_kv_per_step: boolean;
  readonly success_rate: number;
  readonly successes: number;
  readonly episodes: number;
  readonly frame_ms: { readonly mean: number; readonly p50: number; readonly p95: number };
  /** Mean milliseconds per stage and frame. */
  readonly stage_ms: Record<string, number>;
  /** Mean frame time of the baseline (uncached, default steps) less this row's. */
  readonly saved_ms_per_frame: number;
  readonly mean_reused_tokens: number;
  readonly mean_kept_tokens: number;
}

function table(rows: readonly FlowBenchRow[]): string {
  const lines = [
    '| configuration | steps | success | frame mean / p50 / p95 (ms) | saved per frame (ms) | instruction (ms) | prefix (ms) | denoise (ms) | reused tokens |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${r.steps} | ${(100 * r.success_rate).toFixed(1)}% | ${r.frame_ms.mean.toFixed(2)} / ${r.frame_ms.p50.toFixed(2)} / ${r.frame_ms.p95.toFixed(2)} | ${r.saved_ms_per_frame.toFixed(2)} | ${(r.stage_ms.instruction ?? 0).toFixed(2)} | ${(r.stage_ms.prefix ?? 0).toFixed(2)} | ${(r.stage_ms.denoise ?? 0).toFixed(2)} | ${r.mean_reused_tokens.toFixed(1)} / ${r.mean_kept_tokens.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

/** One execution mode under injected delay. */
export interface RtcBenchRow {
  readonly mode: string;
  readonly success_rate: number;
  readonly mean_steps: number;
  /** Largest action change (table units, max over dimensions) on a step where a new chunk took over. */
  readonly max_boundary_jump: number;
  readonly smoothness: number | null;
  readonly deadline_misses: number;
  readonly frame_ms_mean: number;
}

function rtcTable(rows: readonly RtcBenchRow[]): string {
  return [
    '| execution | success | mean steps | largest jump at a chunk boundary | smoothness | deadline misses | frame mean (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.mode} | ${(100 * r.success_rate).toFixed(1)}% | ${r.mean_steps.toFixed(2)} | ${r.max_boundary_jump.toFixed(4)} | ${String(r.smoothness)} | ${r.deadline_misses} | ${r.frame_ms_mean.toFixed(2)} |`,
    ),
  ].join('\n');
}

const FILES = ['flow.json', 'flow.md'];

export const benchFlowCommand: CommandSpec = {
  name: 'bench flow',
  summary:
    "a flow-matching package's caches and step counts, each switched on alone, on the same seeded episodes: success and latency saved per frame",
  options: {
    episodes: { type: 'string', default: '100', help: 'episodes per configuration' },
    seed: { type: 'string', default: '1', help: 'seed of the episodes (the same in every row)' },
    model: { type: 'string', default: 'models/tiny-vla-flow', help: 'flow model package' },
    threshold: {
      type: 'string',
      default: '2',
      help: 'visual-token reuse threshold: mean absolute pixel difference (0-255) of a patch',
    },
    'reuse-cameras': {
      type: 'string',
      default: 'table',
      help: 'comma-separated cameras whose tokens may be reused (not cameras that move with the robot)',
    },
    steps: { type: 'string', default: '5,2,1', help: 'step counts besides the default to run' },
    'delay-ms': {
      type: 'string',
      default: '250',
      help: 'injected inference delay of the real-time chunking comparison (0: skip it)',
    },
    'jitter-ms': { type: 'string', default: '50', help: 'uniform jitter of that delay' },
    only: { type: 'string', help: 'caches|rtc: run only one of the two comparisons' },
    out: {
      type: 'string',
      default: 'bench/flow',
      help: 'folder for flow.json and flow.md (existing ones need --force)',
    },
    ...FORCE_OPTION,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs({
      ...values,
      set: [
        ...(Array.isArray(values.set) ? values.set : []),
        `sim.episodes=${String(values.episodes)}`,
        `sim.seed=${String(values.seed)}`,
        `model.path=${String(values.model)}`,
      ],
    });
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out), files: FILES }],
      [{ what: 'the model package', path: resolvePackagePath(config.model.path), enclosing: true }],
    );
    const threshold = Number(values.threshold);
    if (!Number.isFinite(threshold) || threshold < 0 || threshold > 255) {
      throw new ConfigError(
        `Expected --threshold in [0, 255] but received ${String(values.threshold)}`,
        { field: 'threshold' },
      );
    }
    const stepCounts = String(values.steps)
      .split(',')
      .filter((s) => s.trim() !== '')
      .map((s) => {
        const n = Number(s);
        if (!Number.isInteger(n) || n < 1 || n > 1000) {
          throw new ConfigError(`Expected --steps as integers in [1, 1000] but received ${s}`, {
            field: 'steps',
          });
        }
        return n;
      });
    const pkg = await loadFlowPackage(resolvePackagePath(config.model.path));
    const def = pkg.manifest.denoising.steps;
    const reuseCameras = String(values['reuse-cameras'])
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const none: FlowCacheOptions = { instruction: false, visualThreshold: null, visualCameras: [] };
    const instruction: FlowCacheOptions = { ...none, instruction: true };
    const visual: FlowCacheOptions = {
      instruction: true,
      visualThreshold: threshold,
      visualCameras: reuseCameras,
    };
    const plan: {
      name: string;
      run: FlowRunOptions & { steps: number; caches: FlowCacheOptions };
    }[] = [
      { name: 'uncached', run: { steps: def, caches: none } },
      {
        name: 'keys/values copied per step',
        run: { steps: def, caches: none, copyKvPerStep: true },
      },
      { name: 'instruction cache', run: { steps: def, caches: instruction } },
      {
        name: `instruction + visual reuse (threshold ${threshold})`,
        run: { steps: def, caches: visual },
      },
      ...stepCounts.map((n) => ({ name: `${n} steps`, run: { steps: n, caches: none } })),
      {
        name: `all: instruction + visual reuse + ${Math.min(...stepCounts, def)} steps`,
        run: { steps: Math.min(...stepCounts, def), caches: visual },
      },
    ];
    const rows: FlowBenchRow[] = [];
    let baseline = 0;
    for (const { name, run } of values.only === 'rtc' ? [] : plan) {
      const r = await simulateFlow(config, 'model', () => undefined, undefined, run);
      const frame = r.latency_ms ?? { mean: 0, p50: 0, p95: 0 };
      if (rows.length === 0) baseline = frame.mean;
      const flow = r.flow ?? {};
      const row: FlowBenchRow = {
        name,
        steps: run.steps,
        caches: run.caches,
        copy_kv_per_step: run.copyKvPerStep === true,
        success_rate: r.success_rate,
        successes: r.successes,
        episodes: r.episodes,
        frame_ms: { mean: frame.mean, p50: frame.p50, p95: frame.p95 },
        stage_ms: r.stage_ms ?? {},
        saved_ms_per_frame: Math.round((baseline - frame.mean) * 1000) / 1000,
        mean_reused_tokens: Number(flow.mean_reused_tokens ?? 0),
        mean_kept_tokens: r.visual_tokens?.mean_kept ?? 0,
      };
      rows.push(row);
      io.progress(
        `${name.padEnd(44)} success ${(100 * row.success_rate).toFixed(1).padStart(5)}%  frame mean ${row.frame_ms.mean.toFixed(2)} ms  saved ${row.saved_ms_per_frame.toFixed(2)} ms`,
      );
    }
    const delay = Number(values['delay-ms']);
    const rtcRows: RtcBenchRow[] = [];
    if (values.only !== 'caches' && delay > 0) {
      const modes: { mode: string; merge: string; guided: boolean }[] = [
        { mode: 'replace', merge: 'replace', guided: false },
        { mode: 'ensemble (ACT)', merge: 'ensemble', guided: false },
        { mode: 'rtc blend', merge: 'rtc', guided: false },
        { mode: 'rtc guided inpainting (Black et al.)', merge: 'replace', guided: true },
      ];
      for (const m of modes) {
        const timed = await configFromArgs({
          ...values,
          set: [
            ...(Array.isArray(values.set) ? values.set : []),
            `sim.episodes=${String(values.episodes)}`,
            `sim.seed=${String(values.seed)}`,
            `model.path=${String(values.model)}`,
            `runtime.merge_mode=${m.merge}`,
            `sim.inject_delay_ms=${String(delay)}`,
            `sim.inject_jitter_ms=${String(values['jitter-ms'])}`,
          ],
        });
        const r = await simulateFlow(timed, 'model', () => undefined, undefined, {
          caches: instruction,
          ...(m.guided ? { guidance: { schedule: 'exp', maxWeight: 5 } } : {}),
        });
        const row: RtcBenchRow = {
          mode: m.mode,
          success_rate: r.success_rate,
          mean_steps: r.mean_steps,
          max_boundary_jump: r.boundary_jump,
          smoothness: r.smoothness,
          deadline_misses: r.deadline_misses,
          frame_ms_mean: r.latency_ms?.mean ?? 0,
        };
        rtcRows.push(row);
        io.progress(
          `${m.mode.padEnd(40)} success ${(100 * row.success_rate).toFixed(1).padStart(5)}%  steps ${row.mean_steps.toFixed(1)}  largest boundary jump ${row.max_boundary_jump.toFixed(4)}`,
        );
      }
    }
    const out = resolve(String(values.out));
    await mkdir(out, { recursive: true });
    const md = [
      ...(rows.length > 0 ? [table(rows)] : []),
      ...(rtcRows.length > 0
        ? [
            `Under ${delay} ± ${String(values['jitter-ms'])} ms injected delay:\n\n${rtcTable(rtcRows)}`,
          ]
        : []),
    ].join('\n\n');
    const result = {
      model: pkg.manifest.name,
      episodes: config.sim.episodes,
      seed: config.sim.seed,
      default_steps: def,
      intra_op_threads: config.backend.intra_op_threads,
      rows,
      rtc: { injected_delay_ms: delay, jitter_ms: Number(values['jitter-ms']), rows: rtcRows },
      files: { json: join(out, 'flow.json'), markdown: join(out, 'flow.md') },
    };
    await writeFile(result.files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(result.files.markdown, `${md}\n`);
    io.result(result, md);
    return 0;
  },
};
