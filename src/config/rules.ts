/**
 * Rules between parameters, which a JSON Schema cannot express: limits ordered, ratios ordered,
 * and (once the model is known) limits, steps and poses that fit the model. The schema checks each
 * key alone first; these run on a configuration that passed it.
 */
import { ConfigError } from '../errors.js';
import type { Manifest } from '../model/manifest.js';
import {
  resolveLimits,
  type ActionLimits,
  type ActionSpace,
  type LimitsRequest,
} from '../runtime/safety.js';
import type { VlaConfig } from './config.js';

/** One broken rule: the key it is about and the sentence that says what was expected. */
export interface RuleProblem {
  readonly field: string;
  readonly message: string;
}

/** The rules that need only the parameters; an empty list when they all hold. */
export function crossKeyProblems(config: VlaConfig): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const { action_min: min, action_max: max, safe_action, safe_pose } = config.safety;
  if (min.length !== max.length) {
    problems.push({
      field: 'safety.action_max',
      message: `Expected safety.action_max to have as many values as safety.action_min (${min.length}) but received ${max.length}`,
    });
  } else {
    for (let d = 0; d < min.length; d++) {
      const lo = min[d] as number;
      const hi = max[d] as number;
      if (!(lo < hi)) {
        problems.push({
          field: `safety.action_min[${d}]`,
          message: `Expected safety.action_min[${d}] below safety.action_max[${d}] (${hi}) but received ${lo}${lo === hi ? ' (equal limits leave no room to move)' : ''}`,
        });
      }
    }
  }
  if (safe_action === 'safe_pose' && safe_pose.length === 0) {
    problems.push({
      field: 'safety.safe_pose',
      message:
        'Expected one value per action dimension for safety.safe_pose (safe_action is safe_pose) but received an empty list',
    });
  }
  // The latency-budget controller moves the ratio down from keep_ratio to min_keep_ratio; without
  // it min_keep_ratio is unused, and a low keep_ratio alone (e.g. 0.05) is a valid choice.
  const { keep_ratio, min_keep_ratio, strategy } = config.pruning;
  const controlled = config.runtime.latency_budget_ms > 0 && strategy !== 'none';
  if (controlled && min_keep_ratio > keep_ratio) {
    problems.push({
      field: 'pruning.min_keep_ratio',
      message: `Expected pruning.min_keep_ratio at most pruning.keep_ratio (${keep_ratio}) with runtime.latency_budget_ms on but received ${min_keep_ratio}`,
    });
  }
  return problems;
}

/**
 * Check a validated configuration against the model it will run: the safety limits (one per
 * action dimension, inside the manifest's unless `safety.allow_limits_beyond_model`), the safe
 * pose (one per dimension, inside the limits) and `runtime.execute_steps` (at most the horizon).
 *
 * @throws {ConfigError} naming the first key that does not fit.
 */
export function checkConfigForModel(config: VlaConfig, manifest: Manifest): void {
  const s = config.safety;
  const limits = configuredLimits(config, manifest);
  const horizon = manifest.chunk.horizon;
  if (config.runtime.execute_steps > horizon) {
    throw new ConfigError(
      `Expected runtime.execute_steps at most the chunk horizon of ${manifest.name} (${horizon}; 0 = half of it) but received ${config.runtime.execute_steps}`,
      { field: 'runtime.execute_steps' },
    );
  }
  if (s.safe_action !== 'safe_pose' && s.safe_pose.length === 0) return;
  const dim = manifest.chunk.action_dim;
  if (s.safe_pose.length !== dim) {
    throw new ConfigError(
      `Expected ${dim} values (${manifest.action.names.join(', ')}) for safety.safe_pose but received ${s.safe_pose.length}`,
      { field: 'safety.safe_pose' },
    );
  }
  for (let d = 0; d < dim; d++) {
    const v = s.safe_pose[d] as number;
    const lo = limits.min[d] as number;
    const hi = limits.max[d] as number;
    if (v < lo || v > hi) {
      throw new ConfigError(
        `Expected safety.safe_pose[${d}] (${manifest.action.names[d] ?? d}) in the action limits [${lo}, ${hi}] but received ${v}`,
        { field: `safety.safe_pose[${d}]` },
      );
    }
  }
}

/** The `safety.*` limits as every family's runtime takes them, before they meet a manifest. */
export function limitsRequest(config: VlaConfig): LimitsRequest {
  return {
    min: config.safety.action_min,
    max: config.safety.action_max,
    maxDeltaPerStep: config.safety.max_delta_per_step,
    allowBeyondModel: config.safety.allow_limits_beyond_model,
  };
}

/**
 * The action limits the parameters give for a model of `space`, as every runtime built from them
 * enforces them.
 *
 * @throws {ConfigError} (from resolveLimits) naming the `safety.*` key that does not fit the model.
 */
export function configuredLimits(config: VlaConfig, space: ActionSpace): ActionLimits {
  return resolveLimits(space, limitsRequest(config));
}

/**
 * The control rate a configured rate gives for a model: `configured` when positive, else the
 * model's own (`runtime.control_rate_hz` = 0 or absent).
 */
export function controlRate(configured: number | undefined, modelRateHz: number): number {
  return configured !== undefined && configured > 0 ? configured : modelRateHz;
}

/** The control rate the parameters give for a model (see {@link controlRate}). */
export function configuredControlRate(
  config: VlaConfig,
  manifest: { readonly control_rate_hz: number },
): number {
  return controlRate(config.runtime.control_rate_hz, manifest.control_rate_hz);
}
