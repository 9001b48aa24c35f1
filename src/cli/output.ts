/**
 * The output-path rule every writing command shares: outputs are checked against the command's
 * inputs before any work starts, and an existing file is replaced only with `--force`.
 */

import { guardOutputs, type InputPath, type OutputPath } from '../util/paths.js';
import type { OptionSpec, OptionValues } from './command.js';

/** `--force`: the only way to replace an existing output file. */
export const FORCE_OPTION = {
  force: {
    type: 'boolean',
    default: false,
    help: 'overwrite existing output files (an input, a bag folder or model package it reads is never written)',
  },
} as const satisfies Record<string, OptionSpec>;

/** The parameter file named by `--params`, as an input. */
export function paramsInput(values: OptionValues): InputPath[] {
  return typeof values.params === 'string' ? [{ what: '--params', path: values.params }] : [];
}

/**
 * Refuse outputs that are inputs, lie inside an input bag folder or model package, or exist
 * without `--force` (a `ConfigError` naming the option).
 */
export async function checkOutputs(
  values: OptionValues,
  outputs: readonly OutputPath[],
  inputs: readonly InputPath[],
): Promise<void> {
  await guardOutputs(outputs, [...inputs, ...paramsInput(values)], {
    force: values.force === true,
  });
}
