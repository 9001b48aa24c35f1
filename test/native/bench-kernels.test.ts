import { describe, expect, it } from 'vitest';
import { benchKernels, benchKernelsCommand } from '../../src/cli/bench-kernels.js';
import type { CommandIo } from '../../src/cli/command.js';
import { ConfigError } from '../../src/errors.js';
import { SYNC_KERNEL_NAMES, nativeKernels } from '../../src/native/index.js';

describe('bench-kernels', () => {
  it('times every kernel on both backends and finds identical outputs', () => {
    const report = benchKernels(5);
    expect(report.backend).toBe(nativeKernels === undefined ? 'typescript' : 'native');
    expect(Object.keys(report.kernels)).toEqual([...SYNC_KERNEL_NAMES]);
    for (const name of SYNC_KERNEL_NAMES) {
      const t = report.kernels[name];
      expect(t.reference_us).toBeGreaterThan(0);
      expect(t.as_called.reference_us).toBeGreaterThan(0);
      if (nativeKernels === undefined) {
        expect(t).toMatchObject({ native_us: null, speedup: null, identical: null });
        expect(t.as_called).toMatchObject({ native_us: null, speedup: null });
      } else {
        expect(t.identical).toBe(true);
        expect(t.native_us).toBeGreaterThan(0);
        expect(t.as_called.native_us).toBeGreaterThan(0);
        expect(t.speedup).toBeCloseTo(t.reference_us / (t.native_us ?? 1), 6);
      }
    }
  });

  it('reports through io.result and rejects a bad --iterations', async () => {
    const results: object[] = [];
    const io: CommandIo = {
      json: true,
      progress: () => undefined,
      result: (value) => results.push(value),
    };
    await expect(benchKernelsCommand.run({ iterations: '3' }, io, [])).resolves.toBe(0);
    expect(results[0]).toHaveProperty('kernels.topK.reference_us');
    const bad = benchKernelsCommand.run({ iterations: '0' }, io, []);
    await expect(bad).rejects.toBeInstanceOf(ConfigError);
    await expect(bad).rejects.toMatchObject({
      field: 'iterations',
      message: 'Expected a positive integer for --iterations but received "0"',
    });
  });
});
