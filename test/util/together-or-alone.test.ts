import { describe, expect, it } from 'vitest';
import {
  fulfilled,
  mapFulfilled,
  only,
  togetherOrAlone,
} from '../../src/util/together-or-alone.js';

describe('togetherOrAlone', () => {
  it('runs the group once when it succeeds', async () => {
    const calls: number[][] = [];
    const out = await togetherOrAlone([1, 2, 3], (group) => {
      calls.push([...group]);
      return Promise.resolve(fulfilled(group.map((x) => x * 10)));
    });
    expect(calls).toEqual([[1, 2, 3]]);
    expect(out).toEqual({ results: fulfilled([10, 20, 30]), alone: false });
  });

  it('runs each item alone when the group throws, so one failure fails only its item', async () => {
    const out = await togetherOrAlone([1, 2, 3], (group) => {
      if (group.includes(2)) return Promise.reject(new Error(`bad ${group.join(',')}`));
      return Promise.resolve(fulfilled(group.map((x) => x * 10)));
    });
    expect(out.alone).toBe(true);
    expect(out.results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((out.results[1] as PromiseRejectedResult).reason).toMatchObject({ message: 'bad 2' });
  });

  it('treats a group that gives another count of results as failed', async () => {
    const calls: number[][] = [];
    const out = await togetherOrAlone([1, 2, 3], (group) => {
      calls.push([...group]);
      return Promise.resolve(fulfilled(group.length > 1 ? [10] : group.map((x) => x * 10)));
    });
    expect(calls).toEqual([[1, 2, 3], [1], [2], [3]]);
    expect(out).toEqual({ results: fulfilled([10, 20, 30]), alone: true });
    // One item and no result: a rejection, not a hole.
    const none = await togetherOrAlone([1], () => Promise.resolve([]));
    expect(none.results[0]?.status).toBe('rejected');
  });

  it('mapFulfilled: each value through f with its index, each rejection as it is', () => {
    const no = new Error('no');
    expect(
      mapFulfilled(
        [...fulfilled([1]), { status: 'rejected', reason: no }, ...fulfilled([3])],
        (v, i) => v * 10 + i,
      ),
    ).toEqual([
      { status: 'fulfilled', value: 10 },
      { status: 'rejected', reason: no },
      { status: 'fulfilled', value: 32 },
    ]);
  });

  it('only: the value of one result, or its failure thrown', () => {
    expect(only(fulfilled([7]))).toBe(7);
    expect(() => only([{ status: 'rejected', reason: new Error('no') }])).toThrow('no');
    expect(() => only([])).toThrow('the call gave no result');
  });
});
