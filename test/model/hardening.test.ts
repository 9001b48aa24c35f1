/**
 * Tampered model packages: paths that leave the package, files that are not files, sizes and
 * counts out of proportion, graphs that do not declare their shapes, and `info` running every
 * variant the way `sim` does so that it never passes a package the node cannot run.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../src/cli/command.js';
import { infoCommand } from '../../src/cli/info.js';
import { decodeOnnx, encodeOnnx } from '../../src/util/onnx-graph.js';
import { ModelError, VlaError } from '../../src/errors.js';
import { packageFile } from '../../src/model/files.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import {
  copyPackage,
  copyWithManifest,
  readJson,
  removeCopies,
  sha256Of,
  writeJson,
  type JsonObject,
} from './package.js';

let outside: string;
beforeAll(() => {
  outside = mkdtempSync(join(tmpdir(), 'vla-outside-'));
});
afterAll(async () => {
  await removeCopies();
  rmSync(outside, { recursive: true, force: true });
});

type Variant = {
  name: string;
  files: Record<'encoder' | 'policy', { path: string; sha256: string }>;
  report?: string;
};
const variants = (m: JsonObject): Variant[] => m.variants as Variant[];
const first = (m: JsonObject): Variant => variants(m)[0] as Variant;

async function loadError(dir: string): Promise<ModelError> {
  const error = await loadModelPackage(dir).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ModelError);
  return error as ModelError;
}

describe('paths in a manifest stay inside the package', () => {
  it('refuses ../ in files.*.path without hashing (or printing the hash of) the outside file', async () => {
    const dir = await copyPackage();
    const encoder = join(dir, 'vision_encoder.onnx');
    const stranger = join(outside, 'stranger.onnx');
    writeFileSync(stranger, 'not yours');
    const path = join(dir, 'manifest.json');
    const m = await readJson(path);
    const rel = join('..', outside.split('/').pop() ?? '', 'stranger.onnx');
    first(m).files.encoder.path = `../../../../../../../..${stranger}`;
    await writeJson(path, m);
    let error = await loadError(dir);
    expect(error.code).toBe('MODEL_FILE');
    expect(error.field).toBe('manifest.variants[0].files.encoder.path');
    expect(error.message).toMatch(/leads outside it/);
    expect(error.message).not.toContain(await sha256Of(stranger));
    first(m).files.encoder.path = rel;
    await writeJson(path, m);
    error = await loadError(dir);
    expect(error.message).toMatch(/leads outside it/);
    expect(readFileSync(encoder).length).toBeGreaterThan(0);
  });

  it.each([
    ['tokenizer.file', (m: JsonObject, p: string) => ((m.tokenizer as JsonObject).file = p)],
    ['variants[0].report', (m: JsonObject, p: string) => (first(m).report = p)],
    [
      'variants[0].files.policy.path',
      (m: JsonObject, p: string) => (first(m).files.policy.path = p),
    ],
  ])('refuses an absolute or escaping %s', async (field, set) => {
    for (const p of ['/etc/hostname', '../../../etc/hostname', 'a/../../x.json']) {
      const dir = await copyWithManifest((m) => set(m, p));
      const error = await loadError(dir);
      expect(error.field).toBe(`manifest.${field}`);
      expect(error.message).toMatch(/is absolute|leads outside it/);
    }
  });

  it('refuses a symlink that leads outside, even to a file with the right hash', async () => {
    const dir = await copyPackage();
    const real = join(outside, 'encoder-copy.onnx');
    copyFileSync(join(dir, 'vision_encoder.onnx'), real);
    rmSync(join(dir, 'vision_encoder.onnx'));
    symlinkSync(real, join(dir, 'vision_encoder.onnx'));
    const error = await loadError(dir);
    expect(error.field).toBe('manifest.variants[0].files.encoder.path');
    expect(error.message).toMatch(/symbolic link that leads outside it/);
    // A symlink that stays inside the package is fine.
    const inside = await copyPackage();
    const m = await readJson(join(inside, 'manifest.json'));
    copyFileSync(join(inside, 'policy.onnx'), join(inside, 'policy-real.onnx'));
    rmSync(join(inside, 'policy.onnx'));
    symlinkSync('policy-real.onnx', join(inside, 'policy.onnx'));
    await writeJson(join(inside, 'manifest.json'), m);
    await expect(loadModelPackage(inside)).resolves.toBeDefined();
  });

  it('refuses /dev/zero and a FIFO before opening them (no hang, no 10 GB read)', async () => {
    const dir = await copyPackage();
    rmSync(join(dir, 'policy.onnx'));
    symlinkSync('/dev/zero', join(dir, 'policy.onnx'));
    expect((await loadError(dir)).message).toMatch(/leads outside it/);
    const fifo = await copyPackage();
    rmSync(join(fifo, 'policy.onnx'));
    execFileSync('mkfifo', [join(fifo, 'policy.onnx')]);
    const error = await loadError(fifo);
    expect(error.field).toBe('manifest.variants[0].files.policy.path');
    expect(error.message).toMatch(/not a regular file/);
    // Also without hash verification: ONNX Runtime never gets to open it.
    const again = await loadModelPackage(fifo, { verifyHashes: false }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ModelError);
  });
});

describe('sizes and counts are bounded before reading', () => {
  it('refuses a tokenizer over 64 MiB and a graph over 2 GiB without reading them', async () => {
    const dir = await copyPackage();
    truncateSync(join(dir, 'tokenizer.json'), 64 * 1024 * 1024 + 1);
    const t = await loadError(dir);
    expect(t.field).toBe('manifest.tokenizer.file');
    expect(t.message).toMatch(/more than the 67108864 bytes allowed/);
    const big = await copyPackage();
    truncateSync(join(big, 'policy.onnx'), 2 * 1024 * 1024 * 1024 + 1);
    const g = await loadError(big);
    expect(g.field).toBe('manifest.variants[0].files.policy.path');
    expect(g.message).toMatch(/more than the 2147483648 bytes allowed/);
  });

  it('caps the variants and the other arrays of the manifest', async () => {
    const dir = await copyWithManifest((m) => {
      const v = first(m);
      m.variants = Array.from({ length: 10_000 }, (_, i) => ({ ...v, name: `v${i}` }));
    });
    const error = await loadError(dir);
    expect(error.code).toBe('INVALID_MANIFEST');
    expect(error.field).toBe('manifest.variants');
    const names = await copyWithManifest((m) => {
      (m.action as JsonObject).names = Array.from({ length: 5000 }, (_, i) => `j${i}`);
    });
    expect((await loadError(names)).field).toBe('manifest.action.names');
    const image = await copyWithManifest((m) => {
      (m.image as JsonObject).width = 1_000_000;
    });
    expect((await loadError(image)).field).toBe('manifest.image.width');
  });

  it('packageFile checks the limit it is given', () => {
    const dir = mkdtempSync(join(outside, 'pkg-'));
    writeFileSync(join(dir, 'a.json'), '0123456789');
    expect(packageFile(dir, 'a.json', 'f', { maxBytes: 10 })).toBe(join(dir, 'a.json'));
    expect(() => packageFile(dir, 'a.json', 'f', { maxBytes: 9 })).toThrow(/more than the 9 bytes/);
    expect(() => packageFile(dir, 'x\0y', 'f', { maxBytes: 9 })).toThrow(/NUL/);
    expect(() => packageFile(dir, '.', 'f', { maxBytes: 9 })).toThrow(/a folder/);
  });
});

/** A copy whose fp32 encoder declares its inputs and outputs without shapes. */
async function shapelessEncoder(): Promise<string> {
  const dir = await copyPackage();
  const file = join(dir, 'vision_encoder.onnx');
  const model = decodeOnnx(readFileSync(file), file);
  const graph = model.graph;
  if (graph === null || graph === undefined) throw new Error('no graph');
  for (const vi of [...(graph.input ?? []), ...(graph.output ?? [])]) {
    if (vi.type?.tensorType) vi.type.tensorType.shape = null;
  }
  graph.valueInfo = [];
  writeFileSync(file, encodeOnnx(model));
  const path = join(dir, 'manifest.json');
  const m = await readJson(path);
  first(m).files.encoder.sha256 = await sha256Of(file);
  m.variants = [first(m)];
  await writeJson(path, m);
  return dir;
}

/** A copy whose fp32 variant names the policy as its encoder and the encoder as its policy. */
async function swappedGraphs(): Promise<string> {
  return copyWithManifest((m) => {
    const v = first(m);
    v.files = { encoder: v.files.policy, policy: v.files.encoder };
    m.variants = [v];
  });
}

const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
const info = (dir: string) =>
  infoCommand.run({ model: dir, set: ['backend.intra_op_threads=1'] }, io, []);

describe('info runs every variant as sim would', () => {
  it('fails a graph that declares no shapes with a typed MODEL_MISMATCH (was a RangeError in warm-up)', async () => {
    const dir = await shapelessEncoder();
    const error = await info(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('MODEL_MISMATCH');
    expect((error as ModelError).field).toBe('manifest.graphs.encoder.inputs[0].shape');
    expect((error as ModelError).message).toMatch(/^variant fp32: .*declares no shape/);
  });

  it('fails swapped graphs', async () => {
    const error = await info(await swappedGraphs()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VlaError);
    expect((error as VlaError).code).toBe('MODEL_MISMATCH');
  });

  it('fails a manifest whose sizes disagree with what the graphs produce', async () => {
    const dir = await copyWithManifest((m) => {
      m.variants = [first(m)];
      (m.chunk as JsonObject).horizon = 9;
    });
    const error = await info(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VlaError);
  });

  it('passes the shipped package, reporting where each variant ran', async () => {
    const results: object[] = [];
    const dir = await copyPackage();
    const code = await infoCommand.run(
      { model: dir, set: ['backend.intra_op_threads=1'] },
      { ...io, result: (v) => results.push(v) },
      [],
    );
    expect(code).toBe(0);
    const out = results[0] as { variants: { name: string; check: { provider: string } }[] };
    for (const v of out.variants) expect(v.check.provider).toBe('cpu');
  });
});
