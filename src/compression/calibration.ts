import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, InputError, printable } from '../errors.js';
import { FrameIngest, type Frame } from '../ingest/index.js';
import { PACKAGE_LIMITS, packageFile } from '../model/files.js';
import type { ModelPackage } from '../model/manifest.js';

/** One calibration observation: a camera frame, the instruction and the robot state (manifest units). */
export interface CalibrationSample {
  readonly frame: Frame;
  readonly instruction: string;
  readonly state: readonly number[];
}

/** `frames.json` of a calibration set (format `vla-node/calibration@1`). */
export interface CalibrationIndex {
  readonly format: 'vla-node/calibration@1';
  readonly source: string;
  readonly frames: readonly { image: string; instruction: string; state: number[] }[];
}

/** Write samples as a calibration set: `frames/NNNN.png` plus `frames.json`. */
export async function writeCalibrationSet(
  dir: string,
  samples: readonly CalibrationSample[],
  source: string,
): Promise<void> {
  await mkdir(join(dir, 'frames'), { recursive: true });
  const frames: { image: string; instruction: string; state: number[] }[] = [];
  for (const [i, s] of samples.entries()) {
    if (s.frame.kind !== 'raw') throw new InputError('Expected raw frames', { field: 'frame' });
    const image = `frames/${String(i).padStart(4, '0')}.png`;
    await sharp(s.frame.data, {
      raw: { width: s.frame.width, height: s.frame.height, channels: 3 },
    })
      .png()
      .toFile(join(dir, image));
    frames.push({ image, instruction: s.instruction, state: [...s.state] });
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
    const entry = f as Partial<CalibrationIndex['frames'][number]>;
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
    // The same rule as a model package's paths: inside the set folder, a regular file, bounded.
    const imagePath = inSet(dir, entry.image, `${field}.image`);
    let data: Buffer;
    try {
      data = await readFile(imagePath);
    } catch (cause) {
      throw new InputError(`Expected a readable image ${entry.image} in ${dir}`, {
        field: `${field}.image`,
        cause,
      });
    }
    samples.push({
      frame: { kind: 'encoded', data },
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
