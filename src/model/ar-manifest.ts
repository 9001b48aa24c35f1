/**
 * The manifest of an autoregressive package (format `vla-node/model@2`, family `autoregressive`):
 * validated against schema/model-manifest.schema.json (definition `v2ar`, where every field's type,
 * range and meaning is written once), then checked for what the schema cannot say: that the graph
 * roles have the tensors the runtime feeds and reads (Hugging Face Optimum's decoder-with-past
 * signature for the decoder) and that their shapes agree with the rest of the manifest.
 */
import { describe } from '../errors.js';
import {
  FLOW_FORMAT,
  type Dim,
  type GraphSpec,
  type ManifestCommon,
  type ModelFile,
  type Precision,
  type TensorSpec,
} from './manifest.js';
import {
  checkActionSection,
  expectDynamicTokenCount,
  expectGraphCount,
  expectShape,
  failManifest,
} from './manifest-sections.js';
import { loadPackage, readManifestJson } from './package-loader.js';
import { selectPackageVariant, type LoadOptions, type PackageVariant } from './variants.js';
import type { FlowCamera } from './flow-manifest.js';
import type { WordTokenizer } from './tokenizer.js';

/** The graph roles every autoregressive package has. */
export const AR_ROLES = ['encoder', 'prefill', 'decoder'] as const;
export type ArRole = (typeof AR_ROLES)[number];
/** Every graph role, the optional `instruction` (the words' keys and values) included. */
export type ArGraphRole = ArRole | 'instruction';

/** The roles `m` has, in the order the runtime runs them. */
export function arRoles(m: ArManifest): ArGraphRole[] {
  return m.graphs.instruction === undefined
    ? [...AR_ROLES]
    : ['encoder', 'instruction', 'prefill', 'decoder'];
}

/** The family value that selects this definition of format `vla-node/model@2`. */
export const AR_FAMILY = 'autoregressive';

interface ArTokenizerCommon {
  readonly token_offset: number;
  readonly relative_to: 'state';
  readonly range: readonly number[];
}

/** `action_tokenizer` of kind `uniform_bins` (OpenVLA). */
export interface ArUniformBinsSpec extends ArTokenizerCommon {
  readonly kind: 'uniform_bins';
  readonly bins: number;
}

/** `action_tokenizer` of kind `fast` (pi0-FAST). */
export interface ArFastSpec extends ArTokenizerCommon {
  readonly kind: 'fast';
  readonly scale: number;
  readonly min_token: number;
  readonly alphabet: number;
  readonly merges: readonly (readonly [number, number])[];
}

/** A variant of an autoregressive package: the instruction graph's file is there when its graph is. */
export type ArVariant = PackageVariant<ArRole> & {
  readonly files: { readonly instruction?: ModelFile };
};

/** A validated autoregressive manifest (the schema's `v2ar`; field meanings are there). */
export interface ArManifest extends ManifestCommon {
  readonly format: typeof FLOW_FORMAT;
  readonly family: typeof AR_FAMILY;
  readonly cameras: readonly [FlowCamera];
  readonly action: {
    readonly names: readonly string[];
    readonly min: readonly number[];
    readonly max: readonly number[];
  };
  readonly decoder: {
    readonly layers: number;
    readonly heads: number;
    readonly head_dim: number;
    readonly instruction_attention: 'block-causal' | 'causal';
    readonly first_action_position: number | 'prefix_length';
  };
  readonly action_tokenizer: ArUniformBinsSpec | ArFastSpec;
  readonly graphs: Readonly<Record<ArRole, GraphSpec>> & { readonly instruction?: GraphSpec };
  readonly variants: readonly ArVariant[];
}

/** A loaded, validated autoregressive package: manifest, word tokenizer, files confined. */
export interface ArModelPackage {
  readonly dir: string;
  readonly manifest: ArManifest;
  readonly words: WordTokenizer;
}

/** The family a parsed manifest declares, when it is format `vla-node/model@2`. */
export function familyOf(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as { format?: unknown; family?: unknown };
  return m.format === FLOW_FORMAT && typeof m.family === 'string' ? m.family : undefined;
}

/** Whether `dir` holds an autoregressive package; false for anything else or unreadable. */
export async function isArPackage(dir: string): Promise<boolean> {
  try {
    return familyOf((await readManifestJson(dir)).raw) === AR_FAMILY;
  } catch {
    return false;
  }
}

function expectTensor(
  field: string,
  t: TensorSpec | undefined,
  name: string,
  dtypes: readonly string[],
  shape: readonly (Dim | null)[],
): void {
  if (t === undefined)
    failManifest(field, `Expected a tensor ${JSON.stringify(name)} here but it is missing`);
  if (t.name !== name)
    failManifest(
      `${field}.name`,
      `Expected ${JSON.stringify(name)} but received ${describe(t.name)}`,
    );
  if (!dtypes.includes(t.dtype))
    failManifest(
      `${field}.dtype`,
      `Expected ${dtypes.join('|')} but received ${describe(t.dtype)}`,
    );
  expectShape(field, t, shape);
}

const INT = ['int64', 'int32'];
const F32 = ['float32'];

/** The vocabulary a role's logits declare (their last dimension), or undefined when it is named. */
export function logitsVocab(m: ArManifest, role: 'prefill' | 'decoder'): number | undefined {
  const last = m.graphs[role].outputs[0]?.shape.at(-1);
  return typeof last === 'number' ? last : undefined;
}

/** Cross-field checks the schema cannot express. */
function checkArConsistency(m: ArManifest): void {
  const [cam] = m.cameras;
  const { layers, heads, head_dim: hd } = m.decoder;
  const n = cam.patch_grid.width * cam.patch_grid.height;
  const D = m.token_dim;
  const S = m.state.names.length;
  const A = m.chunk.action_dim;
  const g = m.graphs;
  const kv = (
    role: ArGraphRole,
    kind: 'inputs' | 'outputs',
    from: number,
    prefix: string,
    length: Dim | null = null,
  ) => {
    for (let j = 0; j < layers; j++)
      (['key', 'value'] as const).forEach((part, k) => {
        const i = from + 2 * j + k;
        expectTensor(
          `graphs.${role}.${kind}[${i}]`,
          g[role]?.[kind][i],
          `${prefix}.${j}.${part}`,
          F32,
          [null, heads, length, hd],
        );
      });
  };

  expectGraphCount('encoder', g.encoder, 1, 2, 'pixels -> visual tokens, saliency');
  const [pixels] = g.encoder.inputs as [TensorSpec];
  expectTensor('graphs.encoder.inputs[0]', pixels, pixels.name, F32, [
    null,
    3,
    cam.image.height,
    cam.image.width,
  ]);
  const [vis, sal] = g.encoder.outputs as [TensorSpec, TensorSpec];
  expectTensor('graphs.encoder.outputs[0]', vis, vis.name, F32, [null, n, D]);
  expectTensor('graphs.encoder.outputs[1]', sal, sal.name, F32, [null, n]);

  const L = m.tokenizer.max_length;
  if (g.instruction === undefined)
    expectGraphCount(
      'prefill',
      g.prefill,
      4,
      1 + 2 * layers,
      `visual tokens, token positions, instruction ids, state -> logits and ${layers} (decoder.layers) present key/value pairs`,
    );
  else {
    // The words' cache is made once per instruction and fed to every frame's prefill as its past.
    expectGraphCount(
      'instruction',
      g.instruction,
      1,
      2 * layers,
      `instruction ids -> ${layers} (decoder.layers) present key/value pairs`,
    );
    expectTensor('graphs.instruction.inputs[0]', g.instruction.inputs[0], 'instruction_ids', INT, [
      null,
      L,
    ]);
    kv('instruction', 'outputs', 0, 'present', L);
    expectGraphCount(
      'prefill',
      g.prefill,
      4 + 2 * layers,
      1 + 2 * layers,
      `visual tokens, token positions, state, attention mask and the instruction graph's ${layers} (decoder.layers) key/value pairs as past -> logits and as many present pairs`,
    );
  }
  const [pv, pp] = g.prefill.inputs as [TensorSpec, TensorSpec];
  expectTensor('graphs.prefill.inputs[0]', pv, 'visual_tokens', F32, [null, null, D]);
  expectDynamicTokenCount('graphs.prefill.inputs[0].shape[1]', pv.shape[1]);
  expectTensor('graphs.prefill.inputs[1]', pp, 'token_positions', INT, [null, pv.shape[1]]);
  if (g.instruction === undefined) {
    expectTensor('graphs.prefill.inputs[2]', g.prefill.inputs[2], 'instruction_ids', INT, [
      null,
      L,
    ]);
    expectTensor('graphs.prefill.inputs[3]', g.prefill.inputs[3], 'state', F32, [null, S]);
  } else {
    expectTensor('graphs.prefill.inputs[2]', g.prefill.inputs[2], 'state', F32, [null, S]);
    expectTensor('graphs.prefill.inputs[3]', g.prefill.inputs[3], 'attention_mask', INT, [
      null,
      null,
    ]);
    kv('prefill', 'inputs', 4, 'past_key_values', L);
  }
  expectTensor('graphs.prefill.outputs[0]', g.prefill.outputs[0], 'logits', F32, [
    null,
    null,
    null,
  ]);
  kv('prefill', 'outputs', 1, 'present');

  expectGraphCount(
    'decoder',
    g.decoder,
    3 + 2 * layers,
    1 + 2 * layers,
    `input_ids, attention_mask, position_ids and ${layers} (decoder.layers) past_key_values pairs -> logits and as many present pairs`,
  );
  ['input_ids', 'attention_mask', 'position_ids'].forEach((name, i) => {
    expectTensor(`graphs.decoder.inputs[${i}]`, g.decoder.inputs[i], name, INT, [null, null]);
  });
  kv('decoder', 'inputs', 3, 'past_key_values');
  expectTensor('graphs.decoder.outputs[0]', g.decoder.outputs[0], 'logits', F32, [
    null,
    null,
    null,
  ]);
  kv('decoder', 'outputs', 1, 'present');
  const vocab = logitsVocab(m, 'decoder');
  const prefillVocab = logitsVocab(m, 'prefill');
  if (vocab !== undefined && prefillVocab !== undefined && vocab !== prefillVocab)
    failManifest(
      'graphs.prefill.outputs[0].shape[2]',
      `Expected the prefill's logits to have the decoder's vocabulary ${vocab} but received ${prefillVocab}`,
    );

  checkActionSection(m.action, A, ['names', 'min', 'max']);
  if (m.action_tokenizer.range.length !== A)
    failManifest(
      'action_tokenizer.range',
      `Expected ${A} values (chunk.action_dim) but received ${m.action_tokenizer.range.length}`,
    );
  m.variants.forEach((v, i) => {
    if (g.instruction !== undefined && v.files.instruction === undefined)
      failManifest(
        `variants[${i}].files.instruction`,
        "Expected the instruction graph's file (graphs.instruction is given) but received none",
      );
    if (g.instruction === undefined && v.files.instruction !== undefined)
      failManifest(
        `variants[${i}].files.instruction`,
        'Expected no instruction file (graphs.instruction is not given, so the prefill takes instruction_ids) but received one',
      );
  });
}

/** The schema-valid manifest as an autoregressive package, or what it is instead. */
function acceptAr(valid: unknown): ArManifest {
  if (familyOf(valid) !== AR_FAMILY)
    failManifest(
      'family',
      `Expected an autoregressive package (format ${FLOW_FORMAT}, family ${AR_FAMILY}) but received format ${describe((valid as { format?: unknown }).format)}, family ${describe((valid as { family?: unknown }).family)}`,
    );
  return valid as ArManifest;
}

/**
 * Load an autoregressive package: validate `manifest.json` against the schema and for consistency,
 * load the word tokenizer, confine every variant's files and check their SHA-256.
 *
 * @throws {ModelError} INVALID_MANIFEST / MODEL_FILE naming the field (`manifest.<JSON path>`).
 * @example
 * const pkg = await loadArManifest('models/tiny-vla-ar');
 */
export async function loadArManifest(
  dir: string,
  options: LoadOptions = {},
): Promise<ArModelPackage> {
  // The autoregressive runtime calls the word tokenizer `words` (its action tokenizer is another).
  const {
    dir: root,
    manifest,
    tokenizer,
  } = await loadPackage(dir, options, {
    accept: acceptAr,
    check: checkArConsistency,
    roles: arRoles,
  });
  return { dir: root, manifest, words: tokenizer };
}

/**
 * The variant of `precision` with absolute paths of its graphs. `auto` picks, as for the other
 * families, the fastest variant whose report says it passed its gate on the CPU and is faster than
 * fp32; otherwise fp32.
 */
export function selectArVariant(
  pkg: ArModelPackage,
  precision: Precision | 'auto' = 'auto',
  provider = 'cpu',
): ArVariant & {
  readonly paths: Readonly<Record<ArRole, string>> & { readonly instruction?: string };
} {
  return selectPackageVariant(pkg, precision, provider, arRoles(pkg.manifest));
}
