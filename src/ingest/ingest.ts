/**
 * Frame ingest: decode, convert, orient and resize camera frames to the model's image input.
 */

import sharp, { type Metadata, type ResizeOptions } from 'sharp';
import { describe, InputError } from '../errors.js';
import { kernels, type IngestJob } from '../native/index.js';
import { isAcceptedFormat, pngSize, sniffImageFormat, type ImageSize } from './format.js';
import { countJpegScans, MAX_JPEG_SCANS, readJpegHeader } from './jpeg-scans.js';
import { defaultIngestLimits, type IngestLimits } from './limits.js';
import {
  toThreeChannels,
  type EncodedFrame,
  type Frame,
  type ImageInputSpec,
  type RawFrame,
  type ResizeMode,
} from './frame.js';
import { RawKernel } from './raw-kernel.js';

// Frames are small: libvips' worker threads cost more in hand-offs than they save, and they add
// latency spikes. One thread per image, no operation cache (every frame is new).
sharp.concurrency(1);
sharp.cache(false);

const FIT: Readonly<Record<ResizeMode, 'fill' | 'cover' | 'contain'>> = {
  stretch: 'fill',
  crop: 'cover',
  pad: 'contain',
};

/** Resampling kernel used for every resize. */
const KERNEL = 'lanczos3';
const BLACK = { r: 0, g: 0, b: 0, alpha: 1 };

function checkSpec(spec: ImageInputSpec): ImageInputSpec {
  for (const key of ['width', 'height'] as const) {
    const v: unknown = spec[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new InputError(
        `Expected a positive integer for spec.${key} but received ${describe(v)}`,
        { field: `spec.${key}` },
      );
    }
  }
  if (!Object.hasOwn(FIT, spec.resize)) {
    throw new InputError(
      `Expected ${Object.keys(FIT).join('|')} for spec.resize but received ${describe(spec.resize)}`,
      { field: 'spec.resize' },
    );
  }
  const triple = (key: 'mean' | 'std'): [number, number, number] => {
    const v: unknown = spec[key];
    const ok = (x: unknown): x is number =>
      typeof x === 'number' && Number.isFinite(x) && (key === 'mean' || x > 0);
    if (!Array.isArray(v) || v.length !== 3 || !v.every(ok)) {
      const what = key === 'std' ? 'positive finite numbers' : 'finite numbers';
      throw new InputError(
        `Expected 3 ${what} for spec.${key} but received ${Array.isArray(v) ? `[${v.map(describe).join(', ')}]` : describe(v)}`,
        { field: `spec.${key}` },
      );
    }
    return [v[0] as number, v[1] as number, v[2] as number];
  };
  return Object.freeze({
    width: spec.width,
    height: spec.height,
    resize: spec.resize,
    mean: Object.freeze(triple('mean')),
    std: Object.freeze(triple('std')),
  });
}

/**
 * Turns camera frames into the model's image input: packed RGB at the spec size, then a
 * normalised CHW float32 tensor. Stateless apart from the spec, so safe to share.
 */
export class FrameIngest {
  /** The validated, frozen input spec. */
  readonly spec: ImageInputSpec;
  /** Pixel and byte bounds every frame is checked against before it is decoded. */
  readonly limits: IngestLimits;
  /** The normalised value of byte v in channel c at [c * 256 + v]. */
  readonly #lut: Float32Array;
  /** Raw frames: the ingest kernel (libvips' lanczos3 resize reproduced, no sharp call). */
  readonly #raw: RawKernel;

  /**
   * @param limits the `ingest.*` parameters; the schema's defaults when absent.
   * @throws {InputError} with field `spec.<name>` when the spec is invalid.
   */
  constructor(spec: ImageInputSpec, limits: IngestLimits = defaultIngestLimits()) {
    this.spec = checkSpec(spec);
    this.limits = limits;
    this.#lut = Float32Array.from(
      { length: 768 },
      (_, i) =>
        ((i % 256) / 255 - this.spec.mean[Math.floor(i / 256) as 0 | 1 | 2]) /
        this.spec.std[Math.floor(i / 256) as 0 | 1 | 2],
    );
    // Finite doubles can still overflow float32 (a std of 1e-39): nothing infinite reaches a model.
    const bad = this.#lut.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      const c = Math.floor(bad / 256) as 0 | 1 | 2;
      const field = Number.isFinite(Math.fround(this.spec.mean[c])) ? 'spec.std' : 'spec.mean';
      throw new InputError(
        `Expected spec.mean and spec.std that normalise every byte to a finite float32 but channel ${c} (mean ${this.spec.mean[c]}, std ${this.spec.std[c]}) maps ${bad % 256} to ${this.#lut[bad]}`,
        { field },
      );
    }
    this.#raw = new RawKernel(this.spec);
  }

  /**
   * Decode, convert, orient (EXIF) and resize any frame to packed HWC RGB uint8 of
   * `spec.width * spec.height * 3` bytes. The frame's bytes are copied before the first await: the
   * caller may reuse its buffer as soon as this returns a promise.
   *
   * Frames over {@link FrameIngest.limits} are refused before anything of their size is
   * allocated; encoded bytes must be JPEG or PNG by their signature (and by libvips' reading of
   * the header, where the node finds no size in it).
   *
   * @throws {InputError} when the frame is malformed, over the limits, not JPEG or PNG, or its
   * bytes cannot be decoded.
   */
  async toRgb(frame: Frame): Promise<Uint8Array> {
    const { width, height } = this.spec;
    this.#checkKind(frame);
    if (frame.kind === 'raw') {
      this.#checkRawPixels(frame.width, frame.height);
      const rgb = new Uint8Array(width * height * 3);
      this.#raw.run(frame, rgb);
      return rgb;
    }
    const result = await this.#decode(frame);
    if (result.width !== width || result.height !== height) {
      throw new InputError(
        `Expected a ${width}x${height} image after resize but received ${result.width}x${result.height}`,
        { field: 'image' },
      );
    }
    const rgb = toThreeChannels(result.data, width * height, result.channels);
    if (rgb.length !== width * height * 3) {
      throw new InputError(
        `Expected ${width * height * 3} RGB bytes after ingest but received ${rgb.length}`,
        { field: 'image.data' },
      );
    }
    return rgb;
  }

  /**
   * Normalise packed HWC RGB uint8 of the spec size into the CHW float32 tensor `out`
   * (length `3 * height * width`) as `(x / 255 - mean) / std`. Allocates nothing.
   *
   * @throws {InputError} when `rgb` or `out` has the wrong length.
   */
  normalise(rgb: Uint8Array, out: Float32Array): void {
    const plane = this.spec.width * this.spec.height;
    if (rgb.length !== plane * 3) {
      throw new InputError(
        `Expected ${plane * 3} bytes of ${this.spec.width}x${this.spec.height} RGB for rgb but received ${rgb.length}`,
        { field: 'rgb' },
      );
    }
    if (out.length !== plane * 3) {
      throw new InputError(
        `Expected a Float32Array of length ${plane * 3} (3x${this.spec.height}x${this.spec.width}) for out but received ${out.length}`,
        { field: 'out' },
      );
    }
    kernels.normalizeRgb(rgb, this.#lut, out);
  }

  /**
   * {@link FrameIngest.toRgb} then {@link FrameIngest.normalise} into `out`.
   *
   * @throws {InputError} as those do.
   */
  async toTensor(frame: Frame, out: Float32Array): Promise<void> {
    this.#checkKind(frame);
    if (frame.kind === 'raw') {
      this.#checkRawPixels(frame.width, frame.height);
      this.#checkOut(out);
      this.#raw.run(frame, new Uint8Array(out.length), this.#lut, out);
      return;
    }
    this.normalise(await this.toRgb(frame), out);
  }

  /**
   * {@link FrameIngest.toRgb} with raw frames converted on libuv's thread pool (native kernels),
   * so that several cameras are prepared in parallel; the frame's bytes are copied first.
   *
   * @throws {InputError} as {@link FrameIngest.toRgb}.
   */
  async toRgbAsync(frame: Frame): Promise<Uint8Array> {
    this.#checkKind(frame);
    if (frame.kind !== 'raw') return this.toRgb(frame);
    this.#checkRawPixels(frame.width, frame.height);
    const rgb = new Uint8Array(this.spec.width * this.spec.height * 3);
    await this.#raw.runAsync(frame, rgb);
    return rgb;
  }

  /**
   * Several frames (cameras) at once: one RGB8 image per frame, in order; a bad frame rejects its
   * own entry only. The raw frames go to the native kernel in one call that splits their rows
   * across the calling thread and a few persistent threads (so three cameras take far less than
   * three times one); encoded frames are decoded by sharp meanwhile, on libuv's thread pool.
   *
   * @example const [left, right] = await ingest.toRgbMany([leftFrame, rightFrame]);
   */
  async toRgbMany(frames: readonly Frame[]): Promise<PromiseSettledResult<Uint8Array>[]> {
    const raw: RawFrame[] = [];
    const rawAt: number[] = [];
    const decoding: Promise<Uint8Array>[] = [];
    const decodingAt: number[] = [];
    frames.forEach((frame, i) => {
      if ((frame as Partial<Frame> | null)?.kind === 'raw') {
        raw.push(frame as RawFrame);
        rawAt.push(i);
      } else {
        decoding.push(this.toRgb(frame));
        decodingAt.push(i);
      }
    });
    // Settled from the start: whatever happens to the raw frames, no decode's failure goes unheard.
    const decoded = Promise.allSettled(decoding);
    const results = new Array<PromiseSettledResult<Uint8Array>>(frames.length);
    try {
      this.rawToRgbMany(raw).forEach((r, k) => {
        results[rawAt[k] as number] = r;
      });
    } catch (reason) {
      for (const i of rawAt) results[i] = { status: 'rejected', reason };
    }
    (await decoded).forEach((r, k) => {
      results[decodingAt[k] as number] = r;
    });
    return results;
  }

  /**
   * Raw frames (cameras) converted now, in one native call that splits their rows across the
   * calling thread and a few persistent threads: one RGB8 image per frame, in order, or the error
   * of a bad frame (which fails its own entry only). Synchronous: the frames' bytes are read before
   * it returns, and no promise or thread-pool hop is added to a frame that costs a tenth of a
   * millisecond.
   *
   * `into[i]`, when given, is where frame i's RGB8 goes (and what its entry holds): a caller that
   * converts frames again and again passes the same buffers, because a fresh 27 KB buffer per
   * frame page-faults after each garbage collection and costs more than the kernel.
   *
   * `tensors[i]`, when given, receives frame i's normalised CHW tensor in the same pass (what
   * {@link FrameIngest.normalise} would write from its RGB8), so the image is not read again.
   *
   * @throws {InputError} (field `into[i]` or `tensors[i]`) for an output buffer that is not a
   * Uint8Array of width × height × 3 bytes, or a Float32Array of 3 × height × width values, of
   * the spec.
   */
  rawToRgbMany(
    frames: readonly RawFrame[],
    into: readonly (Uint8Array | undefined)[] = [],
    tensors: readonly (Float32Array | undefined)[] = [],
  ): PromiseSettledResult<Uint8Array>[] {
    const bytes = this.spec.width * this.spec.height * 3;
    into.forEach((buffer, i) => {
      if (buffer !== undefined && !(buffer instanceof Uint8Array && buffer.length === bytes)) {
        throw new InputError(
          `Expected a Uint8Array of ${bytes} bytes (${this.spec.width}x${this.spec.height}x3) for into[${i}] but received ${describe(buffer)}`,
          { field: `into[${i}]` },
        );
      }
    });
    tensors.forEach((tensor, i) => {
      if (tensor !== undefined) this.#checkOut(tensor, `tensors[${i}]`);
    });
    const jobs: IngestJob[] = [];
    /** The frame of each job. */
    const owners: number[] = [];
    const results = frames.map((frame, i): PromiseSettledResult<Uint8Array> => {
      try {
        this.#checkKind(frame);
        this.#checkRawPixels(frame.width, frame.height);
        const rgb = into[i] ?? new Uint8Array(bytes);
        const tensor = tensors[i];
        jobs.push(this.#raw.job(frame, rgb, tensor && this.#lut, tensor));
        owners.push(i);
        return { status: 'fulfilled', value: rgb };
      } catch (error) {
        return { status: 'rejected', reason: error };
      }
    });
    if (jobs.length > 1) {
      try {
        kernels.ingestFrames(jobs);
        return results;
      } catch {
        // The kernel's own checks refused a job (it checks them all before it runs any): one
        // frame must not fail the others, so each runs alone below and fails with its own error.
      }
    }
    jobs.forEach((job, k) => {
      try {
        ingestOne(job);
      } catch (reason) {
        results[owners[k] as number] = { status: 'rejected', reason };
      }
    });
    return results;
  }

  /** Refuse an output tensor (parameter `field`) that is not the spec's CHW float32 size. */
  #checkOut(out: Float32Array, field = 'out'): void {
    const plane = this.spec.width * this.spec.height;
    if (!(out instanceof Float32Array) || out.length !== plane * 3) {
      throw new InputError(
        `Expected a Float32Array of length ${plane * 3} (3x${this.spec.height}x${this.spec.width}) for ${field} but received ${describe(out)}`,
        { field },
      );
    }
  }

  #resizeOptions(): ResizeOptions {
    return { fit: FIT[this.spec.resize], kernel: KERNEL, background: BLACK };
  }

  #checkKind(frame: Frame): void {
    const kind: unknown = (frame as Partial<Frame> | null)?.kind;
    if (kind !== 'raw' && kind !== 'encoded') {
      throw new InputError(
        `Expected a frame with kind raw|encoded for image.kind but received ${describe(kind)}`,
        { field: 'image.kind' },
      );
    }
  }

  /** Refuse a raw frame of more pixels than the limit before its RGB copy is allocated. */
  #checkRawPixels(width: unknown, height: unknown): void {
    if (typeof width !== 'number' || typeof height !== 'number') return; // rawToRgb names it
    const max = this.limits.maxPixels;
    if (width * height > max) {
      throw new InputError(
        `Expected at most ${max} pixels (ingest.max_pixels) for image but received ${width}x${height} = ${width * height}`,
        { field: 'image' },
      );
    }
  }

  /**
   * Check encoded bytes without decoding pixels: size, signature, a JPEG's scan count, then the
   * dimensions the header states (read here where it is plain, else by libvips, which also
   * confirms the format), so a forged width never reaches the decoder.
   */
  async #checkEncoded(frame: EncodedFrame): Promise<Uint8Array> {
    const bytes: unknown = frame.data;
    const label = frame.format === undefined ? '' : ` (labelled ${describe(frame.format)})`;
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
      throw new InputError(
        `Expected JPEG or PNG bytes for image.data but received ${describe(bytes)}`,
        { field: 'image.data' },
      );
    }
    const { maxEncodedBytes, maxPixels } = this.limits;
    if (bytes.length > maxEncodedBytes) {
      throw new InputError(
        `Expected at most ${maxEncodedBytes} bytes (ingest.max_encoded_bytes) for image.data but received ${bytes.length}`,
        { field: 'image.data' },
      );
    }
    const sniffed = sniffImageFormat(bytes);
    if (!isAcceptedFormat(sniffed)) {
      throw new InputError(
        `Expected JPEG or PNG bytes for image.data${label} but received ${sniffed === undefined ? 'bytes with no known image signature' : `${sniffed.toUpperCase()} bytes`}`,
        { field: 'image.data' },
      );
    }
    // Before libvips reads it: a JPEG's decode cannot be interrupted, and its cost grows with
    // its scans.
    const jpeg = sniffed === 'jpeg' ? readJpegHeader(bytes) : undefined;
    if (jpeg !== undefined && countJpegScans(bytes, MAX_JPEG_SCANS, jpeg) > MAX_JPEG_SCANS) {
      throw new InputError(
        `Expected at most ${MAX_JPEG_SCANS} scans in the JPEG of image.data${label} but received more (libjpeg would decode each over the whole image)`,
        { field: 'image.data' },
      );
    }
    // The size as the header states it, read here (a JPEG's first start-of-frame segment, a PNG's
    // IHDR chunk), or by libvips where that read finds none: a call to libvips costs a hop to
    // libuv's pool, about a tenth of a camera JPEG's whole decode. The decode below refuses
    // more than ingest.max_pixels itself, whatever the header said.
    const { width: w, height: h } =
      (jpeg === undefined ? pngSize(bytes) : jpeg.size) ??
      (await this.#headerSize(bytes, sniffed, label));
    if (Math.max(w, h) > MAX_ENCODED_SIDE) {
      throw new InputError(
        `Expected at most ${MAX_ENCODED_SIDE} pixels a side for image but its ${sniffed.toUpperCase()} header says ${w}x${h}`,
        { field: 'image.data' },
      );
    }
    if (w * h > maxPixels) {
      throw new InputError(
        `Expected at most ${maxPixels} pixels (ingest.max_pixels) for image but its ${sniffed.toUpperCase()} header says ${w}x${h} = ${w * h}`,
        { field: 'image.data' },
      );
    }
    return bytes;
  }

  /** The size libvips reads from the header of `bytes` (sniffed as `format`). */
  async #headerSize(bytes: Uint8Array, format: string, label: string): Promise<ImageSize> {
    let header: Metadata;
    try {
      header = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (cause) {
      throw new InputError(
        `Expected a readable ${format.toUpperCase()} header for image.data${label} but ${firstLine(cause)}`,
        { field: 'image.data', cause },
      );
    }
    // Defensive: no loader of this libvips claims bytes with a JPEG or PNG signature.
    if (header.format !== format) {
      throw new InputError(
        `Expected JPEG or PNG bytes for image.data${label} but libvips reads them as ${describe(header.format)}`,
        { field: 'image.data' },
      );
    }
    return { width: header.width, height: header.height };
  }

  async #decode(
    frame: EncodedFrame,
  ): Promise<{ data: Uint8Array; channels: number; width: number; height: number }> {
    const bytes = await this.#checkEncoded(frame);
    try {
      // limitInputPixels again: the decoder itself refuses what the header check let through.
      const { data, info } = await sharp(bytes, { limitInputPixels: this.limits.maxPixels })
        .rotate()
        .flatten({ background: BLACK })
        .toColourspace('srgb')
        .resize(this.spec.width, this.spec.height, this.#resizeOptions())
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      return { data, ...info };
    } catch (cause) {
      throw new InputError(
        `Expected JPEG or PNG bytes for image.data but could not decode ${bytes.length} bytes${frame.format === undefined ? '' : ` (format ${describe(frame.format)})`}: ${firstLine(cause)}`,
        { field: 'image.data', cause },
      );
    }
  }
}

/**
 * The longest side an encoded frame may have: JPEG's own limit. libvips's resize costs per row, so
 * a PNG one pixel wide and millions tall (a few KB, within `ingest.max_pixels`) would hold a
 * thread-pool thread for seconds; no camera sends one.
 */
const MAX_ENCODED_SIDE = 65_535;

function firstLine(cause: unknown): string {
  return (cause instanceof Error ? cause.message : String(cause)).split('\n')[0] ?? '';
}

/** One job through the kernel, on this thread. */
function ingestOne([src, header, vTaps, hTaps, rgb, lut, out]: IngestJob): void {
  kernels.ingestFrame(src, header, vTaps, hTaps, rgb, lut, out);
}
