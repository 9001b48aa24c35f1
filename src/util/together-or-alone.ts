/**
 * Work that runs best in one call for many items (one batched graph run) but must not let one
 * item's failure fail the others: the whole group first, then, if that call fails, each item
 * alone.
 */

/** One settled result per item, in order, and whether the items had to run alone. */
export interface TogetherOrAlone<R> {
  readonly results: PromiseSettledResult<R>[];
  /** The group's call failed (threw, or gave another count of results) and each item ran alone. */
  readonly alone: boolean;
}

/**
 * `run` on all of `items` at once; if it throws, or gives other than one result per item, `run`
 * on each item alone, so that a failure fails only the items it belongs to.
 *
 * @example const { results } = await togetherOrAlone(requests, (group) => startAll(group));
 */
export async function togetherOrAlone<T, R>(
  items: readonly T[],
  run: (group: readonly T[]) => Promise<readonly PromiseSettledResult<R>[]>,
): Promise<TogetherOrAlone<R>> {
  const missing = (): PromiseRejectedResult => ({
    status: 'rejected',
    reason: new Error('the batched call gave no result for this item'),
  });
  try {
    const all = await run(items);
    if (all.length === items.length) return { results: [...all], alone: false };
    if (items.length === 1) return { results: [missing()], alone: false };
  } catch (reason) {
    if (items.length === 1) return { results: [{ status: 'rejected', reason }], alone: false };
  }
  const results: PromiseSettledResult<R>[] = [];
  for (const item of items) {
    try {
      const [one] = await run([item]);
      results.push(one ?? missing());
    } catch (reason) {
      results.push({ status: 'rejected', reason });
    }
  }
  return { results, alone: true };
}

/** Every value of `values` as a fulfilled result. */
export function fulfilled<R>(values: readonly R[]): PromiseFulfilledResult<R>[] {
  return values.map((value) => ({ status: 'fulfilled', value }));
}

/** Each fulfilled value through `f` (with its index), each rejection as it is. */
export function mapFulfilled<R, S>(
  results: readonly PromiseSettledResult<R>[],
  f: (value: R, index: number) => S,
): PromiseSettledResult<S>[] {
  return results.map((r, i) =>
    r.status === 'rejected' ? r : { status: 'fulfilled', value: f(r.value, i) },
  );
}

/** The one result of a call made for one item: its value, or its failure thrown. */
export function only<R>(results: readonly PromiseSettledResult<R>[]): R {
  const [one] = results;
  if (one === undefined) throw new Error('the call gave no result');
  if (one.status === 'rejected') throw one.reason;
  return one.value;
}
