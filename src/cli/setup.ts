import { loadConfig, parseOverride, type VlaConfig } from '../config/index.js';
import type { OptionSpec, OptionValues } from './command.js';

/** Options every command that loads the configuration shares. */
export const CONFIG_OPTIONS = {
  params: { type: 'string', help: 'parameter file (default: config/vla_node.param.yaml)' },
  set: {
    type: 'string',
    multiple: true,
    help: 'override one parameter, e.g. --set pruning.keep_ratio=0.5',
  },
} as const satisfies Record<string, OptionSpec>;

/** Flags that set a model, backend or pruning parameter, flag → dotted key (shared by commands). */
export const MODEL_FLAG_KEYS = {
  precision: 'model.precision',
  model: 'model.path',
  strategy: 'pruning.strategy',
  'keep-ratio': 'pruning.keep_ratio',
  'keep-count': 'pruning.keep_count',
  providers: 'backend.execution_providers',
  'latency-budget-ms': 'runtime.latency_budget_ms',
} as const;

export const MODEL_OPTIONS = {
  precision: { type: 'string', help: 'fp32|fp16|int8|auto (model.precision)' },
  model: { type: 'string', help: 'model package folder (model.path)' },
  strategy: { type: 'string', help: 'visual-token pruning strategy (pruning.strategy)' },
  'keep-ratio': { type: 'string', help: 'fraction of visual tokens kept (pruning.keep_ratio)' },
  'keep-count': {
    type: 'string',
    help: 'number of visual tokens kept, overrides the ratio (pruning.keep_count)',
  },
  providers: {
    type: 'string',
    help: 'execution providers in order, e.g. "[cuda, cpu]" (backend.execution_providers)',
  },
  'latency-budget-ms': {
    type: 'string',
    help: 'p95 latency budget; adapts the keep ratio (runtime.latency_budget_ms)',
  },
} as const satisfies Record<string, OptionSpec>;

/**
 * Load the parameter file with `--set` overrides plus the command's own flags (mapped to dotted
 * keys by `flags`: flag name → key; a flag left out keeps the file's value).
 */
export async function configFromArgs(
  values: OptionValues,
  flags: Readonly<Record<string, string>> = {},
): Promise<Readonly<VlaConfig>> {
  const overrides: Record<string, unknown> = {};
  const sets = values.set;
  for (const text of Array.isArray(sets) ? sets : []) {
    const [key, value] = parseOverride(text);
    overrides[key] = value;
  }
  for (const [flag, key] of Object.entries(flags)) {
    const v = values[flag];
    if (typeof v === 'string') overrides[key] = parseOverride(`${key}=${v}`)[1];
  }
  const params = values.params;
  return loadConfig({ ...(typeof params === 'string' ? { file: params } : {}), overrides });
}

export { modelFromConfig, pipelineOptions } from '../pipeline/from-config.js';
