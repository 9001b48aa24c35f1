import { describe, expect, it } from 'vitest';
import { DraftBook } from '../../../src/policy/autoregressive/drafts.js';

describe('DraftBook', () => {
  it('drafts from the stream’s previous chunk, shifted by the steps its stamps tell', () => {
    const book = new DraftBook(5, 10); // 10 Hz: one step per 100 ms
    expect(book.draft('left', 0)).toBeUndefined();
    const chunk = Float32Array.from([1, 2, 3, 4]);
    book.keep('left', chunk, 1000);
    chunk[0] = 99; // kept as a copy
    expect(book.draft('left', 1300)).toEqual({
      actions: Float32Array.from([1, 2, 3, 4]),
      stepsExecuted: 3,
    });
    expect(book.draft('left', 1000 + 149)?.stepsExecuted).toBe(1);
    // No stamp on either side, or time going backwards: the configured steps.
    expect(book.draft('left', undefined)?.stepsExecuted).toBe(5);
    expect(book.draft('left', 900)?.stepsExecuted).toBe(5);
    book.keep('right', chunk, undefined);
    expect(book.draft('right', 2000)?.stepsExecuted).toBe(5);
    expect(book.draft('other', 2000)).toBeUndefined();
  });

  it('forgets one stream or all, and keeps at most 256 streams, the oldest dropped first', () => {
    const book = new DraftBook(1, 30);
    const chunk = new Float32Array(2);
    for (let i = 0; i < 257; i++) book.keep(`s${i}`, chunk, undefined);
    expect(book.draft('s0', undefined)).toBeUndefined();
    expect(book.draft('s1', undefined)).toBeDefined();
    expect(book.draft('s256', undefined)).toBeDefined();
    // Keeping a stream again makes it the newest: s1 survives the next insertion, s2 does not.
    book.keep('s1', chunk, undefined);
    book.keep('s257', chunk, undefined);
    expect(book.draft('s1', undefined)).toBeDefined();
    expect(book.draft('s2', undefined)).toBeUndefined();
    book.forget('s1');
    expect(book.draft('s1', undefined)).toBeUndefined();
    expect(book.draft('s3', undefined)).toBeDefined();
    book.forget();
    expect(book.draft('s3', undefined)).toBeUndefined();
  });
});
