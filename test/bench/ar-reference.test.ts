import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AR_TORCH_MODULES,
  arReferenceMarkdown,
  compareTokens,
  measureArReference,
  type ArReferenceReport,
} from '../../src/bench/ar-reference.js';
import { PYTHON, ROOT, torchMissing } from '../helpers.js';

const TINY_VLA_AR = join(ROOT, 'models', 'tiny-vla-ar');

describe('greedy tokens, node against PyTorch', () => {
  it('counts equal tokens and chunks and names the first difference', () => {
    expect(
      compareTokens(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
      ),
    ).toEqual({ chunks: 2, chunks_equal: 2, tokens: 6, tokens_equal: 6, first_difference: null });
    expect(
      compareTokens(
        [
          [1, 2, 3],
          [4, 5, 6],
          [7, 8, 9],
        ],
        [
          [1, 2, 3],
          [4, 9, 6],
          [7, 8, 0],
        ],
      ),
    ).toEqual({
      chunks: 3,
      chunks_equal: 1,
      tokens: 9,
      tokens_equal: 7,
      first_difference: { chunk: 1, index: 1, node: 5, pytorch: 9 },
    });
  });

  it('counts a missing token or chunk as a difference, never as agreement', () => {
    expect(compareTokens([[1, 2, 3]], [[1, 2]])).toEqual({
      chunks: 1,
      chunks_equal: 0,
      tokens: 3,
      tokens_equal: 2,
      first_difference: { chunk: 0, index: 2, node: 3, pytorch: null },
    });
    expect(compareTokens([[1], [2]], [[1]])).toMatchObject({
      chunks: 2,
      chunks_equal: 1,
      tokens_equal: 1,
      first_difference: { chunk: 1, index: 0, node: 2, pytorch: null },
    });
    expect(compareTokens([[1]], [])).toMatchObject({ chunks_equal: 0, tokens_equal: 0 });
  });
});

describe('autoregressive package against PyTorch eager', () => {
  const settings = { frames: 6, repeats: 1, seed: 3, threads: 1 };

  it('times greedy, Jacobi and speculative decoding on the same observations, or says why PyTorch cannot compare', async () => {
    const r = await measureArReference(TINY_VLA_AR, { ...settings, python: '/no/such/python' });
    expect(r.model).toBe('tiny-vla-ar');
    expect(r.frames).toBe(6);
    expect(r.episodes).toBeGreaterThanOrEqual(2);
    expect(r.tokens_per_chunk).toBe(32);
    expect(r.execute_steps).toBe(4);
    expect(r.window).toBe(8);
    // The node keeps the words' keys and values across frames exactly when the package says how.
    const manifest = JSON.parse(await readFile(join(TINY_VLA_AR, 'manifest.json'), 'utf8')) as {
      graphs: Record<string, unknown>;
    };
    expect(r.instruction_cache).toBe('instruction' in manifest.graphs);
    expect(r.node.median.p50).toBeGreaterThan(0);
    expect(r.strategies.map((s) => s.strategy)).toEqual(['greedy', 'jacobi', 'speculative']);
    const [greedy, jacobi, speculative] = r.strategies;
    // Greedy: one decoder call per token after the prefill's first.
    expect(greedy?.decoder_calls_per_chunk).toBe(31);
    // The faster decoders are exact: greedy's tokens in fewer sequential calls.
    expect(jacobi?.same_tokens_as_greedy).toBe(true);
    expect(speculative?.same_tokens_as_greedy).toBe(true);
    expect(jacobi?.decoder_calls_per_chunk).toBeLessThan(31);
    expect(speculative?.decoder_calls_per_chunk).toBeLessThan(31);
    expect(r.pytorch).toEqual({ available: false, reason: 'Python not found at /no/such/python' });
    const md = arReferenceMarkdown(r).join('\n');
    expect(md).toContain('## 9. PyTorch eager, autoregressive (tiny-vla-ar');
    expect(md).toContain('| PyTorch eager | skipped: Python not found at /no/such/python |');
  }, 120_000);

  it('decodes the tokens PyTorch decodes from the same weights and observations', async () => {
    const why = await torchMissing(AR_TORCH_MODULES);
    if (why !== undefined) {
      console.log(`skipping the autoregressive PyTorch comparison: ${why}`);
      return;
    }
    const r = await measureArReference(TINY_VLA_AR, { ...settings, python: PYTHON });
    if (!r.pytorch.available) throw new Error(r.pytorch.reason);
    // The committed checkpoint is the one the three ONNX graphs were exported from: greedy
    // decoding is a chain of argmaxes, so every token must agree.
    expect(r.pytorch.tokens).toEqual({
      chunks: 6,
      chunks_equal: 6,
      tokens: 6 * 32,
      tokens_equal: 6 * 32,
      first_difference: null,
    });
    expect(r.pytorch.max_abs_diff_vs_node).toBeLessThan(1e-6);
    expect(r.pytorch.decoder_calls_per_chunk).toBe(31);
    expect(r.pytorch.threads).toBe(1);
    expect(r.pytorch.latency.median.p50).toBeGreaterThan(0);
    expect(r.pytorch.node_speedup_p50).toBeGreaterThan(0);
    expect(arReferenceMarkdown(r).join('\n')).toContain(
      `| ${6 * 32} / ${6 * 32} tokens (6 / 6 chunks) |`,
    );
  }, 180_000);

  it('shows a disagreement in the section rather than hiding it', () => {
    const base: ArReferenceReport = {
      model: 'm',
      frames: 1,
      episodes: 1,
      tokens_per_chunk: 2,
      execute_steps: 1,
      window: 8,
      instruction_cache: false,
      threads: 1,
      node: {
        repeats: [],
        median: { p50: 1, p95: 2, p99: 2, max: 2 },
        p50_spread_pct: 0,
      },
      strategies: [
        {
          strategy: 'greedy',
          chunk_p50_ms: 1,
          chunk_p95_ms: 2,
          decoder_calls_per_chunk: 1,
          same_tokens_as_greedy: true,
        },
        {
          strategy: 'jacobi',
          chunk_p50_ms: 1,
          chunk_p95_ms: 2,
          decoder_calls_per_chunk: 1,
          same_tokens_as_greedy: false,
        },
      ],
      pytorch: {
        available: true,
        torch: '1.13',
        threads: 1,
        latency: { repeats: [], median: { p50: 4, p95: 5, p99: 5, max: 5 }, p50_spread_pct: 0 },
        max_abs_diff_vs_node: 0.01,
        node_speedup_p50: 4,
        decoder_calls_per_chunk: 1,
        tokens: compareTokens([[1, 2]], [[1, 3]]),
      },
    };
    const md = arReferenceMarkdown(base, 10).join('\n');
    expect(md).toContain('## 10. PyTorch eager, autoregressive (m:');
    expect(md).toContain('| 1 / 2 tokens (0 / 1 chunks) |');
    expect(md).toContain('First token that differs: chunk 0, position 1 (node 2, PyTorch 3).');
    expect(md).toContain('| node, jacobi decoding | 1 ms | 2 ms | | 1 | **no** |');
  });
});
