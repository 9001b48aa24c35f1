/**
 * The checks of an observation handed to the autoregressive pipeline: VlaPipeline's (frame,
 * instruction, state, stamp, stream, keep_count), its image matched to the package's camera, and
 * its own token budget.
 */

import { InputError } from '../../errors.js';
import { cameraList, matchCameras } from '../../flow/cameras.js';
import type { Frame } from '../../ingest/index.js';
import type { ArManifest } from '../../model/ar-manifest.js';
import type { FlowCamera } from '../../model/flow-manifest.js';
import { checkObservation } from '../../pipeline/observation.js';
import type { CameraFrame, Observation } from '../../pipeline/types.js';
import { tokenBudget } from '../../pruning/pruner.js';

/** An observation after its checks: the camera's frame and its own token budget, if any. */
export interface CheckedObservation {
  readonly frame: Frame;
  readonly budget: number | undefined;
}

/** What an observation is checked against. */
export interface ArObservationBounds {
  readonly manifest: ArManifest;
  /** The package's cameras (one): `cameras[i].camera` must name it, or be absent. */
  readonly cameras: readonly FlowCamera[];
  /** Visual tokens before pruning: `keep_count` must be in [1, totalTokens]. */
  readonly totalTokens: number;
  /** `ingest.max_state_deviation`. */
  readonly maxStateDeviation: number;
}

/**
 * Check `obs` and pick its camera's frame (`obs.frame`, or the entry of `obs.cameras` that names
 * the package's camera or names none).
 *
 * @throws {InputError} naming the field: `observation`, `frame…`, `cameras`, `images[i]`,
 *   `images[i].camera`, `instruction`, `state[i]`, `stamp`, `stream`, `keep_count`.
 */
export function checkArObservation(
  obs: Observation,
  bounds: ArObservationBounds,
): CheckedObservation {
  checkObservation(obs, bounds.manifest, bounds.maxStateDeviation);
  let frame = obs.frame;
  if (obs.cameras !== undefined) {
    const list = cameraList(obs.cameras, frame);
    const [index] = matchCameras(
      bounds.cameras.map((c) => c.name),
      list.map((c) => c.camera),
    );
    frame = (list[index as number] as CameraFrame).frame;
  }
  if (obs.keepCount === undefined) return { frame, budget: undefined };
  const total = bounds.totalTokens;
  const k = obs.keepCount;
  if (!Number.isInteger(k) || k < 1 || k > total) {
    throw new InputError(
      `Expected keep_count in [1, ${total}] (the model has ${total} visual tokens) but received ${k}`,
      { field: 'keep_count' },
    );
  }
  return { frame, budget: tokenBudget(total, 1, k) };
}
