/**
 * `parts` one after another in one array of their type: the rows of a batch tensor, whose batch
 * dimension is the outermost. A single part is returned as it is (no copy).
 */
export function joined<T extends Float32Array | BigInt64Array>(parts: readonly T[]): T {
  if (parts.length === 1) return parts[0] as T;
  const out = new (parts[0]?.constructor as new (length: number) => T)(
    parts.reduce((n, p) => n + p.length, 0),
  );
  let at = 0;
  for (const p of parts) {
    (out as Float32Array).set(p as Float32Array, at);
    at += p.length;
  }
  return out;
}
