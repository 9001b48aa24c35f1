import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { InputError } from '../src/errors.js';
import type { PipelineOptions } from '../src/pipeline/pipeline.js';
import { pythonModulesMissing, TORCH_MODULES } from '../src/bench/torch.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The shipped model package. */
export const TINY_VLA = fileURLToPath(new URL('../models/tiny-vla/', import.meta.url));
/** Real files made by other projects; absent in a user's clone. */
export const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));
export const HAS_FIXTURES = existsSync(FIXTURES);

/** Pipeline options for tests: CPU, one thread each, all tokens, the manifest's limits. */
export function testPipelineOptions(overrides: Partial<PipelineOptions> = {}): PipelineOptions {
  return {
    precision: 'fp32',
    backend: {
      executionProviders: ['cpu'],
      intraOpThreads: 1,
      interOpThreads: 1,
      graphOptimization: 'all',
      tensorrtCachePath: '',
    },
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0, minKeepRatio: 0.1 },
    latencyBudgetMs: 0,
    limits: { min: [], max: [], maxDeltaPerStep: 0 },
    warmupRuns: 1,
    ...overrides,
  };
}

/** The Python the model recipes run with (tests that compare against PyTorch use it). */
export const PYTHON = '/usr/bin/python3';

/**
 * Why PyTorch cannot run here (printed as the skip reason), or undefined when it can: `modules` are
 * what the recipe under test imports.
 */
export function torchMissing(
  modules: readonly string[] = TORCH_MODULES,
): Promise<string | undefined> {
  return pythonModulesMissing(PYTHON, modules);
}

/** The InputError `promise` rejects with; the test fails when it resolves or rejects otherwise. */
export async function inputRefusal(promise: Promise<unknown>): Promise<InputError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  return error as InputError;
}
