import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../src/errors.js';
import { FlowPolicy } from '../../src/flow/policy.js';
import {
  isFlowPackage,
  loadFlowPackage,
  selectFlowVariant,
} from '../../src/model/flow-manifest.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { TINY_VLA } from '../helpers.js';
import {
  at,
  copyFlowPackage,
  FLOW_DIR,
  flowOptions,
  removeFlowCopies,
  type JsonObject,
} from './package.js';

afterAll(removeFlowCopies);

async function rejection(promise: Promise<unknown>): Promise<ModelError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ModelError);
    return error as ModelError;
  }
  throw new Error('expected the promise to reject');
}

function expectError(
  e: ModelError,
  code: string,
  field: string,
  fragments: readonly string[] = [],
) {
  expect(e.code).toBe(code);
  expect(e.field).toBe(field);
  expect(e.message).toContain('Expected');
  for (const f of fragments) expect(e.message).toContain(f);
}

describe('package format v2 (flow)', () => {
  it('loads the shipped flow package with its cameras, prefix and denoising schedule', async () => {
    const pkg = await loadFlowPackage(FLOW_DIR);
    const m = pkg.manifest;
    expect(m.format).toBe('vla-node/model@2');
    expect(m.family).toBe('flow');
    expect(m.cameras.map((c) => c.name)).toEqual(['table', 'wrist']);
    expect(m.chunk.horizon).toBeGreaterThanOrEqual(16);
    expect(m.denoising.steps).toBe(10);
    expect(m.prefix.instruction_attention).toBe('block-causal');
    expect(pkg.tokenizer.maxLength).toBe(m.tokenizer.max_length);
    const v = selectFlowVariant(pkg, 'fp32');
    expect(Object.keys(v.paths).sort()).toEqual(['encoder', 'expert', 'instruction', 'prefix']);
    expect(await isFlowPackage(FLOW_DIR)).toBe(true);
    expect(await isFlowPackage(TINY_VLA)).toBe(false);
  });

  it('keeps v1 packages loading unchanged, and the v1 loader names the format of a v2 one', async () => {
    const v1 = await loadModelPackage(TINY_VLA);
    expect(v1.manifest.format).toBe('vla-node/model@1');
    expectError(
      await rejection(loadModelPackage(FLOW_DIR)),
      'INVALID_MANIFEST',
      'manifest.format',
      ['vla-node/model@2'],
    );
    expectError(await rejection(loadFlowPackage(TINY_VLA)), 'INVALID_MANIFEST', 'manifest.format', [
      'vla-node/model@1',
    ]);
  });

  const cases: {
    name: string;
    field: string;
    mutate: (m: JsonObject) => void;
    fragments?: string[];
  }[] = [
    {
      name: 'a missing denoising schedule',
      field: 'manifest.denoising',
      mutate: (m) => {
        delete m.denoising;
      },
    },
    {
      name: 'zero denoising steps',
      field: 'manifest.denoising.steps',
      mutate: (m) => {
        at(m, 'denoising').steps = 0;
      },
    },
    {
      name: 'an unknown integration method',
      field: 'manifest.denoising.method',
      mutate: (m) => {
        at(m, 'denoising').method = 'dpm';
      },
      fragments: ['euler'],
    },
    {
      name: 'an unknown family',
      field: 'manifest.family',
      mutate: (m) => {
        m.family = 'diffusion';
      },
    },
    {
      name: 'no cameras',
      field: 'manifest.cameras',
      mutate: (m) => {
        m.cameras = [];
      },
    },
    {
      name: 'a repeated camera name',
      field: 'manifest.cameras[1].name',
      mutate: (m) => {
        at(m, 'cameras', 1).name = at(m, 'cameras', 0).name;
      },
      fragments: ['unique'],
    },
    {
      name: 'a camera whose image does not fit the shared encoder',
      field: 'manifest.cameras[1].image',
      mutate: (m) => {
        at(m, 'cameras', 1, 'image').width = 32;
      },
    },
    {
      name: 'prefix heads that disagree with the instruction keys',
      field: 'manifest.graphs.instruction.outputs[0].shape[2]',
      mutate: (m) => {
        at(m, 'prefix').heads = 3;
      },
    },
    {
      name: 'an expert without the prefix values',
      field: 'manifest.graphs.expert',
      mutate: (m) => {
        (at(m, 'graphs', 'expert').inputs as unknown[]).pop();
      },
      fragments: ['7 inputs'],
    },
    {
      name: 'a velocity that is not one chunk',
      field: 'manifest.graphs.expert.outputs[0].shape[1]',
      mutate: (m) => {
        at(m, 'chunk').horizon = 8;
        (at(m, 'graphs', 'expert', 'inputs', 0).shape as unknown[])[1] = 8;
      },
      // The flow loader's dimension messages say where the shape is (the AR loader's do not).
      fragments: ['Expected 8 but received 16 in graphs.expert.outputs[0].shape'],
    },
    {
      name: 'a fixed visual token count (pruned sets would not fit)',
      field: 'manifest.graphs.prefix.inputs[0].shape[1]',
      mutate: (m) => {
        (at(m, 'graphs', 'prefix', 'inputs', 0).shape as unknown[])[1] = 128;
      },
      fragments: ['dynamic'],
    },
    {
      name: 'a variant without its expert graph',
      field: 'manifest.variants[0].files.expert',
      mutate: (m) => {
        delete at(m, 'variants', 0, 'files').expert;
      },
    },
    {
      name: 'a graph outside the package',
      field: 'manifest.variants[0].files.prefix.path',
      mutate: (m) => {
        at(m, 'variants', 0, 'files', 'prefix').path = '../prefix.onnx';
      },
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}, naming ${c.field}`, async () => {
      const dir = await copyFlowPackage(c.mutate);
      expectError(
        await rejection(loadFlowPackage(dir)),
        c.field.endsWith('.path') ? 'MODEL_FILE' : 'INVALID_MANIFEST',
        c.field,
        c.fragments,
      );
    });
  }

  it('rejects a replaced graph by its SHA-256', async () => {
    const dir = await copyFlowPackage();
    const { copyFile } = await import('node:fs/promises');
    await copyFile(join(dir, 'prefix.onnx'), join(dir, 'expert.onnx'));
    expectError(
      await rejection(loadFlowPackage(dir)),
      'MODEL_FILE',
      'manifest.variants[0].files.expert.sha256',
    );
  });
});

describe('graph roles checked against the ONNX files', () => {
  const roleCases: { name: string; field: string; mutate: (m: JsonObject) => void }[] = [
    {
      name: 'a renamed prefix input',
      field: 'manifest.graphs.prefix.inputs[0].name',
      mutate: (m) => {
        at(m, 'graphs', 'prefix', 'inputs', 0).name = 'tokens';
      },
    },
    {
      name: 'an expert time input of the wrong dtype',
      field: 'manifest.graphs.expert.inputs[1].dtype',
      mutate: (m) => {
        at(m, 'graphs', 'expert', 'inputs', 1).dtype = 'int64';
      },
    },
    {
      name: 'a wrong instruction length in every graph and the tokenizer entry',
      field: 'manifest.tokenizer.max_length',
      mutate: (m) => {
        at(m, 'tokenizer').max_length = 11;
        for (const t of [
          at(m, 'graphs', 'instruction', 'inputs', 0),
          at(m, 'graphs', 'instruction', 'outputs', 0),
          at(m, 'graphs', 'instruction', 'outputs', 1),
        ]) {
          const shape = t.shape as unknown[];
          shape[shape.length === 2 ? 1 : 3] = 11;
        }
      },
    },
  ];
  for (const c of roleCases) {
    it(`rejects ${c.name}, naming ${c.field}`, async () => {
      const dir = await copyFlowPackage(c.mutate);
      const e = await rejection(
        (async () => {
          const pkg = await loadFlowPackage(dir);
          const policy = await FlowPolicy.create(pkg, flowOptions());
          await policy.release();
        })(),
      );
      expect(e.field).toBe(c.field);
      expect(e.message).toContain('Expected');
    });
  }

  it('rejects a graph whose declared shapes disagree with the ONNX file (MODEL_MISMATCH)', async () => {
    const dir = await copyFlowPackage((m) => {
      // Consistent inside the manifest, wrong against the graph: a token dimension of 32.
      m.token_dim = 32;
      (at(m, 'graphs', 'encoder', 'outputs', 0).shape as unknown[])[2] = 32;
      (at(m, 'graphs', 'prefix', 'inputs', 0).shape as unknown[])[2] = 32;
    });
    const pkg = await loadFlowPackage(dir);
    const e = await rejection(FlowPolicy.create(pkg, flowOptions()));
    expectError(e, 'MODEL_MISMATCH', 'manifest.graphs.encoder.outputs[0].shape[2]');
  });
});
