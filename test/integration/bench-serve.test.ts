import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchServeReport } from '../../src/cli/bench-serve.js';
import { ROOT } from '../helpers.js';
import { copyWithManifest, removeCopies, type JsonObject } from '../model/package.js';

const run = promisify(execFile);
const CLI = `${ROOT}bin/vla-node.js`;

afterAll(removeCopies);

/** The shipped package with a manifest whose graph tensors all start with `dim`. */
function packageWith(dim: 'batch' | 1): Promise<string> {
  return copyWithManifest((m) => {
    const graphs = m.graphs as Record<string, Record<string, JsonObject[]>>;
    for (const graph of Object.values(graphs)) {
      for (const tensors of Object.values(graph)) {
        for (const t of tensors) (t.shape as unknown[])[0] = dim;
      }
    }
  });
}

async function bench(args: readonly string[]): Promise<BenchServeReport> {
  const { stdout } = await run(process.execPath, [
    CLI,
    'bench',
    'serve',
    '--clients',
    '3',
    '--requests',
    '20',
    '--warmup',
    '2',
    '--json',
    ...args,
  ]);
  return JSON.parse(stdout) as BenchServeReport;
}

describe('vla-node bench serve', () => {
  it('measures one request at a time and batched, clients on a thread of their own', async () => {
    const report = await bench(['--model', await packageWith('batch'), '--max-batch', '3']);
    expect(report.batch_dimension).toBe('batch');
    // bin/vla-node.js relaunched the command with the server's V8 flags.
    expect(report.node_flags).toEqual(expect.arrayContaining(['--max-semi-space-size=1']));
    // The model alone, by batch size: what a batch saves without sockets or decode.
    // Up to the batched runs' largest batch (--max-batch 3).
    expect(report.model_batch_ms.map((c) => c.size)).toEqual([1, 2, 3]);
    expect(report.model_batch_ms[0]?.relative).toBe(1);
    for (const c of report.model_batch_ms) {
      expect(c.per_observation_ms).toBeGreaterThan(0);
      expect(c.per_observation_ms).toBeCloseTo(c.batch_ms / c.size, 2);
    }
    expect(report.runs.map((r) => [r.mode, r.max_batch, r.client_thread])).toEqual([
      ['single', 1, 'worker'],
      ['batched', 3, 'worker'],
    ]);
    for (const r of report.runs) {
      expect(r.requests).toBe(60);
      expect(r.errors).toEqual({});
      expect(r.throughput_rps).toBeGreaterThan(0);
      expect(r.round_trip_ms.p99).toBeGreaterThan(0);
    }
    expect(report.runs[0]?.server.batches.count).toBe(0);
    expect(report.runs[1]?.server.batches.count).toBeGreaterThan(0);
    expect(report.summary.single_rps).toHaveLength(1);
    expect(report.summary.batched_p99_ms).toHaveLength(1);
    expect(report.summary.speedup).toBeGreaterThan(0);
  });

  it('measures one request at a time only for a model without a batch dimension', async () => {
    const report = await bench(['--model', await packageWith(1), '--client-thread', 'main']);
    expect(report.batch_dimension).toBeNull();
    expect(report.runs.map((r) => [r.mode, r.client_thread])).toEqual([['single', 'main']]);
    expect(report.summary.speedup).toBeNull();
    expect(report.model_batch_ms).toEqual([]); // nothing to batch
  });

  it('runs one mode only with --modes, sends JPEG frames with --encoding jpeg, and rejects an unknown mode or encoding by name', async () => {
    // Clients on their own thread (the default): sharp encodes there, beside the server's decode.
    const report = await bench(['--modes', 'batched', '--batch-calls', '0', '--encoding', 'jpeg']);
    expect(report.runs.map((r) => [r.mode, r.client_thread])).toEqual([['batched', 'worker']]);
    expect(report.summary.speedup).toBeNull();
    expect(report.model_batch_ms).toEqual([]); // skipped with --batch-calls 0
    expect(report.frame).toEqual({ width: 128, height: 128, encoding: 'jpeg' });
    expect(report.runs[0]?.errors).toEqual({});
    expect(report.runs[0]?.requests).toBe(60);
    await expect(bench(['--modes', 'fast'])).rejects.toMatchObject({
      stderr: expect.stringMatching(
        /Expected both\|single\|batched for --modes but received "fast"/,
      ) as string,
    });
    await expect(bench(['--encoding', 'png'])).rejects.toMatchObject({
      stderr: expect.stringMatching(
        /Expected rgb8\|jpeg for --encoding but received "png"/,
      ) as string,
    });
  });
});
