import { ConfigError } from '../errors.js';
import { resolvePackagePath } from '../config/index.js';
import { isArPackage } from '../model/ar-manifest.js';
import { isFlowPackage } from '../model/flow-manifest.js';
import { AGENTS, type AgentName } from '../sim/configured-run.js';
import { simulate } from '../sim/experiment.js';
import { formatReport } from '../sim/report.js';
import { TASK_KINDS, type TaskKind } from '../sim/world.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { formatArReport, simulateAr } from './sim-ar.js';
import { simulateFlow } from './sim-flow.js';
import { FOXGLOVE_OPTIONS, startLiveView, withFoxgloveFlag } from './foxglove.js';
import { CONFIG_OPTIONS, configFromArgs, MODEL_FLAG_KEYS, MODEL_OPTIONS } from './setup.js';

/** Flags of `sim` that set a parameter, flag → dotted key. */
const FLAG_KEYS = {
  ...MODEL_FLAG_KEYS,
  episodes: 'sim.episodes',
  seed: 'sim.seed',
  'execute-steps': 'runtime.execute_steps',
  'merge-mode': 'runtime.merge_mode',
  'delay-ms': 'sim.inject_delay_ms',
  'jitter-ms': 'sim.inject_jitter_ms',
  'stall-probability': 'sim.camera_stall_probability',
  'stall-steps': 'sim.camera_stall_steps',
} as const;

function agentOf(values: OptionValues): AgentName {
  const a = values.agent ?? 'model';
  if (!AGENTS.includes(a as AgentName)) {
    throw new ConfigError(
      `Expected --agent ${AGENTS.join('|')} but received ${JSON.stringify(a)}`,
      { field: 'agent' },
    );
  }
  return a as AgentName;
}

function taskOf(values: OptionValues): TaskKind | undefined {
  const t = values.task;
  if (t === undefined) return undefined;
  if (!TASK_KINDS.includes(t as TaskKind)) {
    throw new ConfigError(
      `Expected --task ${TASK_KINDS.join('|')} but received ${JSON.stringify(t)}`,
      { field: 'task' },
    );
  }
  return t as TaskKind;
}

export async function runSim(values: OptionValues, io: CommandIo): Promise<number> {
  const config = await configFromArgs(withFoxgloveFlag(values), FLAG_KEYS);
  // Flow-matching packages (format vla-node/model@2) run on their own runtime (src/flow).
  if (await isFlowPackage(resolvePackagePath(config.model.path))) {
    const flow = await simulateFlow(
      config,
      agentOf(values),
      (line) => {
        io.progress(line);
      },
      taskOf(values),
    );
    io.result(flow, formatReport(flow));
    return 0;
  }
  // Autoregressive packages (format vla-node/model@2, family autoregressive) run through ArPipeline.
  if (await isArPackage(resolvePackagePath(config.model.path))) {
    if (config.foxglove.enabled) {
      throw new ConfigError(
        'Expected foxglove.enabled false with an autoregressive package: the live view runs the encoder + policy pipeline only',
        { field: 'foxglove.enabled' },
      );
    }
    const ar = await simulateAr(
      config,
      agentOf(values),
      (line) => {
        io.progress(line);
      },
      taskOf(values),
    );
    io.result(ar, formatArReport(ar));
    return 0;
  }
  const report = await simulate(
    config,
    agentOf(values),
    (line) => {
      io.progress(line);
    },
    taskOf(values),
    (manifest, overlay) => startLiveView(config, io, manifest, overlay),
  );
  io.result(report, formatReport(report));
  return 0;
}

export const simCommand: CommandSpec = {
  name: 'sim',
  summary:
    'run closed-loop episodes of the built-in tabletop simulator with the model (or a baseline agent)',
  options: {
    episodes: { type: 'string', help: 'number of episodes (sim.episodes)' },
    seed: { type: 'string', help: 'seed of the episode sequence (sim.seed)' },
    ...MODEL_OPTIONS,
    'execute-steps': {
      type: 'string',
      help: 'actions executed per chunk before re-querying (runtime.execute_steps)',
    },
    'merge-mode': { type: 'string', help: 'sync|replace|ensemble|rtc (runtime.merge_mode)' },
    'delay-ms': {
      type: 'string',
      help: 'injected extra inference delay in ms (sim.inject_delay_ms)',
    },
    'jitter-ms': {
      type: 'string',
      help: 'uniform jitter of the injected delay in ms (sim.inject_jitter_ms)',
    },
    'stall-probability': {
      type: 'string',
      help: 'per-step probability of a camera stall (sim.camera_stall_probability)',
    },
    'stall-steps': {
      type: 'string',
      help: 'length of a camera stall in steps (sim.camera_stall_steps)',
    },
    agent: {
      type: 'string',
      default: 'model',
      help: 'model|expert|blind (blind: nearest block, ignores language)',
    },
    task: { type: 'string', help: 'only this task form: reach|relation' },
    ...FOXGLOVE_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  run: runSim,
};
