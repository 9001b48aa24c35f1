import { afterAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../../src/errors.js';
import { loadFlowPackage } from '../../../src/model/flow-manifest.js';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { ArPolicy } from '../../../src/policy/autoregressive/policy.js';
import { readArPackage } from '../../../src/policy/autoregressive/package.js';
import { at, makeArPackage, removeArPackages, type Json } from './ar-package.js';

afterAll(removeArPackages);

async function refusal(dir: string): Promise<ModelError> {
  const error = await readArPackage(dir).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ModelError);
  return error as ModelError;
}

const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 };

describe('the autoregressive manifest, validated by the schema', () => {
  it('accepts the package export.py writes and maps it to the runtime view', async () => {
    const pkg = await readArPackage(await makeArPackage());
    expect(pkg.horizon).toBe(8);
    expect(pkg.actionDim).toBe(2);
    expect(pkg.tokenizer.kind).toBe('uniform_bins');
    expect(pkg.tokenizer.vocabSize).toBe(256);
    expect(pkg.tokenizer.maxTokens).toBe(16);
    expect(pkg.firstActionPosition).toBe(157);
    expect(pkg.files).toEqual({
      encoder: 'vision_encoder.onnx',
      prefill: 'prefill.onnx',
      decoder: 'decoder.onnx',
      words: 'tokenizer.json',
    });
    expect(pkg.variant).toEqual({ name: 'fp32', precision: 'fp32' });
    expect(pkg.encoderNames).toEqual({
      pixels: 'pixels',
      tokens: 'visual_tokens',
      saliency: 'saliency',
    });
    expect(pkg.words.maxLength).toBe(pkg.maxWords);
  });

  it('reads "prefix_length" as the Optimum convention and builds a FAST tokenizer', async () => {
    const pkg = await readArPackage(
      await makeArPackage((m) => {
        at(m, 'decoder').first_action_position = 'prefix_length';
        m.action_tokenizer = {
          kind: 'fast',
          scale: 10,
          min_token: -5,
          alphabet: 11,
          merges: [
            [5, 5],
            [11, 11],
          ],
          token_offset: 100,
          relative_to: 'state',
          range: [0.3, 0.3],
        };
      }),
    );
    expect(pkg.firstActionPosition).toBeUndefined();
    expect(pkg.tokenizer.kind).toBe('fast');
    // 11 symbols, 2 merges and the end token.
    expect(pkg.tokenizer.vocabSize).toBe(14);
    expect(pkg.tokenOffset).toBe(100);
  });

  const broken: [string, (m: Json) => void, string, string, RegExp][] = [
    [
      'an unknown tokenizer kind',
      (m) => {
        at(m, 'action_tokenizer').kind = 'bins256';
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.kind',
      /Expected one of uniform_bins\|fast but received "bins256"/,
    ],
    [
      'fewer than 2 bins',
      (m) => {
        at(m, 'action_tokenizer').bins = 1;
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.bins',
      />= 2 but received 1/,
    ],
    [
      'a negative first action position',
      (m) => {
        at(m, 'decoder').first_action_position = -1;
      },
      'INVALID_MANIFEST',
      'manifest.decoder.first_action_position',
      />= 0 but received -1/,
    ],
    [
      'a graph path leading out of the package',
      (m) => {
        at(m, 'variants', 0, 'files', 'decoder').path = '../decoder.onnx';
      },
      'MODEL_FILE',
      'manifest.variants[0].files.decoder.path',
      /leads outside it/,
    ],
    [
      'no decoder role in graphs',
      (m) => {
        delete at(m, 'graphs').decoder;
      },
      'INVALID_MANIFEST',
      'manifest.graphs.decoder',
      /Expected this key but it is missing/,
    ],
    [
      'no decoder file in a variant',
      (m) => {
        delete at(m, 'variants', 0, 'files').decoder;
      },
      'INVALID_MANIFEST',
      'manifest.variants[0].files.decoder',
      /Expected this key but it is missing/,
    ],
    [
      'a FAST tokenizer without merges',
      (m) => {
        m.action_tokenizer = {
          kind: 'fast',
          scale: 10,
          min_token: -5,
          alphabet: 11,
          token_offset: 0,
          relative_to: 'state',
          range: [0.3, 0.3],
        };
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.merges',
      /Expected this key but it is missing/,
    ],
    [
      'a merge of tokens not yet defined',
      (m) => {
        m.action_tokenizer = {
          kind: 'fast',
          scale: 10,
          min_token: -5,
          alphabet: 11,
          merges: [[0, 11]],
          token_offset: 0,
          relative_to: 'state',
          range: [0.3, 0.3],
        };
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.merges[0]',
      /ids 0 … 10/,
    ],
    [
      'tokens relative to something else than the state',
      (m) => {
        at(m, 'action_tokenizer').relative_to = 'world';
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.relative_to',
      /Expected one of state but received "world"/,
    ],
    [
      'two cameras',
      (m) => {
        const cameras = m.cameras as Json[];
        cameras.push({ ...cameras[0], name: 'wrist' });
      },
      'INVALID_MANIFEST',
      'manifest.cameras',
      /more than 1 items/,
    ],
    [
      'a range per action dimension missing',
      (m) => {
        at(m, 'action_tokenizer').range = [0.3];
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.range',
      /Expected 2 values \(chunk.action_dim\) but received 1/,
    ],
    [
      'a decoder input not named as Optimum names it',
      (m) => {
        at(m, 'graphs', 'decoder', 'inputs', 5).name = 'past.1.key';
      },
      'INVALID_MANIFEST',
      'manifest.graphs.decoder.inputs[5].name',
      /Expected "past_key_values.1.key" but received "past.1.key"/,
    ],
    [
      'saliency scores that are not one per visual token',
      (m) => {
        (at(m, 'graphs', 'encoder', 'outputs', 1).shape as unknown[])[1] = 7;
      },
      'INVALID_MANIFEST',
      'manifest.graphs.encoder.outputs[1].shape[1]',
      // The whole message: unlike the flow loader's, it does not repeat where the shape is.
      /^Expected \d+ but received 7$/,
    ],
    [
      'more layers than the graphs have key/value pairs',
      (m) => {
        at(m, 'decoder').layers = 3;
      },
      'INVALID_MANIFEST',
      'manifest.graphs.prefill',
      /1 \+ 2 × layers|7 outputs/,
    ],
    [
      'action ids beyond the decoder vocabulary',
      (m) => {
        at(m, 'action_tokenizer').token_offset = 1;
      },
      'INVALID_MANIFEST',
      'manifest.action_tokenizer.token_offset',
      /vocabulary of 256 but received token_offset 1/,
    ],
    [
      'a graph file whose hash is not the manifest one',
      (m) => {
        at(m, 'variants', 0, 'files', 'prefill').sha256 = '0'.repeat(64);
      },
      'MODEL_FILE',
      'manifest.variants[0].files.prefill.sha256',
      /SHA-256/,
    ],
    [
      'a misspelt family',
      (m) => {
        m.family = 'autoregresive';
      },
      'INVALID_MANIFEST',
      'manifest.family',
      /flow\|autoregressive but received "autoregresive"/,
    ],
  ];

  it.each(broken)('refuses %s, naming the field', async (_what, mutate, code, field, message) => {
    const error = await refusal(await makeArPackage(mutate));
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('is refused by the flow and v1 loaders with a pointer to its runtime', async () => {
    const dir = await makeArPackage();
    const flow = await loadFlowPackage(dir).catch((e: unknown) => e);
    expect(flow).toBeInstanceOf(ModelError);
    expect((flow as ModelError).field).toBe('manifest.family');
    expect((flow as ModelError).message).toMatch(/ArPolicy/);
    const v1 = await loadModelPackage(dir).catch((e: unknown) => e);
    expect(v1).toBeInstanceOf(ModelError);
    expect((v1 as ModelError).message).toMatch(/family autoregressive: load it with ArPolicy/);
  });
});

describe('ArPolicy on a package', () => {
  it('checks the graphs against the manifest roles when it loads', async () => {
    // A manifest consistent in itself (8 heads everywhere) that the ONNX graphs (4 heads) are not.
    const dir = await makeArPackage((m) => {
      at(m, 'decoder').heads = 8;
      for (const role of ['prefill', 'decoder'])
        for (const kind of ['inputs', 'outputs'])
          for (const t of at(m, 'graphs', role)[kind] as { name: string; shape: unknown[] }[])
            if (/\.(key|value)$/.test(t.name)) t.shape[1] = 8;
    });
    const error = await ArPolicy.load(dir, THREADS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('MODEL_MISMATCH');
    expect((error as ModelError).field).toBe('manifest.graphs.prefill.outputs[2].shape[1]');
  });

  it('decodes a whole chunk within the limits, the same by every strategy', async () => {
    const policy = await ArPolicy.load(await makeArPackage(), THREADS);
    try {
      const { width, height } = policy.pkg.image;
      const obs = {
        pixels: Float32Array.from({ length: 3 * width * height }, (_, i) => Math.sin(i)),
        rgb: new Uint8Array(width * height * 3).fill(90),
        instruction: 'move to the red block',
        state: Float32Array.from([0.4, 0.6]),
      };
      const greedy = await policy.act(obs, { strategy: 'greedy' });
      expect(greedy.tokens).toHaveLength(16);
      expect(greedy.actions).toHaveLength(16);
      greedy.actions.forEach((a) => {
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThanOrEqual(1);
      });
      const jacobi = await policy.act(obs, { strategy: 'jacobi', window: 8 });
      expect(jacobi.tokens).toEqual(greedy.tokens);
      expect(jacobi.decoderCalls).toBeLessThanOrEqual(greedy.decoderCalls);
    } finally {
      await policy.close();
    }
  });
});
