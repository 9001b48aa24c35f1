/**
 * `vla-node bench report`: runs the report's sections (src/bench/report-*.ts) and writes
 * report.json, report.md and the charts.
 */
import os from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import sharp from 'sharp';
import { measureArReference, type ArReferenceReport } from '../bench/ar-reference.js';
import { measureFlowReference, type FlowReferenceReport } from '../bench/flow-reference.js';
import { measureCameraIngest } from '../bench/ingest.js';
import { loadFlowPackage } from '../model/flow-manifest.js';
import { machineInfo } from '../bench/machine.js';
import { measureMatmulPeak } from '../bench/peak.js';
import { reportMarkdown, reportSummary } from '../bench/report-markdown.js';
import { matrix } from '../bench/report-matrix.js';
import { modelReport, realisticPackage } from '../bench/report-model.js';
import {
  MATRIX_PRECISIONS,
  STRATEGY,
  type MatrixCell,
  type ModelReport,
  type PerformanceReport,
} from '../bench/report-types.js';
import { resolvePackagePath } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { barChartSvg, lineChartSvg } from './chart.js';
import type { CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

export { reportMarkdown, reportSummary } from '../bench/report-markdown.js';
export type { MatrixCell, ModelReport, PerformanceReport } from '../bench/report-types.js';

/** The files `bench report` writes into its --out folder. */
const REPORT_FILES = [
  'report.json',
  'report.md',
  'report.svg',
  'report.png',
  'report-matrix.svg',
  'report-matrix.png',
];

export const benchReportCommand: CommandSpec = {
  name: 'bench report',
  summary:
    'the performance report: node vs bare sessions vs PyTorch eager, fp32/int8 × keep ratios, FLOPs vs the measured matmul peak, start-up and memory, tiny and realistic-scale models',
  options: {
    out: {
      type: 'string',
      default: 'bench',
      help: 'folder for report.json, report.md, report.svg and report.png (existing ones need --force)',
    },
    ...FORCE_OPTION,
    repeats: { type: 'string', default: '3', help: 'repeats of each latency figure' },
    frames: { type: 'string', default: '200', help: 'frames per repeat (tiny model)' },
    'realistic-frames': {
      type: 'string',
      default: '40',
      help: 'frames per repeat for the realistic-scale model',
    },
    episodes: { type: 'string', default: '50', help: 'closed-loop episodes per matrix cell' },
    seed: { type: 'string', default: '1', help: 'seed of the scenes' },
    realistic: {
      type: 'string',
      default: 'models/realistic-vla',
      help: 'realistic-scale package (generated with make_realistic.py when missing; "" to skip)',
    },
    flow: {
      type: 'string',
      default: 'models/tiny-vla-flow',
      help: 'flow-matching package compared with PyTorch eager ("" to skip)',
    },
    ar: {
      type: 'string',
      default: 'models/tiny-vla-ar',
      help: 'autoregressive package compared with PyTorch eager ("" to skip)',
    },
    python: {
      type: 'string',
      default: '/usr/bin/python3',
      help: 'Python with PyTorch for the eager reference',
    },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const int = (name: string, min: number): number => {
      const v = Number(values[name]);
      if (!Number.isInteger(v) || v < min) {
        throw new ConfigError(
          `Expected an integer ≥ ${min} for --${name} but received ${String(values[name])}`,
          { field: name },
        );
      }
      return v;
    };
    const repeats = int('repeats', 1);
    const frames = int('frames', 1);
    const realisticFrames = int('realistic-frames', 1);
    const episodes = int('episodes', 1);
    const seed = int('seed', 0);
    const python = String(values.python);
    const base = await configFromArgs(values);
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out), files: REPORT_FILES }],
      [
        { what: 'the model package', path: resolvePackagePath(base.model.path), enclosing: true },
        ...(typeof values.realistic === 'string' && values.realistic !== ''
          ? [{ what: 'the realistic model package', path: values.realistic, enclosing: true }]
          : []),
      ],
    );
    const options = pipelineOptions(base, () => undefined);
    // 0 = ONNX Runtime's default: one thread per core.
    const threads =
      base.backend.intra_op_threads > 0 ? base.backend.intra_op_threads : os.availableParallelism();
    const skipped: { what: string; reason: string }[] = [];
    const machine = machineInfo();
    io.progress(
      `machine: ${machine.cpu}, ${machine.logical_cores} cores, ${machine.flags.join(' ')}`,
    );
    io.progress('matrix-multiply peak');
    const peak = await measureMatmulPeak({
      threads: [...new Set([1, threads, machine.logical_cores])].sort((a, b) => a - b),
    });
    // The stages are compared with the peak at the thread count they ran with.
    const peakAtThreads = peak.peak_gflops[String(threads)] ?? Number.NaN;
    io.progress(`peak ${JSON.stringify(peak.peak_gflops)} GFLOP/s by thread count`);
    const models: ModelReport[] = [];
    const tiny = await modelFromConfig(base);
    const settings = { repeats, frames, seed, python, threads };
    models.push(await modelReport(tiny, options, settings, peakAtThreads, io, true));
    const real = await realisticPackage(String(values.realistic), python, io);
    if (real.model !== undefined) {
      models.push(
        await modelReport(
          real.model,
          options,
          { ...settings, frames: realisticFrames },
          peakAtThreads,
          io,
          false,
        ),
      );
    } else skipped.push({ what: 'realistic model', reason: real.reason ?? '' });
    for (const m of models) {
      if (!m.pytorch.available)
        skipped.push({ what: `PyTorch reference (${m.model})`, reason: m.pytorch.reason });
      if (!m.startup.available)
        skipped.push({ what: `start-up probe (${m.model})`, reason: m.startup.reason });
    }
    io.progress('camera-frame ingest (as `vla-node bench ingest`)');
    // As many timed calls per ingest figure as frames per latency repeat (200 by default, as
    // bench ingest's --runs).
    const ingest = await measureCameraIngest(
      tiny,
      options,
      { runs: frames, repeats, frames },
      (line) => {
        io.progress(line);
      },
    );
    let flow: FlowReferenceReport | null = null;
    const flowDir = String(values.flow);
    if (flowDir === '')
      skipped.push({ what: 'flow-matching package', reason: 'disabled (--flow "")' });
    else {
      io.progress(`flow-matching package ${flowDir} against PyTorch eager`);
      flow = await measureFlowReference(await loadFlowPackage(resolve(flowDir)), {
        frames: Math.min(frames, 50),
        repeats,
        seed,
        threads,
        python,
      });
      if (!flow.pytorch.available)
        skipped.push({ what: `PyTorch reference (${flow.model})`, reason: flow.pytorch.reason });
    }
    let ar: ArReferenceReport | null = null;
    const arDir = String(values.ar);
    if (arDir === '')
      skipped.push({ what: 'autoregressive package', reason: 'disabled (--ar "")' });
    else {
      io.progress(`autoregressive package ${arDir} against PyTorch eager`);
      ar = await measureArReference(resolve(arDir), {
        frames: Math.min(frames, 50),
        repeats,
        seed,
        threads,
        python,
      });
      if (!ar.pytorch.available)
        skipped.push({ what: `PyTorch reference (${ar.model})`, reason: ar.pytorch.reason });
    }
    io.progress(`compression × pruning matrix (${episodes} episodes per cell)`);
    const cells = await matrix(base, episodes, repeats, io);
    const out = resolve(String(values.out));
    await mkdir(out, { recursive: true });
    const files = {
      json: join(out, 'report.json'),
      markdown: join(out, 'report.md'),
      svg: join(out, 'report.svg'),
      png: join(out, 'report.png'),
      matrix_svg: join(out, 'report-matrix.svg'),
      matrix_png: join(out, 'report-matrix.png'),
    };
    const report: PerformanceReport = {
      created: new Date().toISOString(),
      machine,
      settings: {
        intra_op_threads: threads,
        repeats,
        frames,
        episodes_per_cell: episodes,
        strategy: STRATEGY,
      },
      matmul_peak: peak,
      models,
      matrix: cells,
      ingest,
      flow,
      ar,
      skipped,
      files,
    };
    const bars = barChartSvg(
      models.map((m) => ({
        title: `${m.model}: frame → chunk p50 (ms)`,
        yLabel: 'ms',
        categories: ['bare sessions', 'node', 'PyTorch eager'],
        series: [
          {
            name: m.model,
            values: [
              m.pipeline_overhead.bare.median.p50,
              m.pipeline_overhead.node.median.p50,
              m.pytorch.available ? m.pytorch.latency.median.p50 : Number.NaN,
            ],
          },
        ],
      })),
    );
    const byPrecision = (f: (c: MatrixCell) => number) =>
      MATRIX_PRECISIONS.map((p) => ({
        name: p,
        points: cells.filter((c) => c.precision === p).map((c) => ({ x: c.keep_ratio, y: f(c) })),
      }));
    const lines = lineChartSvg([
      {
        title: 'closed-loop success (tiny-vla)',
        xLabel: 'keep ratio',
        yLabel: 'success',
        series: byPrecision((c) => c.success_rate),
        yMin: 0,
        yMax: 1,
      },
      {
        title: 'frame → chunk p50 (ms, tiny-vla)',
        xLabel: 'keep ratio',
        yLabel: 'ms',
        series: byPrecision((c) => c.end_to_end_ms.p50),
        yMin: 0,
      },
    ]);
    await writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(files.markdown, reportMarkdown(report));
    await writeFile(files.svg, bars);
    await sharp(Buffer.from(bars)).png().toFile(files.png);
    await writeFile(files.matrix_svg, lines);
    await sharp(Buffer.from(lines)).png().toFile(files.matrix_png);
    io.result(report, reportSummary(report));
    return 0;
  },
};
