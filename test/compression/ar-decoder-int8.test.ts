import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultExclusions,
  planQuantization,
  quantizeModel,
} from '../../src/compression/quantize.js';
import { decodeChunk } from '../../src/policy/autoregressive/decode.js';
import { DecoderGraphs } from '../../src/policy/autoregressive/decoder-graphs.js';
import { UniformBinTokenizer } from '../../src/policy/autoregressive/uniform-bins.js';
import { encodeOnnx, graphOf, loadOnnx } from '../../src/util/onnx-graph.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/ar-decoder/', import.meta.url));

interface Reference {
  vocab: number;
  horizon: number;
  action_dim: number;
  first_action_position: number;
  cases: {
    visual_tokens: number[];
    token_positions: number[];
    instruction_ids: number[];
    state: number[];
    tokens: number[];
  }[];
}

const open: DecoderGraphs[] = [];
const temps: string[] = [];
afterAll(async () => {
  await Promise.all(open.map((g) => g.close()));
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

/** The dynamic INT8 graph of `role` (the logits head kept in float, as for the v1 policy). */
async function int8(role: 'prefill' | 'decoder'): Promise<Uint8Array> {
  const model = await loadOnnx(`${FIXTURE}${role}.onnx`);
  const targets = planQuantization(
    model,
    new Set(defaultExclusions(model, 'policy')),
    `graphs.${role}`,
  );
  expect(targets.length).toBeGreaterThan(0);
  const q = quantizeModel(model, targets, 'dynamic');
  expect(graphOf(q).node.map((n) => n.opType)).toContain('MatMulInteger');
  return encodeOnnx(q);
}

describe('INT8 of the autoregressive decoder graphs', () => {
  it('quantizes the decoder (its causal mask uses LessOrEqual) and decodes greedy tokens as fp32', async () => {
    const ref = JSON.parse(await readFile(`${FIXTURE}reference.json`, 'utf8')) as Reference;
    const options = { intraOpNumThreads: 1 };
    const dir = await mkdtemp(join(tmpdir(), 'vla-ar-int8-'));
    temps.push(dir);
    await writeFile(join(dir, 'prefill.onnx'), await int8('prefill'));
    await writeFile(join(dir, 'decoder.onnx'), await int8('decoder'));
    const fp32 = await DecoderGraphs.load(
      `${FIXTURE}prefill.onnx`,
      `${FIXTURE}decoder.onnx`,
      options,
    );
    open.push(fp32);
    const q8 = await DecoderGraphs.load(
      join(dir, 'prefill.onnx'),
      join(dir, 'decoder.onnx'),
      options,
    );
    open.push(q8);
    const tokenizer = new UniformBinTokenizer(ref.horizon, ref.action_dim, ref.vocab);
    for (const c of ref.cases) {
      const input = {
        visualTokens: Float32Array.from(c.visual_tokens),
        tokenPositions: BigInt64Array.from(c.token_positions, BigInt),
        instructionIds: BigInt64Array.from(c.instruction_ids, BigInt),
        state: Float32Array.from(c.state),
      };
      const a = await decodeChunk(
        fp32,
        tokenizer,
        input,
        { kind: 'greedy' },
        0,
        ref.first_action_position,
      );
      const b = await decodeChunk(
        q8,
        tokenizer,
        input,
        { kind: 'greedy' },
        0,
        ref.first_action_position,
      );
      expect(a.tokens).toEqual(c.tokens);
      // These weights' greedy margins (make.py: > 0.01) survive per-channel INT8 weights.
      expect(b.tokens).toEqual(a.tokens);
    }
  });
});
