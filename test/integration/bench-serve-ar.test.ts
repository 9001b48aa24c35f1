/**
 * `vla-node bench serve` with an autoregressive package (the built CLI, the fixture package):
 * N robots against one request at a time, batch at once and continuous batching, with the
 * counts that tell the modes apart. Figures are not asserted, only what each run measured.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArBenchServeReport } from '../../src/cli/bench-serve-ar.js';
import { ROOT } from '../helpers.js';
import { makeArPackage, removeArPackages } from '../policy/autoregressive/ar-package.js';

const run = promisify(execFile);
const CLI = `${ROOT}bin/vla-node.js`;
let pkg: string;

beforeAll(async () => {
  pkg = await makeArPackage();
});
afterAll(removeArPackages);

describe('vla-node bench serve with an autoregressive package', () => {
  it('measures each robot count one at a time, batched at once and continuously', async () => {
    const { stdout } = await run(process.execPath, [
      CLI,
      'bench',
      'serve',
      '--model',
      pkg,
      '--clients',
      '1,3',
      '--modes',
      'all',
      '--requests',
      '4',
      '--warmup',
      '1',
      '--set',
      'backend.intra_op_threads=1',
      '--json',
    ]);
    const report = JSON.parse(stdout) as ArBenchServeReport;
    expect(report.family).toBe('autoregressive');
    expect(report.model).toBe('ar-fixture');
    expect(report.tokens_per_chunk).toBe(16);
    expect(report.runs.map((r) => [r.clients, r.mode, r.max_batch])).toEqual([
      [1, 'single', 1],
      [1, 'batched', 4],
      [1, 'continuous', 4],
      [3, 'single', 1],
      [3, 'batched', 4],
      [3, 'continuous', 4],
    ]);
    for (const r of report.runs) {
      expect(r.chunks).toBe(r.clients * 4);
      expect(r.errors).toEqual({});
      expect(r.chunks_per_s).toBeGreaterThan(0);
      expect(r.round_trip_ms.count).toBe(r.chunks);
      expect(r.round_trip_ms.p99).toBeGreaterThanOrEqual(r.round_trip_ms.p50);
      // Greedy: one decoder call per token after the first, whatever the batching.
      expect(r.decoder_calls_per_chunk).toBe(15);
      if (r.mode === 'continuous') {
        expect(r.continuous?.admitted).toBe(r.chunks);
        expect(r.server.batches.count).toBe(0);
      } else {
        expect(r.continuous).toBeNull();
        if (r.mode === 'batched') expect(r.server.batches.count).toBeGreaterThan(0);
      }
    }
    expect(report.summary.map((s) => [s.clients, s.mode])).toEqual(
      report.runs.map((r) => [r.clients, r.mode]),
    );
  });

  it('refuses an unknown mode and a bad robot count naming the flag', async () => {
    for (const [flag, value] of [
      ['--modes', 'beam'],
      ['--clients', '2,0'],
    ] as const) {
      const error = await run(process.execPath, [
        CLI,
        'bench',
        'serve',
        '--model',
        pkg,
        flag,
        value,
      ]).then(
        () => undefined,
        (e: unknown) => e as { code: number; stderr: string },
      );
      expect(error?.code).toBe(1);
      expect(error?.stderr).toContain(flag.slice(2));
      expect(error?.stderr).toMatch(/Expected /);
    }
  });
});
