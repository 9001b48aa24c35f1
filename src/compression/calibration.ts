import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, InputError, printable } from '../errors.js';
import { FrameIngest, type Frame } from '../ingest/index.js';
import { PACKAGE_LIMITS, packageFile } from '../model/files.js';
import type { ModelPackage } from '../model/manifest.js';
import type { FlowPackage } from '../model/flow-manifest.js';

/** One calibration observation: a camera frame, the instruction and the robot state (manifest units). */
export interface CalibrationSample {
  /** The first camera's frame (the only one of a one-camera model). */
  readonly frame: Frame;
  /**
   * Frames of further cameras by camera name (a two-camera flow package's `wrist`); a name listed
   * here takes precedence over `frame` for that camera.
   */
  readonly images?: Readonly<Record<string, Frame>>;
  readonly instruction: string;
  readonly state: readonly number[];
}

/** One entry of `frames.json`: `images` (camera name → path) only in sets with several cameras. */
export interface CalibrationEntry {
  image: string;
  images?: Record<string, string>;
  instruction: string;
  state: number[];
}

/** `frames.json` of a calibration set (format `vla-node/calibration@1`). */
export interface CalibrationIndex {
  readonly format: 'vla-node/calibration@1';
  readonly source: string;
  readonly frames: readonly CalibrationEntry[];
}

/** Camera names that may become folder names of a set (`frames/<camera>/NNNN.png`). */
const CAMERA_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

async function writePng(frame: Frame, path: string): Promise<void> {
  if (frame.kind !== 'raw') throw new InputError('Expected raw frames', { field: 'frame' });
  await sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .png()
    .toFile(path);
}

/**
 * Write samples as a calibration set: `frames/NNNN.png` (the first camera) plus `frames.json`;
 * further cameras' frames go to `frames/<camera>/NNNN.png`, listed under the entry's `images`.
 */
export async function writeCalibrationSet(
  dir: string,
  samples: readonly CalibrationSample[],
  source: string,
): Promise<void> {
  await mkdir(join(dir, 'frames'), { recursive: true });
  const frames: CalibrationEntry[] = [];
  for (const [i, s] of samples.entries()) {
    const file = `${String(i).padStart(4, '0')}.png`;
    const image = `frames/${file}`;
    await writePng(s.frame, join(dir, image));
    const images: Record<string, string> = {};
    for (const [camera, frame] of Object.entries(s.images ?? {})) {
      if (!CAMERA_NAME.test(camera)) {
        throw new InputError(
          `Expected a camera name of letters, digits, _ and - but received ${JSON.stringify(camera)}`,
          { field: 'camera' },
        );
      }
      await mkdir(join(dir, 'frames', camera), { recursive: true });
      const path = `frames/${camera}/${file}`;
      await writePng(frame, join(dir, path));
      images[camera] = path;
    }
    frames.push({
      image,
      ...(Object.keys(images).length > 0 ? { images } : {}),
      instruction: s.instruction,
      state: [...s.state],
    });
  }
  const index: CalibrationIndex = { format: 'vla-node/calibration@1', source, frames };
  const tmp = join(dir, `frames.json.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(index, null, 2)}\n`);
  await rename(tmp, join(dir, 'frames.json'));
}

/**
 * `path` inside the calibration set folder `dir`: relative, not leaving the folder (after `..` and
 * symlinks), a regular file of at most 64 MiB; else an InputError naming `field`.
 */
function inSet(dir: string, path: string, field: string): string {
  try {
    return packageFile(dir, path, field, { maxBytes: PACKAGE_LIMITS.jsonBytes });
  } catch (cause) {
    const why = cause instanceof Error ? cause.message.replace(/^.* but /s, '') : String(cause);
    throw new InputError(
      `Expected ${field} to name a file inside the calibration set ${printable(dir)} but ${why}`,
      { field, cause },
    );
  }
}

/** An image of the set, confined like a model package's paths: inside the folder, a regular file, bounded. */
async function readImage(dir: string, path: string, field: string): Promise<Frame> {
  const imagePath = inSet(dir, path, field);
  try {
    return { kind: 'encoded', data: await readFile(imagePath) };
  } catch (cause) {
    throw new InputError(`Expected a readable image ${path} in ${dir}`, { field, cause });
  }
}

/** Read a calibration set folder; an empty, missing or malformed set is an InputError. */
export async function readCalibrationSet(dir: string): Promise<CalibrationSample[]> {
  const indexPath = join(dir, 'frames.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(inSet(dir, 'frames.json', 'calibration'), 'utf8'));
  } catch (cause) {
    throw new InputError(
      `Expected a calibration set with a readable frames.json at ${dir} but could not read it`,
      { field: 'calibration', cause },
    );
  }
  const frames = (raw as Partial<CalibrationIndex> | null)?.frames;
  if (!Array.isArray(frames) || frames.length === 0) {
    throw new InputError(
      `Expected at least one frame in ${indexPath} but received ${describe(frames)}`,
      { field: 'calibration.frames' },
    );
  }
  const samples: CalibrationSample[] = [];
  for (const [i, f] of frames.entries()) {
    const field = `calibration.frames[${i}]`;
    const entry = f as Partial<CalibrationEntry>;
    if (
      typeof entry.image !== 'string' ||
      typeof entry.instruction !== 'string' ||
      !Array.isArray(entry.state) ||
      !entry.state.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      throw new InputError(
        `Expected {image: string, instruction: string, state: number[]} for ${field} but received ${describe(f)}`,
        { field },
      );
    }
    // Parsed JSON: the declared type says nothing yet.
    const images = entry.images as unknown;
    if (
      images !== undefined &&
      (typeof images !== 'object' ||
        images === null ||
        Array.isArray(images) ||
        !Object.values(images).every((v) => typeof v === 'string'))
    ) {
      throw new InputError(
        `Expected ${field}.images to map camera names to image paths but received ${describe(images)}`,
        { field: `${field}.images` },
      );
    }
    const more: Record<string, Frame> = {};
    for (const [camera, path] of Object.entries((images ?? {}) as Record<string, string>))
      more[camera] = await readImage(dir, path, `${field}.images.${camera}`);
    samples.push({
      frame: await readImage(dir, entry.image, `${field}.image`),
      ...(images === undefined ? {} : { images: more }),
      instruction: entry.instruction,
      state: entry.state,
    });
  }
  return samples;
}

/** Model inputs of one sample: the encoder's pixels, the instruction ids and the normalised state. */
export interface PreparedSample {
  readonly pixels: Float32Array;
  readonly ids: BigInt64Array;
  readonly state: Float32Array;
}

/** Decode and normalise samples for the package's graphs (undecodable images are InputErrors). */
export async function prepareSamples(
  pkg: ModelPackage,
  samples: readonly CalibrationSample[],
): Promise<PreparedSample[]> {
  const m = pkg.manifest;
  const ingest = new FrameIngest(m.image);
  const out: PreparedSample[] = [];
  for (const [i, s] of samples.entries()) {
    const pixels = new Float32Array(3 * m.image.width * m.image.height);
    try {
      await ingest.toTensor(s.frame, pixels);
    } catch (cause) {
      throw new InputError(`Expected a decodable image for calibration frame ${i}`, {
        field: `calibration.frames[${i}].image`,
        cause,
      });
    }
    if (s.state.length !== m.state.names.length) {
      throw new InputError(
        `Expected ${m.state.names.length} state values for calibration frame ${i} but received ${s.state.length}`,
        { field: `calibration.frames[${i}].state` },
      );
    }
    const ids = new BigInt64Array(m.tokenizer.max_length);
    pkg.tokenizer.encodeInto(s.instruction, ids);
    const state = Float32Array.from(
      s.state,
      (v, j) => (v - (m.state.mean[j] as number)) / (m.state.std[j] as number),
    );
    out.push({ pixels, ids, state });
  }
  return out;
}

/** A calibration observation of a flow package: one decoded frame per camera, in manifest order. */
export interface FlowSample {
  readonly images: readonly Frame[];
  readonly instruction: string;
  /** Robot state in manifest units (FlowPolicy normalises it). */
  readonly state: readonly number[];
}

/**
 * Check and decode samples for a flow package: every camera the manifest names needs a frame
 * (`images[name]`, or `frame` for the first camera), else an InputError naming
 * `calibration.frames[i].images.<camera>`: a one-camera set cannot calibrate the wrist encoder.
 */
export async function prepareFlowSamples(
  pkg: FlowPackage,
  samples: readonly CalibrationSample[],
): Promise<FlowSample[]> {
  const m = pkg.manifest;
  const ingest = m.cameras.map((c) => new FrameIngest(c.image));
  const out: FlowSample[] = [];
  for (const [i, s] of samples.entries()) {
    const images: Frame[] = [];
    for (const [k, c] of m.cameras.entries()) {
      const field = `calibration.frames[${i}].images.${c.name}`;
      const frame = s.images?.[c.name] ?? (k === 0 ? s.frame : undefined);
      if (frame === undefined) {
        throw new InputError(
          `Expected an image of camera ${JSON.stringify(c.name)} for calibration frame ${i} (${m.name} has cameras ${m.cameras.map((x) => x.name).join(', ')}; frames.json lists further cameras under "images") but received ${describe(s.images === undefined ? undefined : Object.keys(s.images))}`,
          { field },
        );
      }
      let rgb: Uint8Array;
      try {
        rgb = await (ingest[k] as FrameIngest).toRgb(frame);
      } catch (cause) {
        throw new InputError(`Expected a decodable image for calibration frame ${i}`, {
          field:
            k === 0 && s.images?.[c.name] === undefined ? `calibration.frames[${i}].image` : field,
          cause,
        });
      }
      images.push({
        kind: 'raw',
        width: c.image.width,
        height: c.image.height,
        encoding: 'rgb8',
        data: rgb,
      });
    }
    if (s.state.length !== m.state.names.length) {
      throw new InputError(
        `Expected ${m.state.names.length} state values for calibration frame ${i} but received ${s.state.length}`,
        { field: `calibration.frames[${i}].state` },
      );
    }
    out.push({ images, instruction: s.instruction, state: s.state });
  }
  return out;
}
