import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../../src/cli/command.js';
import { infoCommand } from '../../../src/cli/info.js';
import type { DecodeStrategyResult, PrefillTiming } from '../../../src/bench/decode.js';
import { ModelError } from '../../../src/errors.js';
import { ROOT } from '../../helpers.js';
import { at, makeArPackage, removeArPackages } from './ar-package.js';

const run = promisify(execFile);
const CLI = `${ROOT}bin/vla-node.js`;

afterAll(removeArPackages);

function capture(): { io: CommandIo; results: unknown[]; human: string[] } {
  const results: unknown[] = [];
  const human: string[] = [];
  return {
    results,
    human,
    io: {
      json: true,
      progress: () => undefined,
      result: (v, text) => {
        results.push(v);
        human.push(text ?? '');
      },
    },
  };
}

const THREADS = ['backend.intra_op_threads=1'];

describe('info on an autoregressive package', () => {
  it('validates the manifest, checks the three roles against the graphs and decodes a chunk', async () => {
    const { io, results, human } = capture();
    expect(await infoCommand.run({ model: await makeArPackage(), set: THREADS }, io, [])).toBe(0);
    const model = at(results[0], 'model');
    expect(model.format).toBe('vla-node/model@2');
    expect(model.family).toBe('autoregressive');
    expect(at(model, 'action_tokenizer')).toMatchObject({ kind: 'uniform_bins', bins: 256 });
    expect(at(model, 'decoder')).toMatchObject({ layers: 2, heads: 4, head_dim: 16 });
    const variant = at(results[0], 'variants', 0);
    expect(Object.keys(at(variant, 'files')).sort()).toEqual(['decoder', 'encoder', 'prefill']);
    // Greedy over uniform bins: one token per action value, one decoder call per token after the
    // first (which the prefill gives).
    expect(at(variant, 'warmup')).toMatchObject({ tokens: 16, decoder_calls: 15 });
    expect(human[0]).toMatch(/family autoregressive/);
    expect(human[0]).toMatch(/uniform_bins \(256 bins/);
  });

  it('shows the instruction graph and its file when the package has one', async () => {
    const { io, results, human } = capture();
    const dir = await makeArPackage(undefined, { instruction: true });
    expect(await infoCommand.run({ model: dir, set: THREADS }, io, [])).toBe(0);
    expect(at(results[0], 'model').instruction_graph).toBe(true);
    const variant = at(results[0], 'variants', 0);
    expect(Object.keys(at(variant, 'files')).sort()).toEqual([
      'decoder',
      'encoder',
      'instruction',
      'prefill',
    ]);
    expect(at(variant, 'files', 'instruction').path).toBe('instruction.onnx');
    expect(at(variant, 'warmup')).toMatchObject({ tokens: 16, decoder_calls: 15 });
    expect(human[0]).toMatch(/instruction: its keys and values cached across frames/);
    expect(human[0]).toMatch(/instruction instruction\.onnx/);
  });

  it('fails with the typed error naming the variant and the field when a graph disagrees', async () => {
    const dir = await makeArPackage((m) => {
      at(m, 'graphs', 'encoder', 'outputs', 1).name = 'attention';
    });
    const error = await infoCommand
      .run({ model: dir, set: THREADS }, capture().io, [])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('MODEL_MISMATCH');
    expect((error as ModelError).field).toBe('manifest.graphs.encoder.outputs[1].name');
    expect((error as ModelError).message).toMatch(/^variant fp32: Expected/);
  });

  it('refuses a manifest the schema refuses, naming the field', async () => {
    const dir = await makeArPackage((m) => {
      at(m, 'action_tokenizer').bins = 1;
    });
    const error = await infoCommand
      .run({ model: dir, set: THREADS }, capture().io, [])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).field).toBe('manifest.action_tokenizer.bins');
  });
});

interface DecodeReport {
  model: string;
  variant: string;
  episodes: number;
  seed: number;
  results: DecodeStrategyResult[];
  prefill: PrefillTiming;
}

async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  const error = (await run(process.execPath, [CLI, 'bench', 'decode', ...args]).then(
    () => undefined,
    (e: unknown) => e,
  )) as { code?: number; stderr?: string } | undefined;
  expect(error).toBeDefined();
  return { code: error?.code ?? 0, stderr: error?.stderr ?? '' };
}

describe('vla-node bench decode', () => {
  it('prints one JSON report: every strategy on the same seeds, each exactly greedy', async () => {
    const dir = await makeArPackage();
    const { stdout } = await run(process.execPath, [
      CLI,
      'bench',
      'decode',
      '--model',
      dir,
      '--episodes',
      '1',
      '--window',
      '4',
      '--json',
    ]);
    const report = JSON.parse(stdout) as DecodeReport;
    expect(report).toMatchObject({ model: 'ar-fixture', variant: 'fp32', episodes: 1, seed: 1 });
    expect(report.results.map((r) => r.strategy)).toEqual(['greedy', 'jacobi', 'speculative']);
    const [greedy, ...fast] = report.results as [DecodeStrategyResult, ...DecodeStrategyResult[]];
    expect(greedy.window).toBe(1);
    expect(greedy.tokens_per_chunk).toBe(16);
    expect(greedy.decoder_calls_per_chunk).toBe(15);
    for (const r of report.results) {
      expect(r.same_chunks_as_greedy).toBe(true);
      expect(r.chunks).toBeGreaterThan(0);
      expect(r.chunk_p95_ms).toBeGreaterThanOrEqual(r.chunk_p50_ms);
    }
    for (const r of fast) {
      expect(r.window).toBe(4);
      // Exact decoding: the same closed loop, never more sequential calls than greedy.
      expect(r.success_rate).toBe(greedy.success_rate);
      expect(r.mean_steps).toBe(greedy.mean_steps);
      expect(r.decoder_calls_per_chunk).toBeLessThanOrEqual(greedy.decoder_calls_per_chunk);
    }
  });

  it('times the prefill with the instruction cached and recomputed', async () => {
    const plain = JSON.parse(
      (
        await run(process.execPath, [
          CLI,
          'bench',
          'decode',
          '--model',
          await makeArPackage(),
          '--episodes',
          '1',
          '--json',
        ])
      ).stdout,
    ) as DecodeReport;
    expect(plain.prefill).toMatchObject({
      instruction_graph: false,
      visual_tokens: 144,
      instruction_cache: null,
    });
    expect(plain.prefill.recompute_p50_ms).toBe(plain.prefill.p50_ms);
    const cached = JSON.parse(
      (
        await run(process.execPath, [
          CLI,
          'bench',
          'decode',
          '--model',
          await makeArPackage(undefined, { instruction: true }),
          '--episodes',
          '1',
          '--json',
        ])
      ).stdout,
    ) as DecodeReport;
    // The same closed loop either way: the instruction graph changes where the words are made.
    expect(cached.results.map((r) => [r.success_rate, r.mean_steps, r.tokens_per_chunk])).toEqual(
      plain.results.map((r) => [r.success_rate, r.mean_steps, r.tokens_per_chunk]),
    );
    expect(cached.prefill.instruction_graph).toBe(true);
    expect(cached.prefill.p50_ms).toBeGreaterThan(0);
    expect(cached.prefill.recompute_p50_ms).toBeGreaterThan(0);
    // One episode, one instruction (and the warm-up's): every other frame reuses the cache.
    const stats = cached.prefill.instruction_cache;
    expect(stats?.misses).toBeLessThanOrEqual(2);
    expect(stats?.hits).toBeGreaterThan(stats?.misses ?? 0);
  });

  it("prunes before the prefill with the node's pruning parameters", async () => {
    const { stdout } = await run(process.execPath, [
      CLI,
      'bench',
      'decode',
      '--model',
      await makeArPackage(),
      '--episodes',
      '1',
      '--strategy',
      'saliency',
      '--keep-ratio',
      '0.25',
      '--json',
    ]);
    const report = JSON.parse(stdout) as DecodeReport;
    for (const r of report.results) {
      expect(r.mean_kept_tokens).toBe(36);
      expect(r.final_keep_ratio).toBe(0.25);
      expect(r.same_chunks_as_greedy).toBe(true);
    }
  });

  it('refuses a pruning parameter out of its range, naming the parameter', async () => {
    const { code, stderr } = await fails(['--model', await makeArPackage(), '--keep-ratio', '1.5']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/INVALID_CONFIG/);
    expect(stderr).toMatch(/pruning.keep_ratio but received 1.5/);
  });

  it('refuses a precision the package has no variant of', async () => {
    const { code, stderr } = await fails(['--model', await makeArPackage(), '--precision', 'int8']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/INVALID_MANIFEST/);
    expect(stderr).toMatch(/Expected a variant with precision int8 in ar-fixture but it has fp32/);
  });

  it('refuses a bad flag value with the flag named', async () => {
    const { code, stderr } = await fails(['--model', await makeArPackage(), '--episodes', '0']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/INVALID_CONFIG/);
    expect(stderr).toMatch(/--episodes but received 0/);
  });

  it('refuses an unknown flag with its usage', async () => {
    const { code, stderr } = await fails(['--windows', '4']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown option '--windows'/);
  });

  it('refuses a package that is not there with the typed error', async () => {
    const { code, stderr } = await fails(['--model', `${ROOT}no-such-package`]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/MODEL_FILE/);
  });
});
