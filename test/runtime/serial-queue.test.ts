import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../src/runtime/serial-queue.js';

/** A promise and the functions that settle it. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SerialQueue', () => {
  it('starts each task only after the one before it settled, in order', async () => {
    const queue = new SerialQueue();
    const log: string[] = [];
    const first = deferred<string>();
    const a = queue.run(async () => {
      log.push('a start');
      const v = await first.promise;
      log.push('a end');
      return v;
    });
    const b = queue.run(() => {
      log.push('b start');
      return Promise.resolve('b');
    });
    await Promise.resolve();
    await Promise.resolve();
    expect(log).toEqual(['a start']);
    first.resolve('a');
    await expect(a).resolves.toBe('a');
    await expect(b).resolves.toBe('b');
    expect(log).toEqual(['a start', 'a end', 'b start']);
  });

  it('runs the next task after a rejection, which reaches only its own caller', async () => {
    const queue = new SerialQueue();
    const failed = queue.run(() => Promise.reject(new Error('bad frame')));
    const next = queue.run(() => Promise.resolve(7));
    await expect(failed).rejects.toThrow('bad frame');
    await expect(next).resolves.toBe(7);
  });

  it('is idle only when every task given so far has settled, and idle never rejects', async () => {
    const queue = new SerialQueue();
    const gate = deferred<undefined>();
    let settled = false;
    void queue.run(() => gate.promise).catch(() => undefined);
    const idle = queue.idle().then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    gate.reject(new Error('failed'));
    await idle;
    expect(settled).toBe(true);
    await expect(new SerialQueue().idle()).resolves.toBeUndefined();
  });
});
