/**
 * The run of episodes that the parameters describe, the same for every model family: which agent,
 * how many episodes from which seed, the camera, the step limits, the clocked execution (merge
 * mode, injected delay and stalls) and the progress lines. Each family's experiment (`sim`) brings
 * only its agent and what its model measured.
 */
import { executorSettings, syncExecuteSteps } from '../runtime/control-loop.js';
import type { ActionLimits } from '../runtime/safety.js';
import type { Manifest } from '../model/manifest.js';
import { configuredControlRate, type VlaConfig } from '../config/index.js';
import {
  blindAgent,
  expertAgent,
  runEpisodes,
  type Agent,
  type EpisodeOptions,
  type EpisodeResult,
  type TimingOptions,
} from './runner.js';
import type { EpisodesSummary } from './tally.js';

/** The agents an experiment can run: the model, the scripted expert, or the blind baseline. */
export const AGENTS = ['model', 'expert', 'blind'] as const;
export type AgentName = (typeof AGENTS)[number];

/** The scripted agent `name` for chunks of `horizon` actions. */
export function scriptedAgent(name: Exclude<AgentName, 'model'>, horizon: number): Agent {
  return name === 'expert' ? expertAgent(horizon) : blindAgent(horizon);
}

/**
 * Clocked execution in `mode` at the parameters' control rate (the manifest's when 0), with none of
 * the simulator's injected faults: the base of {@link configuredTiming}, and what the live-view
 * benchmark and picture run.
 */
export function clockedTiming(
  config: VlaConfig,
  manifest: Pick<Manifest, 'control_rate_hz' | 'chunk'>,
  limits: ActionLimits,
  mode: TimingOptions['mode'],
): TimingOptions {
  const r = config.runtime;
  return {
    mode,
    controlRateHz: configuredControlRate(config, manifest),
    horizon: manifest.chunk.horizon,
    injectDelayMs: 0,
    injectJitterMs: 0,
    stallProbability: 0,
    stallSteps: 0,
    maxFrameAgeMs: r.max_frame_age_ms,
    executor: executorSettings(config, limits),
  };
}

/**
 * The clocked execution settings of the parameters (merge mode, injected delay, jitter and camera
 * stalls) for a model of `manifest`'s rate and horizon, or undefined for the plain synchronous
 * loop. Every model family's experiment runs on it.
 */
export function configuredTiming(
  config: VlaConfig,
  manifest: Pick<Manifest, 'control_rate_hz' | 'chunk'>,
  limits: ActionLimits,
): TimingOptions | undefined {
  const r = config.runtime;
  const s = config.sim;
  if (
    r.merge_mode === 'sync' &&
    s.inject_delay_ms === 0 &&
    s.inject_jitter_ms === 0 &&
    s.camera_stall_probability === 0
  )
    return undefined;
  return {
    ...clockedTiming(config, manifest, limits, r.merge_mode),
    injectDelayMs: s.inject_delay_ms,
    injectJitterMs: s.inject_jitter_ms,
    stallProbability: s.camera_stall_probability,
    stallSteps: s.camera_stall_steps,
  };
}

/**
 * The progress line of each episode of a run of `episodes`: its outcome, steps and instruction,
 * and the success so far.
 */
export function episodeProgress(
  episodes: number,
  progress: (line: string) => void,
): (result: EpisodeResult) => void {
  let done = 0;
  let ok = 0;
  return (r) => {
    done++;
    if (r.success) ok++;
    progress(
      `episode ${done}/${episodes} ${r.success ? 'success' : 'FAIL   '} ${r.steps} steps  "${r.instruction}"  (success so far ${ok}/${done})`,
    );
  };
}

/** What a family's experiment sets of a run beyond the parameters (see {@link EpisodeOptions}). */
export type RunSettings = Pick<
  EpisodeOptions,
  'taskKind' | 'timing' | 'limits' | 'observer' | 'paceHz'
>;

/** A finished run: what the episodes gave and how they were executed, for the report. */
export interface ConfiguredRun {
  readonly summary: EpisodesSummary;
  /** Actions executed per chunk (`runtime.execute_steps`, 0 resolved to half the horizon). */
  readonly executeSteps: number;
  /** Whether the episodes ran clocked ({@link RunSettings.timing} was given). */
  readonly timed: boolean;
}

/**
 * Run the parameters' episodes (`sim.*`, `runtime.execute_steps`) with `agent`, whose chunks hold
 * `horizon` actions; a progress line per episode goes to `progress`.
 */
export async function runConfiguredEpisodes(
  agent: Agent,
  config: VlaConfig,
  horizon: number,
  progress: (line: string) => void,
  settings: RunSettings = {},
): Promise<ConfiguredRun> {
  const s = config.sim;
  const executeSteps = syncExecuteSteps(config.runtime.execute_steps, horizon);
  const summary = await runEpisodes(agent, {
    episodes: s.episodes,
    seed: s.seed,
    executeSteps,
    maxSteps: s.max_steps,
    cameraWidth: s.camera_width,
    cameraHeight: s.camera_height,
    ...settings,
    onEpisode: episodeProgress(s.episodes, progress),
  });
  return { summary, executeSteps, timed: settings.timing !== undefined };
}
