/**
 * Argument checks shared by both backends: every kernel call goes through {@link validated}, so the
 * addon only ever sees clean input and both backends reject the same calls with the same
 * `InputError` (its `field` names the parameter).
 */
import { describe, InputError } from '../errors.js';
import { H, HEADER_LENGTH, KERNEL_LIMITS, SOURCE_KIND } from './ingest-layout.js';
import type { IngestJob, Kernels } from './kernels.js';

/** A kernel's argument check: the kernel's own parameters (one declaration, in ./kernels.ts). */
type Check<K extends keyof Kernels> = (...args: Parameters<Kernels[K]>) => void;

type TypedArrayConstructor =
  Float32ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor;

function typedArray(value: unknown, type: TypedArrayConstructor, field: string): void {
  if (!(value instanceof type)) {
    const article = /^[AEIOU]/.test(type.name) ? 'an' : 'a';
    throw new InputError(
      `Expected ${article} ${type.name} for ${field} but received ${describe(value)}`,
      { field },
    );
  }
}

/** An integer in [min, max] (max omitted: no upper bound). */
function integer(value: unknown, field: string, min: number, max?: number): void {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < min ||
    (max !== undefined && value > max)
  ) {
    const range = max === undefined ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new InputError(
      `Expected an integer ${range} for ${field} but received ${describe(value)}`,
      { field },
    );
  }
}

/** The length a rule asks for: `expr = value`, or the bare value. (Message strings are built only on
 * failure, so a valid call allocates nothing.) */
function wanted(length: number, expr: string | undefined): string {
  return expr === undefined ? String(length) : `${expr} = ${length}`;
}

function atLeast(array: ArrayLike<number>, length: number, field: string, expr?: string): void {
  if (array.length < length) {
    throw new InputError(
      `Expected a length of at least ${wanted(length, expr)} for ${field} but received ${array.length}`,
      { field },
    );
  }
}

function exactly(array: ArrayLike<number>, length: number, field: string, expr?: string): void {
  if (array.length !== length) {
    throw new InputError(
      `Expected a length of ${wanted(length, expr)} for ${field} but received ${array.length}`,
      { field },
    );
  }
}

/** An output array must not share memory with an input it is written from while being read. */
function disjoint(
  out: ArrayBufferView,
  input: ArrayBufferView,
  outField: string,
  inField: string,
): void {
  if (
    out.buffer === input.buffer &&
    out.byteOffset < input.byteOffset + input.byteLength &&
    input.byteOffset < out.byteOffset + out.byteLength
  ) {
    throw new InputError(
      `Expected memory that does not overlap ${inField} for ${outField} but received an overlapping view`,
      { field: outField },
    );
  }
}

const checkTopK: Check<'topK'> = (scores, k, out) => {
  typedArray(scores, Float32Array, 'scores');
  atLeast(scores, 1, 'scores');
  integer(k, 'k', 1, scores.length);
  typedArray(out, Int32Array, 'out');
  atLeast(out, k, 'out', 'k');
};

const checkMaxMinDiversity: Check<'maxMinDiversity'> = (tokens, n, dim, k, first, out) => {
  typedArray(tokens, Float32Array, 'tokens');
  integer(n, 'n', 1);
  integer(dim, 'dim', 1);
  atLeast(tokens, n * dim, 'tokens', 'n * dim');
  integer(k, 'k', 1, n);
  integer(first, 'first', 0, n - 1);
  typedArray(out, Int32Array, 'out');
  atLeast(out, k, 'out', 'k');
};

const checkPatchDifference: Check<'patchDifference'> = (a, b, width, height, gridW, gridH, out) => {
  integer(width, 'width', 1);
  integer(height, 'height', 1);
  const bytes = width * height * 3;
  typedArray(a, Uint8Array, 'a');
  exactly(a, bytes, 'a', 'width * height * 3');
  typedArray(b, Uint8Array, 'b');
  exactly(b, bytes, 'b', 'width * height * 3');
  integer(gridW, 'gridW', 1, width);
  if (width % gridW !== 0) {
    throw new InputError(`Expected a divisor of width ${width} for gridW but received ${gridW}`, {
      field: 'gridW',
    });
  }
  integer(gridH, 'gridH', 1, height);
  if (height % gridH !== 0) {
    throw new InputError(`Expected a divisor of height ${height} for gridH but received ${gridH}`, {
      field: 'gridH',
    });
  }
  typedArray(out, Float32Array, 'out');
  atLeast(out, gridW * gridH, 'out', 'gridW * gridH');
};

const checkNormalizeRgb: Check<'normalizeRgb'> = (rgb, lut, out) => {
  typedArray(rgb, Uint8Array, 'rgb');
  if (rgb.length % 3 !== 0) {
    throw new InputError(
      `Expected a length divisible by 3 (packed RGB8) for rgb but received ${rgb.length}`,
      { field: 'rgb' },
    );
  }
  typedArray(lut, Float32Array, 'lut');
  exactly(lut, 768, 'lut', '3 channels × 256 values');
  typedArray(out, Float32Array, 'out');
  atLeast(out, rgb.length, 'out', 'rgb.length');
  disjoint(out, rgb, 'out', 'rgb');
  disjoint(out, lut, 'out', 'lut');
};

const checkGatherRows: Check<'gatherRows'> = (tokens, dim, idx, count, out) => {
  typedArray(tokens, Float32Array, 'tokens');
  integer(dim, 'dim', 1);
  typedArray(idx, Int32Array, 'idx');
  integer(count, 'count', 0, idx.length);
  const rows = Math.floor(tokens.length / dim);
  for (let i = 0; i < count; i++) {
    const row = idx[i] as number;
    if (row < 0 || row >= rows) {
      throw new InputError(
        `Expected a row index in [0, ${rows - 1}] for idx[${i}] but received ${row}`,
        { field: `idx[${i}]` },
      );
    }
  }
  typedArray(out, Float32Array, 'out');
  atLeast(out, count * dim, 'out', 'count * dim');
  disjoint(out, tokens, 'out', 'tokens');
};

const checkCountBytePairs: Check<'countBytePairs'> = (bytes, from, first, second, limit) => {
  typedArray(bytes, Uint8Array, 'bytes');
  integer(from, 'from', 0, bytes.length);
  integer(first, 'first', 0, 255);
  integer(second, 'second', 0, 255);
  integer(limit, 'limit', 0, 2 ** 31 - 2);
};

/** A header field in [min, max] (the header is built by src/ingest/raw-kernel.ts). */
function field(header: Int32Array, name: keyof typeof H, min: number, max: number): number {
  const v = header[H[name]] as number;
  if (v < min || v > max) {
    throw new InputError(`Expected header.${name} in [${min}, ${max}] but received ${v}`, {
      field: `header.${name}`,
    });
  }
  return v;
}

/** Every start of a taps table keeps its taps inside [0, length). */
function checkTaps(taps: Int32Array, name: string, count: number, n: number, length: number): void {
  exactly(taps, count * (n + 1), name, 'destination size × (taps + 1)');
  for (let i = 0; i < count; i++) {
    const start = taps[i * (n + 1)] as number;
    if (start < 0 || start + n > length) {
      throw new InputError(
        `Expected a start in [0, ${length - n}] for ${name}[${i * (n + 1)}] but received ${start}`,
        { field: name },
      );
    }
  }
}

/** The plan must keep every read inside `src` and every write inside the outputs. */
const checkIngestFrame: Check<'ingestFrame'> = (src, header, vTaps, hTaps, rgb, lut, out) => {
  typedArray(src, Uint8Array, 'src');
  typedArray(header, Int32Array, 'header');
  exactly(header, HEADER_LENGTH, 'header');
  typedArray(vTaps, Int32Array, 'vTaps');
  typedArray(hTaps, Int32Array, 'hTaps');
  typedArray(rgb, Uint8Array, 'rgb');
  typedArray(lut, Float32Array, 'lut');
  exactly(lut, 768, 'lut', '3 channels × 256 values');
  typedArray(out, Float32Array, 'out');
  const big = KERNEL_LIMITS.side;
  const kind = field(header, 'kind', 0, 5);
  const width = field(header, 'srcWidth', 1, big);
  const height = field(header, 'srcHeight', 1, big);
  const channels = field(header, 'channels', 1, 4);
  const interleaved = kind === SOURCE_KIND.interleaved8 || kind === SOURCE_KIND.interleaved16;
  const bayer = kind === SOURCE_KIND.bayerSuperpixel || kind === SOURCE_KIND.bayerBilinear;
  const bytesPerPixel =
    kind === SOURCE_KIND.interleaved8
      ? channels
      : kind === SOURCE_KIND.interleaved16
        ? 2 * channels
        : kind === SOURCE_KIND.packed422
          ? 2
          : 1;
  // The largest byte offset a, b or c may take: within a pixel, a 4-byte pair, a chroma pair or
  // a 2x2 cell.
  const top = interleaved ? channels - 1 : kind === SOURCE_KIND.packed422 ? 3 : 1;
  field(header, 'a', 0, bayer ? 3 : kind === SOURCE_KIND.packed422 ? 1 : top);
  field(header, 'b', 0, bayer ? 3 : top);
  field(header, 'c', 0, bayer ? 3 : top);
  field(header, 'bigEndian', 0, 1);
  if (kind === SOURCE_KIND.packed422 || kind === SOURCE_KIND.semiplanar420) {
    field(header, 'srcWidth', 2, big - (big % 2));
    if (width % 2 !== 0) {
      throw new InputError(`Expected an even header.srcWidth but received ${width}`, {
        field: 'header.srcWidth',
      });
    }
  }
  if (kind === SOURCE_KIND.semiplanar420 && height % 2 !== 0) {
    throw new InputError(`Expected an even header.srcHeight but received ${height}`, {
      field: 'header.srcHeight',
    });
  }
  if (bayer) {
    field(header, 'srcWidth', 2, big);
    field(header, 'srcHeight', 2, big);
  }
  const step = field(header, 'step', width * bytesPerPixel, KERNEL_LIMITS.step);
  const rows = kind === SOURCE_KIND.semiplanar420 ? height + height / 2 : height;
  atLeast(src, step * rows, 'src', 'header.step × rows');
  const superpixel = kind === SOURCE_KIND.bayerSuperpixel;
  const vw = field(
    header,
    'virtualWidth',
    superpixel ? width >> 1 : width,
    superpixel ? width >> 1 : width,
  );
  const vh = field(
    header,
    'virtualHeight',
    superpixel ? height >> 1 : height,
    superpixel ? height >> 1 : height,
  );
  const cropX = field(header, 'cropX', 0, vw - 1);
  const cropY = field(header, 'cropY', 0, vh - 1);
  const cropW = field(header, 'cropWidth', 1, vw - cropX);
  const cropH = field(header, 'cropHeight', 1, vh - cropY);
  const kx = field(header, 'kx', 1, cropW);
  // At most 257 rows per box: the native kernel sums a box's rows of bytes in 16 bits.
  const ky = field(header, 'ky', 1, Math.min(cropH, 257));
  const midW = field(header, 'midWidth', Math.ceil(cropW / kx), Math.ceil(cropW / kx));
  const midH = field(header, 'midHeight', Math.ceil(cropH / ky), Math.ceil(cropH / ky));
  const outW = field(header, 'outWidth', 1, big);
  const outH = field(header, 'outHeight', 1, big);
  const destX = field(header, 'destX', 0, outW - 1);
  const destY = field(header, 'destY', 0, outH - 1);
  const destW = field(header, 'destWidth', 1, outW - destX);
  const destH = field(header, 'destHeight', 1, outH - destY);
  const nv = field(header, 'vTaps', 0, midH);
  const nh = field(header, 'hTaps', 0, midW);
  if (nv === 0) field(header, 'midHeight', destH, destH);
  else checkTaps(vTaps, 'vTaps', destH, nv, midH);
  if (nh === 0) field(header, 'midWidth', destW, destW);
  else checkTaps(hTaps, 'hTaps', destW, nh, midW);
  atLeast(rgb, outW * outH * 3, 'rgb', 'outWidth × outHeight × 3');
  if (out.length !== 0) atLeast(out, outW * outH * 3, 'out', '3 × outWidth × outHeight');
  disjoint(rgb, src, 'rgb', 'src');
  disjoint(out, rgb, 'out', 'rgb');
  disjoint(out, src, 'out', 'src');
};

/**
 * Every job as {@link checkIngestFrame} (an error's field is prefixed `jobs[i].`), and no job
 * writes memory another job reads or writes: the addon runs the jobs' bands at the same time.
 */
function checkIngestJobs(jobs: readonly IngestJob[]): void {
  const list: unknown = jobs;
  if (!Array.isArray(list)) {
    throw new InputError(`Expected an array of jobs for jobs but received ${describe(jobs)}`, {
      field: 'jobs',
    });
  }
  jobs.forEach((job: unknown, i) => {
    if (!Array.isArray(job) || job.length !== 7) {
      throw new InputError(
        `Expected [src, header, vTaps, hTaps, rgb, lut, out] for jobs[${i}] but received ${describe(job)}`,
        { field: `jobs[${i}]` },
      );
    }
    try {
      checkIngestFrame(...(job as unknown as IngestJob));
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const field = `jobs[${i}].${error.field ?? ''}`;
      throw new InputError(`${error.message} (${field})`, { field, cause: error });
    }
  });
  jobs.forEach(([, , , , rgb, , out], i) => {
    jobs.forEach(([src, , , , otherRgb, , otherOut], j) => {
      if (i === j) return;
      for (const [output, name] of [
        [rgb, 'rgb'],
        [out, 'out'],
      ] as const) {
        disjoint(output, src, `jobs[${i}].${name}`, `jobs[${j}].src`);
        disjoint(output, otherRgb, `jobs[${i}].${name}`, `jobs[${j}].rgb`);
        if (otherOut.length > 0) disjoint(output, otherOut, `jobs[${i}].${name}`, `jobs[${j}].out`);
      }
    });
  });
}

/**
 * `impl` behind the argument checks: each call throws an `InputError` naming the parameter and
 * the allowed range before `impl` sees a bad argument.
 *
 * @example const checked = validated(reference); checked.topK(scores, 0, out); // throws (field 'k')
 */
export function validated(impl: Kernels): Kernels {
  return {
    topK(scores, k, out) {
      checkTopK(scores, k, out);
      impl.topK(scores, k, out);
    },
    maxMinDiversity(tokens, n, dim, k, first, out) {
      checkMaxMinDiversity(tokens, n, dim, k, first, out);
      impl.maxMinDiversity(tokens, n, dim, k, first, out);
    },
    patchDifference(a, b, width, height, gridW, gridH, out) {
      checkPatchDifference(a, b, width, height, gridW, gridH, out);
      impl.patchDifference(a, b, width, height, gridW, gridH, out);
    },
    normalizeRgb(rgb, lut, out) {
      checkNormalizeRgb(rgb, lut, out);
      impl.normalizeRgb(rgb, lut, out);
    },
    gatherRows(tokens, dim, idx, count, out) {
      checkGatherRows(tokens, dim, idx, count, out);
      impl.gatherRows(tokens, dim, idx, count, out);
    },
    ingestFrame(src, header, vTaps, hTaps, rgb, lut, out) {
      checkIngestFrame(src, header, vTaps, hTaps, rgb, lut, out);
      impl.ingestFrame(src, header, vTaps, hTaps, rgb, lut, out);
    },
    async ingestFrameAsync(src, header, vTaps, hTaps, rgb, lut, out) {
      checkIngestFrame(src, header, vTaps, hTaps, rgb, lut, out);
      await impl.ingestFrameAsync(src, header, vTaps, hTaps, rgb, lut, out);
    },
    ingestFrames(jobs) {
      checkIngestJobs(jobs);
      impl.ingestFrames(jobs);
    },
    countBytePairs(bytes, from, first, second, limit) {
      checkCountBytePairs(bytes, from, first, second, limit);
      return impl.countBytePairs(bytes, from, first, second, limit);
    },
  };
}
