import { describe, expect, it } from 'vitest';
import { memoryReport, type MemorySample } from '../../src/bench/soak.js';
import { runSoak, type SoakReport } from '../../src/cli/bench-soak.js';
import { ConfigError } from '../../src/errors.js';

function series(rss: readonly number[]): MemorySample[] {
  return rss.map((r, t) => ({ t_s: t, rss_mb: r, heap_used_mb: 1, external_mb: 1 }));
}

describe('soak memory report', () => {
  it('measures growth from the first sample after the warm-up', () => {
    const r = memoryReport(series([100, 150, 200, 200, 210, 205]), 2);
    expect(r.rss_mb).toEqual({
      first: 100,
      after_warmup: 200,
      last: 205,
      max: 210,
      max_after_warmup: 210,
    });
    expect(r.growth_after_warmup_pct).toBe(2.5);
    expect(r.peak_growth_after_warmup_pct).toBe(5);
    expect(r.samples).toBe(6);
  });

  it('uses the last sample when the run is shorter than the warm-up', () => {
    const r = memoryReport(series([100, 120]), 60);
    expect(r.rss_mb.after_warmup).toBe(120);
    expect(r.growth_after_warmup_pct).toBe(0);
  });
});

describe('bench soak', () => {
  it('runs the closed loop for the given time and reports memory samples', async () => {
    let result: SoakReport | undefined;
    const io = {
      json: true,
      progress: () => undefined,
      result: (value: object) => {
        result = value as SoakReport;
      },
    };
    const code = await runSoak({ minutes: '0.05', 'warmup-s': '1', 'max-growth-pct': '1000' }, io);
    expect(code).toBe(0);
    expect(result?.inferences).toBeGreaterThan(0);
    expect(result?.inference_errors).toBe(0);
    expect(result?.memory.samples).toBeGreaterThanOrEqual(2);
    expect(result?.memory.rss_mb.max).toBeGreaterThan(0);
    expect(result?.flat).toBe(true);
  });

  it('refuses a non-positive duration', async () => {
    const io = { json: false, progress: () => undefined, result: () => undefined };
    await expect(
      runSoak({ minutes: '0', 'warmup-s': '60', 'max-growth-pct': '5' }, io),
    ).rejects.toThrow(ConfigError);
  });
});
