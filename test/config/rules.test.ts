import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkConfigForModel,
  configuredControlRate,
  controlRate,
  loadConfig,
  type VlaConfig,
} from '../../src/config/index.js';
import { ConfigError } from '../../src/errors.js';
import { loadModelPackage, type Manifest } from '../../src/model/manifest.js';
import { modelFromConfig } from '../../src/cli/setup.js';
import { TINY_VLA } from '../helpers.js';

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function thrown(fn: () => void): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('rules between parameters', () => {
  it.each<{ name: string; overrides: Record<string, unknown>; field: string; text: string }>([
    {
      name: 'inverted limits',
      overrides: { 'safety.action_min': [0.8, 0], 'safety.action_max': [0.2, 1] },
      field: 'safety.action_min[0]',
      text: 'Expected safety.action_min[0] below safety.action_max[0] (0.2) but received 0.8',
    },
    {
      name: 'equal limits',
      overrides: { 'safety.action_min': [0, 0.5], 'safety.action_max': [1, 0.5] },
      field: 'safety.action_min[1]',
      text: 'equal limits leave no room to move',
    },
    {
      name: 'limits of different lengths',
      overrides: { 'safety.action_min': [0, 0], 'safety.action_max': [1] },
      field: 'safety.action_max',
      text: 'Expected safety.action_max to have as many values as safety.action_min (2) but received 1',
    },
    {
      name: 'min_keep_ratio above keep_ratio',
      overrides: {
        'pruning.strategy': 'saliency',
        'runtime.latency_budget_ms': 20,
        'pruning.keep_ratio': 0.3,
        'pruning.min_keep_ratio': 0.5,
      },
      field: 'pruning.min_keep_ratio',
      text: 'Expected pruning.min_keep_ratio at most pruning.keep_ratio (0.3) with runtime.latency_budget_ms on but received 0.5',
    },
    {
      name: 'safe_pose without a pose',
      overrides: { 'safety.safe_action': 'safe_pose' },
      field: 'safety.safe_pose',
      text: 'Expected one value per action dimension for safety.safe_pose',
    },
  ])('refuses $name when the parameters are loaded', async ({ overrides, field, text }) => {
    const error = await rejection(loadConfig({ overrides }));
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.field).toBe(field);
    expect(error.message).toContain(text);
  });

  it('accepts ordered limits and ratios, and min_keep_ratio equal to keep_ratio', async () => {
    const config = await loadConfig({
      overrides: {
        'safety.action_min': [0.1, 0.1],
        'safety.action_max': [0.9, 0.9],
        'pruning.keep_ratio': 0.5,
        'pruning.min_keep_ratio': 0.5,
      },
    });
    expect(config.safety.action_min).toEqual([0.1, 0.1]);
  });

  it('accepts a keep_ratio below min_keep_ratio when no latency budget uses the minimum', async () => {
    const config = await loadConfig({
      overrides: { 'pruning.strategy': 'saliency', 'pruning.keep_ratio': 0.05 },
    });
    expect(config.pruning.keep_ratio).toBe(0.05);
  });
});

describe('parameters against the model', () => {
  let manifest: Manifest;
  let base: Readonly<VlaConfig>;
  beforeAll(async () => {
    manifest = (await loadModelPackage(TINY_VLA)).manifest;
    base = await loadConfig({ overrides: { 'model.path': TINY_VLA } });
  });
  const config = (overrides: Record<string, unknown>) =>
    loadConfig({ overrides: { 'model.path': TINY_VLA, ...overrides } });

  it('accepts the shipped parameters', () => {
    expect(() => {
      checkConfigForModel(base, manifest);
    }).not.toThrow();
  });

  it('refuses limits wider than the manifest unless explicitly allowed', async () => {
    const wide = { 'safety.action_min': [-1000, 0], 'safety.action_max': [1000, 1] };
    const c = await config(wide);
    const error = thrown(() => {
      checkConfigForModel(c, manifest);
    });
    expect(error.field).toBe('safety.action_min[0]');
    expect(error.message).toContain(
      'Expected safety.action_min[0] (x) inside the action limits of tiny-vla [0, 1] (or safety.allow_limits_beyond_model: true) but received -1000',
    );
    const high = thrown(() => {
      checkConfigForModel(
        { ...c, safety: { ...c.safety, action_min: [0, 0], action_max: [1, 1.5] } },
        manifest,
      );
    });
    expect(high.field).toBe('safety.action_max[1]');
    const allowed = await config({ ...wide, 'safety.allow_limits_beyond_model': true });
    expect(() => {
      checkConfigForModel(allowed, manifest);
    }).not.toThrow();
  });

  it('refuses limits with the wrong number of dimensions', async () => {
    const c = await config({ 'safety.action_min': [0], 'safety.action_max': [1] });
    const error = thrown(() => {
      checkConfigForModel(c, manifest);
    });
    expect(error.field).toBe('safety.action_min');
    expect(error.message).toContain('Expected 2 values (one per action dimension: x, y)');
  });

  it('refuses execute_steps beyond the horizon instead of clamping it', () => {
    const error = thrown(() => {
      checkConfigForModel({ ...base, runtime: { ...base.runtime, execute_steps: 9 } }, manifest);
    });
    expect(error.field).toBe('runtime.execute_steps');
    expect(error.message).toContain(
      'Expected runtime.execute_steps at most the chunk horizon of tiny-vla (8; 0 = half of it) but received 9',
    );
    expect(() => {
      checkConfigForModel({ ...base, runtime: { ...base.runtime, execute_steps: 8 } }, manifest);
    }).not.toThrow();
  });

  it.each([
    { pose: [0.5], field: 'safety.safe_pose', text: 'Expected 2 values (x, y)' },
    { pose: [0.5, 1.5], field: 'safety.safe_pose[1]', text: 'in the action limits [0, 1]' },
  ])('refuses the safe pose $pose', async ({ pose, field, text }) => {
    const c = await config({ 'safety.safe_action': 'safe_pose', 'safety.safe_pose': pose });
    const error = thrown(() => {
      checkConfigForModel(c, manifest);
    });
    expect(error.field).toBe(field);
    expect(error.message).toContain(text);
  });

  it('is checked wherever a command loads the model (modelFromConfig)', async () => {
    const c = await config({ 'runtime.execute_steps': 20 });
    const error = await rejection(modelFromConfig(c));
    expect(error.field).toBe('runtime.execute_steps');
    await expect(modelFromConfig(base)).resolves.toBeDefined();
  });
});

describe('the configured control rate', () => {
  it("is runtime.control_rate_hz, or the model's when that is 0", async () => {
    const model = { control_rate_hz: 12.5 };
    const own = await loadConfig({ overrides: { 'runtime.control_rate_hz': 20 } });
    const unset = await loadConfig({ overrides: { 'runtime.control_rate_hz': 0 } });
    expect(configuredControlRate(own, model)).toBe(20);
    expect(configuredControlRate(unset, model)).toBe(12.5);
    // A library caller's option may be absent altogether.
    expect(controlRate(undefined, 12.5)).toBe(12.5);
    expect(controlRate(20, 12.5)).toBe(20);
  });
});
