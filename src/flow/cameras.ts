/**
 * Which image of a request is which camera of a several-camera model. Shared by the flow pipeline
 * (library callers) and the bridge's admission check, so a request is refused with the same field
 * and message wherever it arrives.
 */

import { describe, InputError } from '../errors.js';
import type { Frame, FrameIngest, RawFrame } from '../ingest/index.js';
import type { CameraFrame } from '../pipeline/types.js';

/**
 * The request's index of each camera the model names, in the model's camera order.
 *
 * Images named by their `camera` are matched by name: every image must then be named, each name
 * must be one of the model's, once, and every camera of the model must be present. Images named
 * by none are taken in the model's camera order and must be exactly as many as its cameras.
 *
 * @param expected - the model's camera names, in its order.
 * @param given - each image's camera name (undefined: unnamed), in the request's order.
 * @throws {InputError} naming the field at fault: `images` (a camera missing, or the wrong number
 *   of unnamed images) or `images[i].camera` (an unknown, repeated or missing name).
 */
export function matchCameras(
  expected: readonly string[],
  given: readonly (string | undefined)[],
): number[] {
  const list = expected.join(', ');
  const named = given.findIndex((name) => name !== undefined);
  if (named < 0) {
    if (given.length !== expected.length) {
      throw new InputError(
        `Expected ${expected.length} image${expected.length === 1 ? '' : 's'}, one per camera of the model in this order: ${list} (or each named by its camera field) but received ${given.length}`,
        { field: 'images' },
      );
    }
    return expected.map((_, i) => i);
  }
  const at = new Map<string, number>();
  given.forEach((name, i) => {
    const field = `images[${i}].camera`;
    if (name === undefined) {
      throw new InputError(
        `Expected a camera name (${expected.join('|')}) for ${field}, as images[${named}] is named, but received none`,
        { field },
      );
    }
    if (!expected.includes(name)) {
      throw new InputError(
        `Expected one of the model's cameras (${expected.join('|')}) for ${field} but received ${JSON.stringify(name)}`,
        { field },
      );
    }
    const first = at.get(name);
    if (first !== undefined) {
      throw new InputError(
        `Expected each camera once but ${field} repeats ${JSON.stringify(name)} of images[${first}].camera`,
        { field },
      );
    }
    at.set(name, i);
  });
  return expected.map((name) => {
    const i = at.get(name);
    if (i === undefined) {
      throw new InputError(
        `Expected an image for camera ${JSON.stringify(name)} (the model takes ${list}) but received none (cameras given: ${given.join(', ')})`,
        { field: 'images' },
      );
    }
    return i;
  });
}

/**
 * An observation's images as `{ camera, frame }`, checked: `cameras` when given, else `frame`.
 *
 * @throws {InputError} with field `cameras` (not an array), `images[i]` (an entry without a frame)
 *   or `images[i].camera` (a name that is not a string).
 */
export function cameraList(cameras: unknown, frame: Frame): readonly CameraFrame[] {
  if (cameras === undefined) return [{ frame }];
  if (!Array.isArray(cameras)) {
    throw new InputError(
      `Expected an array of { camera, frame } for cameras but received ${describe(cameras)}`,
      { field: 'cameras' },
    );
  }
  return cameras.map((entry: unknown, i) => {
    const e = entry as Partial<Record<'camera' | 'frame', unknown>> | null;
    if (typeof e !== 'object' || e === null || typeof e.frame !== 'object' || e.frame === null) {
      throw new InputError(
        `Expected { camera, frame } for cameras[${i}] but received ${describe(entry)}`,
        { field: `images[${i}]` },
      );
    }
    if (e.camera !== undefined && typeof e.camera !== 'string') {
      throw new InputError(
        `Expected a string for images[${i}].camera but received ${describe(e.camera)}`,
        { field: `images[${i}].camera` },
      );
    }
    return e as CameraFrame;
  });
}

/**
 * Whether every camera takes the same image (size, resize mode, normalisation): their raw frames
 * can then go through one ingest in one native call.
 */
export function sameImageSpec(cameras: readonly { readonly image: unknown }[]): boolean {
  const first = JSON.stringify(cameras[0]?.image);
  return cameras.every((c) => JSON.stringify(c.image) === first);
}

/**
 * Every camera's frame to RGB8 at its model size, one settled result per camera (`ingest[c]` is
 * camera c's). When the cameras share one image spec (`sameSpec`, see {@link sameImageSpec}) and
 * every frame is raw: one native call that splits their rows across threads, into `into[c]` when
 * given. Otherwise each camera's own ingest on libuv's pool, in parallel; there a missing or
 * malformed frame is refused by the ingest's checks, naming its field.
 */
export async function camerasToRgb(
  ingest: readonly FrameIngest[],
  sameSpec: boolean,
  frames: readonly Frame[],
  into?: readonly Uint8Array[],
): Promise<PromiseSettledResult<Uint8Array>[]> {
  if (sameSpec && frames.every((f) => (f as Partial<Frame> | null)?.kind === 'raw')) {
    return (ingest[0] as FrameIngest).rawToRgbMany(frames as RawFrame[], into);
  }
  return Promise.allSettled(frames.map((f, c) => (ingest[c] as FrameIngest).toRgbAsync(f)));
}
