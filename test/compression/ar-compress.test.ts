import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../src/cli/command.js';
import { compressCommand } from '../../src/cli/compress.js';
import { compressArPackage, type ArCompressOptions } from '../../src/compression/autoregressive.js';
import { ConfigError, InputError } from '../../src/errors.js';
import { loadArManifest, selectArVariant } from '../../src/model/ar-manifest.js';
import { readArPackage } from '../../src/policy/autoregressive/package.js';
import { ArPolicy } from '../../src/policy/autoregressive/policy.js';
import { tabletopEvaluator } from '../../src/sim/evaluator.js';
import { makeArPackage, removeArPackages } from '../policy/autoregressive/ar-package.js';

afterAll(removeArPackages);

function options(model: string, overrides: Partial<ArCompressOptions> = {}): ArCompressOptions {
  return {
    model,
    heldOut: 6,
    episodes: 1,
    seed: 1,
    chunkAgreement: 0.9,
    errorThreshold: 0.02,
    successTolerance: 3,
    latencyRounds: 4,
    progress: () => undefined,
    evaluator: tabletopEvaluator(),
    ...overrides,
  };
}

describe('compress of an autoregressive package (dynamic INT8)', () => {
  it('quantizes the three graphs, gates them against fp32 and adds the variant and its report', async () => {
    const dir = await makeArPackage();
    const report = await compressArPackage(options(dir));
    expect(report.variant).toBe('int8-dynamic');
    for (const role of ['encoder', 'prefill', 'decoder'] as const) {
      expect(report.quantized_nodes[role]).toBeGreaterThan(0);
      // The patch embedding and the logits heads stay in float by default.
      expect(report.excluded[role]).toHaveLength(1);
    }
    // These weights' greedy margins survive INT8 weights (see ar-decoder-int8.test.ts).
    expect(report.held_out.chunks_equal_to_fp32).toBe(1);
    expect(report.action_error.max_abs).toEqual([0, 0]);
    expect(report.closed_loop.int8_success_rate).toBe(report.closed_loop.fp32_success_rate);
    expect(report.size_bytes.ratio).toBeLessThan(1);
    expect(report.gate).toMatchObject({ provider: 'cpu', passed: true, reasons: [] });

    const written = JSON.parse(
      await readFile(join(dir, 'reports/int8-dynamic.json'), 'utf8'),
    ) as unknown;
    expect(written).toEqual(report);
    const int8 = await readArPackage(dir, { precision: 'int8' });
    expect(int8.variant.name).toBe('int8-dynamic');
    expect(int8.files.decoder).toBe('decoder.int8-dynamic.onnx');
    expect((await readdir(dir)).filter((f) => f.startsWith('.compress'))).toEqual([]);

    // Again: the variant is replaced, not added twice.
    await compressArPackage(options(dir));
    const pkg = await loadArManifest(dir);
    expect(pkg.manifest.variants.map((v) => v.name)).toEqual(['fp32', 'int8-dynamic']);
  });

  it('quantizes the instruction graph too, where the package has one', async () => {
    const dir = await makeArPackage(undefined, { instruction: true });
    const report = await compressArPackage(options(dir));
    for (const role of ['encoder', 'instruction', 'prefill', 'decoder'] as const)
      expect(report.quantized_nodes[role]).toBeGreaterThan(0);
    // No logits head to keep in float there.
    expect(report.excluded.instruction).toEqual([]);
    expect(report.held_out.chunks_equal_to_fp32).toBe(1);
    expect(report.gate).toMatchObject({ passed: true, reasons: [] });
    const int8 = await readArPackage(dir, { precision: 'int8' });
    expect(int8.files.instruction).toBe('instruction.int8-dynamic.onnx');
    expect(int8.files.prefill).toBe('prefill.int8-dynamic.onnx');
    const policy = await ArPolicy.load(dir, {}, { precision: 'int8' });
    try {
      expect(policy.graphs.instructionSession).toBeDefined();
    } finally {
      await policy.close();
    }
  });

  it('refuses --exclude naming no node, leaving the package as it was', async () => {
    const dir = await makeArPackage();
    const before = await readFile(join(dir, 'manifest.json'), 'utf8');
    const error = await compressArPackage(options(dir, { exclude: ['/no/such/MatMul'] })).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe('exclude');
    expect(await readFile(join(dir, 'manifest.json'), 'utf8')).toBe(before);
  });

  it('refuses a mode other than dynamic from the command line', async () => {
    const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
    const error = await compressCommand
      .run({ model: await makeArPackage(), mode: 'static' }, io, [])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('mode');
  });
});

describe('auto precision of an autoregressive package', () => {
  async function withInt8Report(gate: { passed: boolean; ratio: number }): Promise<string> {
    const dir = await makeArPackage();
    await compressArPackage(options(dir));
    const path = join(dir, 'reports/int8-dynamic.json');
    const report = JSON.parse(await readFile(path, 'utf8')) as {
      gate: { passed: boolean };
      latency: { ratio: { total: number } };
    };
    report.gate.passed = gate.passed;
    report.latency.ratio.total = gate.ratio;
    await writeFile(path, JSON.stringify(report));
    return dir;
  }

  it('picks the INT8 variant when its report passed the gate and is faster', async () => {
    const pkg = await loadArManifest(await withInt8Report({ passed: true, ratio: 0.6 }));
    expect(selectArVariant(pkg, 'auto').name).toBe('int8-dynamic');
    expect(selectArVariant(pkg, 'fp32').name).toBe('fp32');
  });

  it('keeps fp32 when the INT8 variant failed its gate or is not faster', async () => {
    for (const gate of [
      { passed: false, ratio: 0.6 },
      { passed: true, ratio: 1.2 },
    ]) {
      const pkg = await loadArManifest(await withInt8Report(gate));
      expect(selectArVariant(pkg, 'auto').name).toBe('fp32');
    }
  });
});
