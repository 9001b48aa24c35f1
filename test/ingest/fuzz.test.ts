import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { defaultIngestLimits, FrameIngest } from '../../src/ingest/index.js';
import { fuzzCase, samples, type Samples } from './fuzz-cases.js';

const CASES = 800;
const SPEC = {
  width: 16,
  height: 16,
  resize: 'pad',
  mean: [0.5, 0.5, 0.5],
  std: [0.25, 0.25, 0.25],
} as const;
// Small limits, so that the huge claims are refused by the limits and not by luck.
const LIMITS = { ...defaultIngestLimits(), maxPixels: 1 << 20, maxEncodedBytes: 1 << 16 };

let s: Samples;
beforeAll(async () => {
  s = await samples();
});

describe('ingest fuzz', () => {
  it(`turns ${CASES} corrupt, truncated, forged and foreign frames into RGB or an InputError`, async () => {
    const ingest = new FrameIngest(SPEC, LIMITS);
    const tensor = new Float32Array(3 * 16 * 16);
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < CASES; i++) {
      const c = fuzzCase(s, 20261206, i);
      let outcome: string;
      try {
        const rgb = await ingest.toRgb(c.frame);
        expect(rgb.length, c.name).toBe(16 * 16 * 3);
        ingest.normalise(rgb, tensor);
        expect(
          tensor.every((v) => Number.isFinite(v)),
          c.name,
        ).toBe(true);
        // Anything that decoded was within the limits it claimed.
        if (c.claimedPixels !== undefined) {
          expect(c.claimedPixels, c.name).toBeLessThanOrEqual(LIMITS.maxPixels);
        }
        if (c.frame.kind === 'encoded') {
          expect(['jpeg', 'png'], c.name).toContain(
            c.frame.data[0] === 0xff ? 'jpeg' : c.frame.data[0] === 0x89 ? 'png' : 'other',
          );
        }
        outcome = 'decoded';
      } catch (error) {
        if (!(error instanceof InputError)) {
          throw new Error(`case ${i} (${c.name}) threw ${String(error)}`, { cause: error });
        }
        expect(error.field, c.name).toMatch(/^image(\.|$)/);
        expect(error.message, c.name).toMatch(/^Expected /);
        // A raw frame over the limit is refused by the limit, before anything of its size exists.
        if (c.frame.kind === 'raw' && (c.claimedPixels ?? 0) > LIMITS.maxPixels) {
          expect(error.message, c.name).toContain('ingest.max_pixels');
        }
        outcome = 'refused';
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    // Both outcomes occur: the generator is not all junk, nor all good.
    expect(outcomes.decoded).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(CASES / 2);
  });
});
