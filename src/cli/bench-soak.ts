import { syncExecuteSteps } from '../runtime/control-loop.js';
import { memoryReport, MemorySampler, type MemoryReport } from '../bench/soak.js';
import { ConfigError, describe } from '../errors.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import { pipelineAgent, runEpisodes, type Agent } from '../sim/runner.js';
import { episodeSeed } from '../util/rng.js';
import { round } from '../util/stats.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import {
  CONFIG_OPTIONS,
  configFromArgs,
  MODEL_FLAG_KEYS,
  MODEL_OPTIONS,
  modelFromConfig,
  pipelineOptions,
} from './setup.js';

/** What `vla-node bench soak` reports. */
export interface SoakReport {
  readonly model: string;
  readonly precision: string;
  readonly provider: string;
  readonly strategy: string;
  readonly minutes: number;
  readonly duration_s: number;
  readonly episodes: number;
  readonly successes: number;
  readonly inferences: number;
  readonly inference_errors: number;
  readonly latency_ms: { readonly p50: number; readonly p99: number };
  readonly memory: MemoryReport;
  /** The allowed growth of resident memory after the warm-up, %. */
  readonly max_growth_pct: number;
  /** Whether resident memory after the warm-up stayed within `max_growth_pct` at its peak. */
  readonly flat: boolean;
}

function positive(values: OptionValues, flag: string): number {
  const raw = values[flag];
  const n = typeof raw === 'string' ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigError(
      `Expected a positive number for --${flag} but received ${describe(raw)}`,
      {
        field: flag,
      },
    );
  }
  return n;
}

/**
 * Run closed-loop episodes of the simulator with the model until `minutes` have passed, sampling
 * resident memory once a second.
 */
export async function runSoak(values: OptionValues, io: CommandIo): Promise<number> {
  const minutes = positive(values, 'minutes');
  const warmupS = positive(values, 'warmup-s');
  const maxGrowthPct = positive(values, 'max-growth-pct');
  const config = await configFromArgs(values, MODEL_FLAG_KEYS);
  const model = await modelFromConfig(config);
  const m = model.manifest;
  io.progress(`loading ${m.name} (${config.model.precision}) and warming up...`);
  const pipeline = await VlaPipeline.create(
    model,
    pipelineOptions(config, (line) => {
      io.progress(line);
    }),
  );
  let inferences = 0;
  let errors = 0;
  const inner = pipelineAgent(pipeline);
  const agent: Agent = {
    name: inner.name,
    act: async (obs, sim) => {
      inferences++;
      try {
        return await inner.act(obs, sim);
      } catch (error) {
        errors++;
        throw error;
      }
    },
  };
  const executeSteps = syncExecuteSteps(config.runtime.execute_steps, m.chunk.horizon);
  const sampler = new MemorySampler(1000);
  const t0 = performance.now();
  const deadline = t0 + minutes * 60_000;
  let episodes = 0;
  let successes = 0;
  let nextProgress = t0 + 60_000;
  sampler.start();
  try {
    while (performance.now() < deadline) {
      // One episode per call: a soak runs for hours, so nothing may keep a result per episode.
      const summary = await runEpisodes(agent, {
        episodes: 1,
        seed: episodeSeed(config.sim.seed, episodes),
        executeSteps,
        maxSteps: config.sim.max_steps,
        cameraWidth: config.sim.camera_width,
        cameraHeight: config.sim.camera_height,
      });
      episodes++;
      successes += summary.successes;
      if (performance.now() >= nextProgress) {
        nextProgress += 60_000;
        const rss = process.memoryUsage().rss / 1024 / 1024;
        io.progress(
          `soak ${round((performance.now() - t0) / 60_000, 1)}/${minutes} min: ${episodes} episodes, ${inferences} inferences, rss ${round(rss, 1)} MiB`,
        );
      }
    }
  } finally {
    await pipeline.release();
  }
  const memory = memoryReport(sampler.stop(), warmupS);
  const total = pipeline.latency.total.summary();
  const report: SoakReport = {
    model: m.name,
    precision: pipeline.precision,
    provider: pipeline.provider,
    strategy: config.pruning.strategy,
    minutes,
    duration_s: round((performance.now() - t0) / 1000, 1),
    episodes,
    successes,
    inferences,
    inference_errors: errors,
    latency_ms: { p50: total.p50, p99: total.p99 },
    memory,
    max_growth_pct: maxGrowthPct,
    flat: memory.peak_growth_after_warmup_pct <= maxGrowthPct,
  };
  const r = memory.rss_mb;
  io.result(
    report,
    `soak ${report.duration_s} s: ${episodes} episodes, ${inferences} inferences (${errors} errors); rss first ${r.first} MiB, after ${warmupS} s warm-up ${r.after_warmup} MiB, last ${r.last} MiB, max ${r.max} MiB; growth after warm-up ${memory.growth_after_warmup_pct}% (peak ${memory.peak_growth_after_warmup_pct}%): ${report.flat ? 'flat' : `NOT flat (over ${maxGrowthPct}%)`}`,
  );
  return report.flat ? 0 : 1;
}

export const benchSoakCommand: CommandSpec = {
  name: 'bench soak',
  summary:
    'closed-loop sim with the model for a given time; resident memory once a second, growth after warm-up',
  options: {
    minutes: { type: 'string', default: '10', help: 'how long to run, minutes' },
    'warmup-s': {
      type: 'string',
      default: '60',
      help: 'seconds before the memory baseline is taken',
    },
    'max-growth-pct': {
      type: 'string',
      default: '5',
      help: 'resident-memory growth after warm-up (peak) above which the run fails (exit 1)',
    },
    ...MODEL_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  run: runSoak,
};
