/**
 * `vla-node bench foxglove`: what the live view costs the control loop. The simulator runs the
 * model closed-loop (unpaced, RTC execution, so every control period sends an action) with no
 * live view, with the server and no viewer, with a viewer that reads everything, and with one
 * that stops reading; scenarios are interleaved over repeats (the machine may be shared) and the
 * report gives the medians of each repeat's figures.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { VlaPipeline } from '../pipeline/pipeline.js';
import { observeInference, type RunObserver } from '../pipeline/observer.js';
import { pipelineAgent, runEpisodes } from '../sim/runner.js';
import { LatencyHistogram } from '../runtime/latency.js';
import {
  FoxgloveView,
  overlayGeometry,
  LiveServer,
  type LiveServerStats,
} from '../transports/foxglove/index.js';
import { median, round } from '../util/stats.js';
import { ConfigError, describe } from '../errors.js';
import type { CommandSpec, OptionValues } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';
import { clockedTiming } from '../sim/configured-run.js';

export const SCENARIOS = ['off', 'no_viewer', 'fast_viewer', 'stalled_viewer'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** One scenario's figures: the median over repeats of each repeat's value. */
export interface ScenarioReport {
  /** Control period → control period, wall time, ms (model inference included when it runs). */
  readonly step_ms: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Wall time of the episodes of one repeat, ms. */
  readonly run_ms: number;
  /** Time spent inside the live view's hooks per control step, µs (0 without a view). */
  readonly view_us_per_step: number;
  readonly steps: number;
  /** Messages the server skipped for viewers over their buffer limit, per repeat (median). */
  readonly dropped: number;
  readonly sent: number;
  readonly encoded: number;
  /** Messages not built because every viewer was over its buffer limit (median). */
  readonly unbuilt: number;
  /** Messages the fast viewer received (fast_viewer only). */
  readonly viewer_messages: number | null;
}

export interface FoxgloveBenchReport {
  readonly model: string;
  readonly episodes: number;
  readonly repeats: number;
  readonly camera: string;
  readonly max_client_buffer_bytes: number;
  readonly scenarios: Record<Scenario, ScenarioReport>;
  /** p50 step time with the server and no viewer minus without the view, ms. */
  readonly no_viewer_overhead_p50_ms: number;
}

function positiveInteger(values: OptionValues, flag: string): number {
  const raw = values[flag];
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(Number.isSafeInteger(n) && n >= 1)) {
    throw new ConfigError(
      `Expected a positive integer for --${flag} but received ${describe(raw)}`,
      {
        field: flag,
      },
    );
  }
  return n;
}

/** Sums the time spent in each hook of `inner`. */
class TimedObserver implements RunObserver {
  readonly #inner: FoxgloveView;
  ms = 0;
  constructor(inner: FoxgloveView) {
    this.#inner = inner;
  }
  onFrame(...a: Parameters<FoxgloveView['onFrame']>): void {
    const t = performance.now();
    this.#inner.onFrame(...a);
    this.ms += performance.now() - t;
  }
  onChunk(...a: Parameters<FoxgloveView['onChunk']>): void {
    const t = performance.now();
    this.#inner.onChunk(...a);
    this.ms += performance.now() - t;
  }
  onCommand(...a: Parameters<FoxgloveView['onCommand']>): void {
    const t = performance.now();
    this.#inner.onCommand(...a);
    this.ms += performance.now() - t;
  }
  onScene(...a: Parameters<FoxgloveView['onScene']>): void {
    const t = performance.now();
    this.#inner.onScene(...a);
    this.ms += performance.now() - t;
  }
}

interface Viewer {
  stop(): Promise<{ messages: number; bytes: number }>;
}

/** Start a viewer process and wait until its subscriptions are in. */
async function startViewer(url: string, mode: 'fast' | 'stalled'): Promise<Viewer> {
  const script = fileURLToPath(new URL('../bench/foxglove-viewer.js', import.meta.url));
  const child = spawn(process.execPath, [script, url, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.value !== 'ready') throw new Error(`the ${mode} viewer did not start`);
  return {
    stop: async () => {
      child.kill('SIGTERM');
      const next = await iterator.next();
      if (child.exitCode === null) await once(child, 'exit');
      return typeof next.value === 'string'
        ? (JSON.parse(next.value) as { messages: number; bytes: number })
        : { messages: 0, bytes: 0 };
    },
  };
}

interface RepeatResult {
  readonly steps: number[];
  readonly runMs: number;
  readonly viewMs: number;
  readonly stats: LiveServerStats | undefined;
  readonly viewerMessages: number | undefined;
}

export const benchFoxgloveCommand: CommandSpec = {
  name: 'bench foxglove',
  summary:
    'control-loop step time with the Foxglove live view off, on without a viewer, with a reading and with a stalled viewer',
  options: {
    episodes: { type: 'string', default: '20', help: 'simulator episodes per repeat' },
    repeats: { type: 'string', default: '5', help: 'repeats of each scenario, interleaved' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const episodes = positiveInteger(values, 'episodes');
    const repeats = positiveInteger(values, 'repeats');
    const config = await configFromArgs(values);
    const model = await modelFromConfig(config);
    const m = model.manifest;
    io.progress(`loading ${m.name} (${config.model.precision}) and warming up...`);
    const pipeline = await VlaPipeline.create(
      model,
      pipelineOptions(config, (line) => {
        io.progress(line);
      }),
    );
    const timing = clockedTiming(config, m, pipeline.actionLimits, 'rtc');
    const repeat = async (scenario: Scenario): Promise<RepeatResult> => {
      const server =
        scenario === 'off'
          ? undefined
          : await LiveServer.start({
              host: '127.0.0.1',
              port: 0,
              maxClientBufferBytes: config.foxglove.max_client_buffer_bytes,
            });
      let viewer: Viewer | undefined;
      try {
        const view =
          server === undefined
            ? undefined
            : new TimedObserver(
                FoxgloveView.create(server, {
                  actionNames: m.action.names,
                  overlay: overlayGeometry(m),
                }),
              );
        if (server !== undefined && scenario !== 'no_viewer') {
          viewer = await startViewer(server.url, scenario === 'fast_viewer' ? 'fast' : 'stalled');
        }
        const steps: number[] = [];
        let last: number | undefined;
        const t0 = performance.now();
        await runEpisodes(
          pipelineAgent(view === undefined ? pipeline : observeInference(pipeline, view)),
          {
            episodes,
            seed: config.sim.seed,
            executeSteps: 1,
            maxSteps: config.sim.max_steps,
            cameraWidth: config.sim.camera_width,
            cameraHeight: config.sim.camera_height,
            timing,
            observer: view,
            onAction: () => {
              const now = performance.now();
              if (last !== undefined) steps.push(now - last);
              last = now;
            },
          },
        );
        const runMs = performance.now() - t0;
        const got = await viewer?.stop();
        viewer = undefined;
        return {
          steps,
          runMs,
          viewMs: view?.ms ?? 0,
          stats: server?.stats(),
          viewerMessages: scenario === 'fast_viewer' ? got?.messages : undefined,
        };
      } finally {
        await viewer?.stop();
        await server?.close();
      }
    };
    const results = new Map<Scenario, RepeatResult[]>(SCENARIOS.map((s) => [s, []]));
    try {
      for (let i = 0; i < repeats; i++) {
        for (const scenario of SCENARIOS) {
          const result = await repeat(scenario);
          results.get(scenario)?.push(result);
          const h = new LatencyHistogram();
          for (const s of result.steps) h.record(s);
          const p = h.summary();
          io.progress(
            `repeat ${i + 1}/${repeats} ${scenario.padEnd(14)} step p50 ${p.p50} ms p99 ${p.p99} ms, run ${round(result.runMs, 1)} ms, dropped ${result.stats?.dropped ?? 0}`,
          );
        }
      }
    } finally {
      await pipeline.release();
    }
    const scenarios = Object.fromEntries(
      SCENARIOS.map((s) => [s, summarise(results.get(s) ?? [])]),
    ) as Record<Scenario, ScenarioReport>;
    const report: FoxgloveBenchReport = {
      model: m.name,
      episodes,
      repeats,
      camera: `${config.sim.camera_width}x${config.sim.camera_height}`,
      max_client_buffer_bytes: config.foxglove.max_client_buffer_bytes,
      scenarios,
      no_viewer_overhead_p50_ms: round(
        scenarios.no_viewer.step_ms.p50 - scenarios.off.step_ms.p50,
        4,
      ),
    };
    io.result(report, formatFoxgloveBench(report));
    return 0;
  },
};

function summarise(rs: readonly RepeatResult[]): ScenarioReport {
  const per = rs.map((r) => {
    const h = new LatencyHistogram();
    for (const s of r.steps) h.record(s);
    return { ...h.summary(), r };
  });
  const med = (f: (x: (typeof per)[number]) => number, digits = 3): number =>
    round(median(per.map(f)), digits);
  const viewer = rs.map((r) => r.viewerMessages).filter((v) => v !== undefined);
  return {
    step_ms: { p50: med((x) => x.p50, 4), p99: med((x) => x.p99, 4), max: med((x) => x.max, 4) },
    run_ms: med((x) => x.r.runMs, 1),
    view_us_per_step: med((x) => (1000 * x.r.viewMs) / Math.max(1, x.r.steps.length + 1), 2),
    steps: med((x) => x.r.steps.length + 1, 0),
    dropped: med((x) => x.r.stats?.dropped ?? 0, 0),
    sent: med((x) => x.r.stats?.sent ?? 0, 0),
    encoded: med((x) => x.r.stats?.encoded ?? 0, 0),
    unbuilt: med((x) => x.r.stats?.unbuilt ?? 0, 0),
    viewer_messages: viewer.length === 0 ? null : round(median(viewer), 0),
  };
}

/** A readable table of the report. */
export function formatFoxgloveBench(r: FoxgloveBenchReport): string {
  const lines = [
    `live view cost on ${r.model}, ${r.episodes} episodes × ${r.repeats} repeats (medians of repeats), camera ${r.camera}:`,
    '  scenario        step p50 ms  step p99 ms  run ms     view µs/step  sent    dropped  unbuilt',
  ];
  for (const s of SCENARIOS) {
    const x = r.scenarios[s];
    lines.push(
      `  ${s.padEnd(15)} ${String(x.step_ms.p50).padStart(11)}  ${String(x.step_ms.p99).padStart(11)}  ${String(x.run_ms).padStart(9)}  ${String(x.view_us_per_step).padStart(12)}  ${String(x.sent).padStart(6)}  ${String(x.dropped).padStart(7)}  ${String(x.unbuilt).padStart(7)}`,
    );
  }
  lines.push(`  server without a viewer adds ${r.no_viewer_overhead_p50_ms} ms to the p50 step`);
  return lines.join('\n');
}
