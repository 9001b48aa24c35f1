import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelError, type VlaErrorCode } from '../../src/errors.js';
import { batchDimension, loadModelPackage, selectVariant } from '../../src/model/manifest.js';
import { variantGate } from '../../src/model/variants.js';
import {
  at,
  copyPackage,
  copyWithManifest,
  PACKAGE_DIR,
  readJson,
  removeCopies,
  sha256Of,
  type JsonObject,
} from './package.js';

afterAll(removeCopies);

/** The rejection of `promise` (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

function expectModelError(
  error: unknown,
  code: VlaErrorCode,
  field: string,
  fragments: readonly string[],
): void {
  expect(error).toBeInstanceOf(ModelError);
  const e = error as ModelError;
  expect(e.name).toBe('ModelError');
  expect(e.code).toBe(code);
  expect(e.field).toBe(field);
  expect(e.message).toContain('Expected');
  for (const fragment of fragments) expect(e.message).toContain(fragment);
}

describe('the shipped model package', () => {
  it('loads, with a tokenizer that agrees with the manifest', async () => {
    const pkg = await loadModelPackage(PACKAGE_DIR);
    const raw = await readJson(join(PACKAGE_DIR, 'manifest.json'));
    expect(isAbsolute(pkg.dir)).toBe(true);
    expect(pkg.manifest.name).toBe(raw.name);
    expect(pkg.tokenizer.maxLength).toBe(pkg.manifest.tokenizer.max_length);
    expect(pkg.manifest.variants.length).toBeGreaterThan(0);
  });

  it('loads from a relative path too', async () => {
    const pkg = await loadModelPackage('models/tiny-vla');
    expect(pkg.dir).toBe(PACKAGE_DIR);
  });

  it('selects the fp32 variant with absolute paths that exist', async () => {
    const pkg = await loadModelPackage(PACKAGE_DIR);
    const fp32 = selectVariant(pkg, 'fp32');
    expect(fp32.precision).toBe('fp32');
    for (const role of ['encoder', 'policy'] as const) {
      const path = fp32.paths[role];
      expect(isAbsolute(path)).toBe(true);
      expect(existsSync(path)).toBe(true);
      expect(path).toBe(join(PACKAGE_DIR, fp32.files[role].path));
    }
  });

  it('auto picks the fastest variant that passed its gate on the provider, else fp32', async () => {
    const pkg = await loadModelPackage(PACKAGE_DIR);
    const gated = pkg.manifest.variants
      .map((v) => ({ v, gate: variantGate(pkg, v, 'cpu') }))
      .filter((g) => g.v.precision !== 'fp32' && g.gate?.passed === true && g.gate.latencyRatio < 1)
      .sort((a, b) => (a.gate?.latencyRatio ?? 1) - (b.gate?.latencyRatio ?? 1));
    expect(selectVariant(pkg, 'auto', 'cpu').name).toBe(gated[0]?.v.name ?? 'fp32');
    // No report was measured on CUDA: auto stays on fp32 there.
    expect(selectVariant(pkg, 'auto', 'cuda').precision).toBe('fp32');
  });

  it('rejects a precision it does not ship, naming the precisions present', async () => {
    const pkg = await loadModelPackage(PACKAGE_DIR);
    const present = pkg.manifest.variants.map((v) => v.precision);
    expect(present).not.toContain('int4');
    let error: unknown;
    try {
      selectVariant(pkg, 'int4');
    } catch (e) {
      error = e;
    }
    expectModelError(error, 'INVALID_MANIFEST', 'model.precision', [
      'int4',
      pkg.manifest.name,
      present.join('|'),
    ]);
  });
});

/** Schema values read from the schema itself. */
const schema = await readJson(
  new URL('../../schema/model-manifest.schema.json', import.meta.url).pathname,
);
const resizeModes = at(schema, 'definitions', 'v1', 'properties', 'image', 'properties', 'resize')
  .enum as string[];

interface BrokenCase {
  readonly name: string;
  readonly code: VlaErrorCode;
  readonly field: string;
  /** Break a fresh copy of the package in `dir`; returns fragments the message must contain. */
  readonly prepare: (dir: string) => Promise<readonly string[]>;
}

/** A case that mutates manifest.json; `mutate` returns the expected message fragments. */
function manifestCase(
  name: string,
  field: string,
  mutate: (m: JsonObject) => readonly string[],
  code: VlaErrorCode = 'INVALID_MANIFEST',
): BrokenCase {
  return {
    name,
    code,
    field,
    prepare: async (dir) => {
      const path = join(dir, 'manifest.json');
      const m = await readJson(path);
      const fragments = mutate(m);
      await writeFile(path, JSON.stringify(m, null, 2));
      return fragments;
    },
  };
}

const shape = (m: JsonObject, graph: string, kind: string, i: number): unknown[] =>
  at(m, 'graphs', graph, kind, i).shape as unknown[];

const broken: readonly BrokenCase[] = [
  manifestCase('missing chunk', 'manifest.chunk', (m) => {
    delete m.chunk;
    return ['manifest.chunk', 'Expected this key', 'missing'];
  }),
  manifestCase('an unknown image.resize mode', 'manifest.image.resize', (m) => {
    at(m, 'image').resize = 'squash';
    return [`Expected one of ${resizeModes.join('|')}`, 'received "squash"'];
  }),
  manifestCase('a wrong format', 'manifest.format', (m) => {
    const format = String(m.format);
    // @2 is the flow family (test/flow/manifest.test.ts); @3 is no format at all.
    m.format = 'vla-node/model@3';
    return [JSON.stringify(format), 'received "vla-node/model@3"'];
  }),
  manifestCase(
    'a patch grid that disagrees with the encoder output',
    'manifest.graphs.encoder.outputs[0].shape[1]',
    (m) => {
      const grid = at(m, 'patch_grid');
      grid.width = 10;
      const tokens = 10 * (grid.height as number);
      return [
        'patch_grid.width',
        `= ${tokens}`,
        `says ${String(shape(m, 'encoder', 'outputs', 0)[1])}`,
      ];
    },
  ),
  manifestCase('a zero in action.std', 'manifest.action.std[0]', (m) => {
    (at(m, 'action').std as number[])[0] = 0;
    return ['> 0', 'received 0'];
  }),
  manifestCase('action.mean of the wrong length', 'manifest.action.mean', (m) => {
    const mean = at(m, 'action').mean as number[];
    mean.push(0.5);
    const a = at(m, 'chunk').action_dim as number;
    return [`Expected ${a} values`, 'chunk.action_dim', `received ${a + 1}`];
  }),
  manifestCase(
    'tokenizer.max_length that disagrees with the policy graph',
    'manifest.graphs.policy.inputs[2].shape[1]',
    (m) => {
      const tok = at(m, 'tokenizer');
      const length = tok.max_length as number;
      tok.max_length = length + 4;
      return [`tokenizer.max_length = ${length + 4}`, `says ${length}`];
    },
  ),
  manifestCase(
    'tokenizer.max_length that disagrees with the tokenizer file',
    'manifest.tokenizer.max_length',
    (m) => {
      const tok = at(m, 'tokenizer');
      const length = tok.max_length as number;
      tok.max_length = length + 4;
      shape(m, 'policy', 'inputs', 2)[1] = length + 4;
      return [`Expected ${length + 4}`, `max_length ${length}`];
    },
  ),
  manifestCase('duplicate variant names', 'manifest.variants[1].name', (m) => {
    const variants = m.variants as JsonObject[];
    const first = at(variants, 0);
    variants.splice(1, variants.length - 1, { ...first, precision: 'fp16' });
    return ['unique variant names', JSON.stringify(first.name)];
  }),
  manifestCase('an unknown top-level key', 'manifest.colour', (m) => {
    m.colour = 'blue';
    return ['manifest.colour', 'Expected no such key'];
  }),
  manifestCase(
    'a fixed policy visual-token count',
    'manifest.graphs.policy.inputs[0].shape[1]',
    (m) => {
      const dims = shape(m, 'policy', 'inputs', 0);
      const tokens = shape(m, 'encoder', 'outputs', 0)[1] as number;
      dims[1] = tokens;
      return ['named (dynamic) token count', `received ${tokens}`];
    },
  ),
  manifestCase(
    'a batch dimension on some graph tensors only',
    'manifest.graphs.policy.inputs[0].shape[0]',
    (m) => {
      for (const [role, dim] of [
        ['encoder', 'batch'],
        ['policy', 1],
      ] as const) {
        for (const kind of ['inputs', 'outputs']) {
          for (const t of at(m, 'graphs', role)[kind] as JsonObject[]) {
            (t.shape as unknown[])[0] = dim;
          }
        }
      }
      return [
        'the same name (a batch dimension',
        'graphs.encoder.inputs[0].shape[0] is "batch"',
        'graphs.policy.inputs[0].shape[0] is 1',
      ];
    },
  ),
  manifestCase('a fixed batch other than 1', 'manifest.graphs.encoder.inputs[0].shape[0]', (m) => {
    shape(m, 'encoder', 'inputs', 0)[0] = 4;
    return ['Expected', 'received 4'];
  }),
  {
    name: 'text that is not JSON',
    code: 'INVALID_MANIFEST',
    field: 'manifest',
    prepare: async (dir) => {
      const text = 'format: vla-node/model@1\n';
      await writeFile(join(dir, 'manifest.json'), text);
      let reason = '';
      try {
        JSON.parse(text);
      } catch (e) {
        reason = (e as Error).message;
      }
      return ['valid JSON', join(dir, 'manifest.json'), 'received', reason];
    },
  },
  {
    name: 'a missing manifest.json',
    code: 'MODEL_FILE',
    field: 'manifest',
    prepare: async (dir) => {
      await rm(join(dir, 'manifest.json'));
      return ['manifest.json', dir];
    },
  },
];

describe('batch dimension', () => {
  it('is absent when every graph tensor starts with 1', async () => {
    const dir = await copyWithManifest((m) => {
      for (const role of ['encoder', 'policy']) {
        for (const kind of ['inputs', 'outputs']) {
          for (const t of at(m, 'graphs', role)[kind] as JsonObject[]) {
            (t.shape as unknown[])[0] = 1;
          }
        }
      }
    });
    expect(batchDimension((await loadModelPackage(dir)).manifest)).toBeUndefined();
  });

  it('is the name every graph tensor starts with', async () => {
    const dir = await copyWithManifest((m) => {
      for (const role of ['encoder', 'policy']) {
        for (const kind of ['inputs', 'outputs']) {
          for (const t of at(m, 'graphs', role)[kind] as JsonObject[]) {
            (t.shape as unknown[])[0] = 'n';
          }
        }
      }
    });
    expect(batchDimension((await loadModelPackage(dir)).manifest)).toBe('n');
  });
});

describe('broken manifests', () => {
  it.each(broken)('rejects $name ($field)', async ({ code, field, prepare }) => {
    const dir = await copyPackage();
    const fragments = await prepare(dir);
    expectModelError(await rejection(loadModelPackage(dir)), code, field, fragments);
  });

  it('lists every schema problem, not only the first', async () => {
    const dir = await copyWithManifest((m) => {
      at(m, 'image').resize = 'squash';
      delete m.chunk;
    });
    const error = await rejection(loadModelPackage(dir));
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).message).toContain('manifest.image.resize');
    expect((error as ModelError).message).toContain('manifest.chunk');
  });
});

describe('model files', () => {
  it('rejects a missing variant file', async () => {
    const dir = await copyPackage();
    const m = await readJson(join(dir, 'manifest.json'));
    const file = at(m, 'variants', 0, 'files', 'encoder').path as string;
    await rm(join(dir, file));
    expectModelError(
      await rejection(loadModelPackage(dir)),
      'MODEL_FILE',
      'manifest.variants[0].files.encoder.path',
      [file, dir],
    );
  });

  it('rejects a file whose hash does not match, naming both hashes', async () => {
    const dir = await copyPackage();
    const m = await readJson(join(dir, 'manifest.json'));
    const policy = at(m, 'variants', 0, 'files', 'policy');
    const path = join(dir, policy.path as string);
    const bytes = await readFile(path);
    const i = bytes.length >> 1;
    bytes[i] = (bytes[i] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    const actual = await sha256Of(path);
    expect(actual).not.toBe(policy.sha256);
    expectModelError(
      await rejection(loadModelPackage(dir)),
      'MODEL_FILE',
      'manifest.variants[0].files.policy.sha256',
      [policy.path as string, policy.sha256 as string, actual],
    );
    // Hash checking can be turned off (the backend then finds out whether the file loads).
    const pkg = await loadModelPackage(dir, { verifyHashes: false });
    expect(pkg.dir).toBe(dir);
  });
});
