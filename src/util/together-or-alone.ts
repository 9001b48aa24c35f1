/**
 * Work that runs best in one call for many items (one batched graph run) but must not let one
 * item's failure fail the others: the whole group first, then, if that call throws, each item
 * alone.
 */

/**
 * `run` on all of `items` at once; if it throws, `run` on each item alone, so that a failure fails
 * only the items it belongs to. One settled result per item, in order (`run` must give as many).
 *
 * @example const started = await togetherOrAlone(requests, (group) => startAll(group));
 */
export async function togetherOrAlone<T, R>(
  items: readonly T[],
  run: (group: readonly T[]) => Promise<readonly PromiseSettledResult<R>[]>,
): Promise<PromiseSettledResult<R>[]> {
  try {
    return [...(await run(items))];
  } catch (reason) {
    if (items.length === 1) return [{ status: 'rejected', reason }];
  }
  const out: PromiseSettledResult<R>[] = [];
  for (const item of items) {
    try {
      const [one] = await run([item]);
      out.push(one ?? { status: 'rejected', reason: new Error('no result for the item') });
    } catch (reason) {
      out.push({ status: 'rejected', reason });
    }
  }
  return out;
}

/** Every value of `values` as a fulfilled result. */
export function fulfilled<R>(values: readonly R[]): PromiseFulfilledResult<R>[] {
  return values.map((value) => ({ status: 'fulfilled', value }));
}
