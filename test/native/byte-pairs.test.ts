/**
 * countBytePairs (a JPEG's start-of-scan markers, src/ingest/jpeg-scans.ts): the reference against
 * a plain definition, and every native build against the reference (its argument checks are in
 * kernels.test.ts's table of bad calls).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { referenceKernels } from '../../src/native/index.js';
import { NATIVE_BUILDS, skipWithoutNative } from './builds.js';

skipWithoutNative('native countBytePairs against the reference');

/** min(count, limit + 1) of the positions i >= from with bytes[i], bytes[i + 1] = first, second. */
function definition(
  bytes: Uint8Array,
  from: number,
  first: number,
  second: number,
  limit: number,
): number {
  let count = 0;
  for (let i = from; i + 1 < bytes.length; i++) {
    if (bytes[i] === first && bytes[i + 1] === second) count++;
  }
  return Math.min(count, limit + 1);
}

/** Bytes drawn mostly from `first` and `second` (so pairs are many), at an offset in their buffer. */
const pairCase = fc
  .record({
    alphabet: fc.constantFrom([0xff, 0xda], [0xff, 0xda, 0x00], [0xff], [0xda, 0x00, 0x12]),
    length: fc.integer({ min: 0, max: 20_000 }),
    offset: fc.integer({ min: 0, max: 7 }),
    seed: fc.integer(),
    limit: fc.integer({ min: 0, max: 6000 }),
    fromShare: fc.double({ min: 0, max: 1, noNaN: true }),
    same: fc.boolean(),
  })
  .map(({ alphabet, length, offset, seed, limit, fromShare, same }) => {
    const buffer = new Uint8Array(length + offset);
    let s = seed >>> 0;
    for (let i = 0; i < buffer.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      buffer[i] = alphabet[s % alphabet.length] as number;
    }
    const bytes = buffer.subarray(offset);
    // first === second: pairs overlap (FF FF FF holds two).
    const [first, second] = same ? [0xff, 0xff] : [0xff, 0xda];
    return { bytes, from: Math.floor(fromShare * length), first, second, limit };
  });

describe('countBytePairs (typescript reference)', () => {
  it('counts the pairs from `from` on, up to limit + 1', () => {
    fc.assert(
      fc.property(pairCase, ({ bytes, from, first, second, limit }) => {
        expect(referenceKernels.countBytePairs(bytes, from, first, second, limit)).toBe(
          definition(bytes, from, first, second, limit),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('counts overlapping pairs of one byte value, and none in fewer than two bytes', () => {
    const ff = new Uint8Array(5).fill(0xff);
    expect(referenceKernels.countBytePairs(ff, 0, 0xff, 0xff, 100)).toBe(4);
    expect(referenceKernels.countBytePairs(ff, 3, 0xff, 0xff, 100)).toBe(1);
    expect(referenceKernels.countBytePairs(ff, 5, 0xff, 0xff, 100)).toBe(0);
    expect(referenceKernels.countBytePairs(Uint8Array.of(0xff), 0, 0xff, 0xff, 100)).toBe(0);
  });
});

for (const [build, native] of NATIVE_BUILDS) {
  describe(`countBytePairs (${build} build) against the reference`, () => {
    it('gives the same count', () => {
      fc.assert(
        fc.property(pairCase, ({ bytes, from, first, second, limit }) => {
          expect(native.countBytePairs(bytes, from, first, second, limit)).toBe(
            referenceKernels.countBytePairs(bytes, from, first, second, limit),
          );
        }),
        { numRuns: 200 },
      );
    });

    it('reads a megabyte crowded with the first byte, past every block boundary', () => {
      // FF 00 pairs with an FF DA every 4099 bytes (never on a 4096-byte block's edge twice).
      const bytes = new Uint8Array(1 << 20);
      for (let i = 0; i < bytes.length; i += 2) bytes[i] = 0xff;
      let planted = 0;
      for (let i = 4095; i + 1 < bytes.length; i += 4099) {
        bytes[i] = 0xff;
        bytes[i + 1] = 0xda;
        planted++;
      }
      expect(native.countBytePairs(bytes, 0, 0xff, 0xda, 1e6)).toBe(planted);
      expect(native.countBytePairs(bytes, 0, 0xff, 0xda, 100)).toBe(101);
      expect(native.countBytePairs(bytes, 0, 0xff, 0xda, 1e6)).toBe(
        referenceKernels.countBytePairs(bytes, 0, 0xff, 0xda, 1e6),
      );
    });
  });
}
