/**
 * Argument checks shared by both backends: every kernel call goes through {@link validated}, so the
 * addon only ever sees clean input and both backends reject the same calls with the same
 * `InputError` (its `field` names the parameter).
 */
import { describe, InputError } from '../errors.js';
import type { Kernels } from './kernels.js';

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

function checkTopK(scores: Float32Array, k: number, out: Int32Array): void {
  typedArray(scores, Float32Array, 'scores');
  atLeast(scores, 1, 'scores');
  integer(k, 'k', 1, scores.length);
  typedArray(out, Int32Array, 'out');
  atLeast(out, k, 'out', 'k');
}

function checkMaxMinDiversity(
  tokens: Float32Array,
  n: number,
  dim: number,
  k: number,
  first: number,
  out: Int32Array,
): void {
  typedArray(tokens, Float32Array, 'tokens');
  integer(n, 'n', 1);
  integer(dim, 'dim', 1);
  atLeast(tokens, n * dim, 'tokens', 'n * dim');
  integer(k, 'k', 1, n);
  integer(first, 'first', 0, n - 1);
  typedArray(out, Int32Array, 'out');
  atLeast(out, k, 'out', 'k');
}

function checkPatchDifference(
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  height: number,
  gridW: number,
  gridH: number,
  out: Float32Array,
): void {
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
}

function checkNormalizeRgb(rgb: Uint8Array, lut: Float32Array, out: Float32Array): void {
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
}

function checkGatherRows(
  tokens: Float32Array,
  dim: number,
  idx: Int32Array,
  count: number,
  out: Float32Array,
): void {
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
  };
}
