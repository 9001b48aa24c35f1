/**
 * The orthonormal discrete cosine transform (DCT-II and its inverse, DCT-III) along the time axis
 * of an action chunk, as `scipy.fft.dct(x, axis=0, norm="ortho")` computes it: FAST compresses a
 * chunk by keeping its few large low-frequency coefficients.
 */

/** Cosine table `c[k * n + t] = s_k cos(pi (2t + 1) k / 2n)`, cached per length. */
const tables = new Map<number, Float64Array>();

function basis(n: number): Float64Array {
  let table = tables.get(n);
  if (table === undefined) {
    table = new Float64Array(n * n);
    for (let k = 0; k < n; k++) {
      const s = k === 0 ? Math.sqrt(1 / n) : Math.sqrt(2 / n);
      for (let t = 0; t < n; t++)
        table[k * n + t] = s * Math.cos((Math.PI * (2 * t + 1) * k) / (2 * n));
    }
    tables.set(n, table);
  }
  return table;
}

/**
 * DCT-II (orthonormal) of each column of a row-major `[rows, cols]` matrix: rows are time steps,
 * columns action dimensions. Returns the coefficients in the same layout (row k = frequency k).
 */
export function dctColumns(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const c = basis(rows);
  const out = new Float64Array(rows * cols);
  for (let k = 0; k < rows; k++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let t = 0; t < rows; t++)
        sum += (c[k * rows + t] as number) * (x[t * cols + j] as number);
      out[k * cols + j] = sum;
    }
  }
  return out;
}

/** The inverse of {@link dctColumns} (DCT-III, orthonormal). */
export function idctColumns(
  coefficients: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  const c = basis(rows);
  const out = new Float64Array(rows * cols);
  for (let t = 0; t < rows; t++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let k = 0; k < rows; k++)
        sum += (c[k * rows + t] as number) * (coefficients[k * cols + j] as number);
      out[t * cols + j] = sum;
    }
  }
  return out;
}
