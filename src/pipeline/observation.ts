/**
 * The one check of an observation handed to the pipeline's entry points (`infer`, `prepare`,
 * `inferBatch`): every field's type, the state's length, finiteness and distance from the
 * manifest's statistics. Library callers write JavaScript too, so nothing here trusts the types.
 */

import { describe, InputError } from '../errors.js';
import type { Manifest } from '../model/manifest.js';
import type { Observation } from './pipeline.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  if (Array.isArray(value)) return true;
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/**
 * Check a state vector: `names.length` finite numbers, each within `maxDeviation` standard
 * deviations of the manifest's mean (beyond that the policy's output is meaningless, and near
 * 3e37 the normalised value overflows float32 and the actions become NaN).
 *
 * @throws {InputError} with field `state` or `state[i]`.
 */
export function checkState(
  state: unknown,
  stats: Manifest['state'],
  maxDeviation: number,
): asserts state is ArrayLike<number> {
  const n = stats.names.length;
  if (!isArrayLike(state)) {
    throw new InputError(
      `Expected an array of ${n} numbers (${stats.names.join(', ')}) for state but received ${describe(state)}`,
      { field: 'state' },
    );
  }
  if (state.length !== n) {
    throw new InputError(
      `Expected ${n} state values (${stats.names.join(', ')}) but received ${state.length}`,
      { field: 'state' },
    );
  }
  for (let i = 0; i < n; i++) {
    const v = state[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new InputError(`Expected finite state values but state[${i}] is ${describe(v)}`, {
        field: `state[${i}]`,
      });
    }
    const mean = stats.mean[i] as number;
    const std = stats.std[i] as number;
    const z = Math.fround((v - mean) / std);
    if (!Number.isFinite(z) || Math.abs(z) > maxDeviation) {
      throw new InputError(
        `Expected state[${i}] (${stats.names[i] ?? i}) within ${maxDeviation} standard deviations of the manifest's mean ${mean} (std ${std}; ingest.max_state_deviation) but received ${v}`,
        { field: `state[${i}]` },
      );
    }
  }
}

/**
 * Check everything of an observation but the frame's pixels (those are the ingest's): that it is
 * an object, that `frame` is one, `instruction` a string, `state` as {@link checkState}, and the
 * optional `stamp`, `stream` and `keepCount` of the right types.
 *
 * @throws {InputError} naming the field: `observation`, `frame`, `instruction`, `state[i]`, ...
 */
export function checkObservation(
  obs: unknown,
  manifest: Pick<Manifest, 'state'>,
  maxStateDeviation: number,
): asserts obs is Observation {
  if (!isRecord(obs)) {
    throw new InputError(
      `Expected an object with frame, instruction and state for observation but received ${describe(obs)}`,
      { field: 'observation' },
    );
  }
  const { frame, instruction, state, stamp, stream, keepCount } = obs;
  if (!isRecord(frame)) {
    throw new InputError(
      `Expected a frame object ({ kind: 'raw' | 'encoded', ... }) for frame but received ${describe(frame)}`,
      { field: 'frame' },
    );
  }
  if (frame['kind'] !== 'raw' && frame['kind'] !== 'encoded') {
    throw new InputError(
      `Expected raw|encoded for frame.kind but received ${describe(frame['kind'])}`,
      { field: 'frame.kind' },
    );
  }
  if (typeof instruction !== 'string') {
    throw new InputError(
      `Expected a string for instruction but received ${describe(instruction)}`,
      {
        field: 'instruction',
      },
    );
  }
  checkState(state, manifest.state, maxStateDeviation);
  if (stamp !== undefined && (typeof stamp !== 'number' || !Number.isFinite(stamp))) {
    throw new InputError(`Expected a finite number for stamp but received ${describe(stamp)}`, {
      field: 'stamp',
    });
  }
  if (stream !== undefined && typeof stream !== 'string') {
    throw new InputError(`Expected a string for stream but received ${describe(stream)}`, {
      field: 'stream',
    });
  }
  if (keepCount !== undefined && typeof keepCount !== 'number') {
    throw new InputError(`Expected a number for keep_count but received ${describe(keepCount)}`, {
      field: 'keep_count',
    });
  }
}
