/**
 * The node's cameras: which `~/in/<camera>` topics it subscribes, which camera's frames trigger an
 * inference, and, for a package that sees several cameras (a flow package), the latest frame of
 * each other camera with the checks that keep a missing or stale one out of an inference.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePackagePath, type VlaConfig } from '../../config/index.js';
import { ConfigError } from '../../errors.js';
import type { CameraFrame } from '../../pipeline/types.js';
import { FLOW_FORMAT } from '../../model/manifest.js';
import type { RosNodeOptions } from './options.js';
import type { SlotFrame } from './control.js';

/**
 * The camera names a format-2 package declares (the manifest `cameras` of a flow package, or the
 * one camera of an autoregressive package), or undefined for an encoder + policy package, whose
 * camera is `ros.model_camera`. Read synchronously at configure, so the camera topics exist from
 * configure on as for an encoder + policy package; the model load that follows checks the manifest
 * in full (a package it refuses fails the configure with its own error).
 */
export function packageCameraNames(config: Readonly<VlaConfig>): readonly string[] | undefined {
  let raw: unknown;
  try {
    const dir = resolvePackagePath(config.model.path);
    raw = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const m = raw as { format?: unknown; cameras?: unknown } | null;
  if (m?.format !== FLOW_FORMAT || !Array.isArray(m.cameras)) return undefined;
  const names = m.cameras.map((c: unknown) => (c as { name?: unknown } | null)?.name);
  return names.every((n): n is string => typeof n === 'string' && n !== '') ? names : undefined;
}

/** The node's cameras for one configure. */
export interface CameraPlan {
  /** Every camera subscribed on `~/in/<camera>` (or `~/in/<camera>/compressed`). */
  readonly subscribed: readonly string[];
  /** The camera whose new frame triggers an inference, and whose stamp the chunk carries. */
  readonly trigger: string;
  /** The cameras the model sees, in the package's order (one for a one-camera package). */
  readonly inputs: readonly string[];
}

/**
 * The cameras of a configure. An encoder + policy package sees `ros.model_camera` (or the first of
 * `ros.cameras`); the other cameras are subscribed and counted only. A package that names its
 * cameras (flow: several, autoregressive: one) sees all of them: `ros.cameras` naming none of them (the parameter file's `[image]`)
 * means the package's camera names; one naming some must name all (extra names are subscribed and
 * counted only); `ros.model_camera` (default: the package's first camera) picks the camera whose
 * frames trigger the inferences.
 *
 * @throws {ConfigError} naming `ros.cameras` or `ros.model_camera` when they do not fit the package.
 */
export function cameraPlan(o: RosNodeOptions, packageCameras?: readonly string[]): CameraPlan {
  if (packageCameras === undefined || packageCameras.length === 0) {
    const trigger = o.modelCamera === '' ? (o.cameras[0] ?? 'image') : o.modelCamera;
    return { subscribed: o.cameras, trigger, inputs: [trigger] };
  }
  const named = o.cameras.filter((c) => packageCameras.includes(c));
  let subscribed: readonly string[];
  if (named.length === 0) {
    subscribed = packageCameras;
  } else {
    const missing = packageCameras.filter((c) => !o.cameras.includes(c));
    if (missing.length > 0) {
      throw new ConfigError(
        `Expected ros.cameras to name every camera of the model (${packageCameras.join(', ')}), or none of them for all of them, but received [${o.cameras.join(', ')}] without ${missing.join(', ')}`,
        { field: 'ros.cameras' },
      );
    }
    subscribed = o.cameras;
  }
  if (o.modelCamera !== '' && !packageCameras.includes(o.modelCamera)) {
    throw new ConfigError(
      `Expected ros.model_camera to be one of the model's cameras (${packageCameras.join(', ')}) or empty but received "${o.modelCamera}"`,
      { field: 'ros.model_camera' },
    );
  }
  const trigger = o.modelCamera === '' ? (packageCameras[0] as string) : o.modelCamera;
  return { subscribed, trigger, inputs: packageCameras };
}

/** Per-camera counters, shown in the diagnostics. */
export interface CameraCounts {
  /** Messages that arrived on the camera's topic, bad ones included. */
  received: number;
  /** Messages dropped as unusable (encoding, size, compressed data). */
  bad: number;
  /** Inferences held because this camera had sent no frame yet. */
  heldMissing: number;
  /** Inferences held because this camera's latest frame was older than `runtime.max_frame_age_ms`. */
  heldStale: number;
}

/** Why an inference is held: the first camera without a usable frame. */
export interface CameraHold {
  readonly camera: string;
  readonly reason: string;
}

/**
 * The latest frame of each camera the model sees besides the trigger camera (whose frames wait in
 * the node's latest-frame slot), with the arrival time its age is measured from, and the
 * per-camera counters of every subscribed camera.
 */
export class CameraFrames {
  readonly plan: CameraPlan;
  readonly #maxAgeMs: number;
  readonly #latest = new Map<string, { slot: SlotFrame; arrivedMs: number }>();
  readonly #counts = new Map<string, CameraCounts>();
  /** Why the last inference the control loop wanted was held (cleared when one runs). */
  hold: CameraHold | undefined;

  constructor(plan: CameraPlan, maxAgeMs: number) {
    this.plan = plan;
    this.#maxAgeMs = maxAgeMs;
    for (const c of plan.subscribed) {
      this.#counts.set(c, { received: 0, bad: 0, heldMissing: 0, heldStale: 0 });
    }
  }

  /** The counters of every subscribed camera, in the order they are subscribed. */
  get counts(): ReadonlyMap<string, Readonly<CameraCounts>> {
    return this.#counts;
  }

  #count(camera: string): CameraCounts {
    let c = this.#counts.get(camera);
    if (c === undefined) {
      c = { received: 0, bad: 0, heldMissing: 0, heldStale: 0 };
      this.#counts.set(camera, c);
    }
    return c;
  }

  /** A message arrived on the camera's topic; `bad` when it was dropped. */
  received(camera: string, bad: boolean): void {
    const c = this.#count(camera);
    c.received++;
    if (bad) c.bad++;
  }

  /** Whether the camera's frames are kept here (a camera the model sees, not the trigger). */
  keeps(camera: string): boolean {
    return camera !== this.plan.trigger && this.plan.inputs.includes(camera);
  }

  /** Keep the camera's frame as its latest. */
  put(camera: string, slot: SlotFrame, nowMs: number): void {
    this.#latest.set(camera, { slot, arrivedMs: nowMs });
  }

  /**
   * Whether every other camera the model sees has a frame no older than the maximum age at
   * `nowMs`; the first one that does not is counted and kept as {@link hold}.
   */
  ready(nowMs: number): boolean {
    for (const camera of this.plan.inputs) {
      if (camera === this.plan.trigger) continue;
      const latest = this.#latest.get(camera);
      if (latest === undefined) {
        this.#count(camera).heldMissing++;
        this.hold = { camera, reason: `camera ${camera} has sent no frame yet` };
        return false;
      }
      const age = nowMs - latest.arrivedMs;
      if (this.#maxAgeMs > 0 && age > this.#maxAgeMs) {
        this.#count(camera).heldStale++;
        this.hold = {
          camera,
          reason: `camera ${camera}'s latest frame is ${age.toFixed(0)} ms old (runtime.max_frame_age_ms ${this.#maxAgeMs})`,
        };
        return false;
      }
    }
    return true;
  }

  /**
   * The frames of one inference, in the package's camera order: the trigger camera's `trigger`
   * and each other camera's latest (call after {@link ready} said yes).
   */
  frames(trigger: SlotFrame): CameraFrame[] {
    this.hold = undefined;
    return this.plan.inputs.map((camera) => ({
      camera,
      frame:
        camera === this.plan.trigger
          ? trigger.frame
          : (this.#latest.get(camera) as { slot: SlotFrame }).slot.frame,
    }));
  }
}
