import { describe, ModelError } from '../errors.js';
import type { ResizeMode } from '../ingest/frame.js';
import { checkActionSection, expectDynamicTokenCount, failManifest } from './manifest-sections.js';
import { loadPackage } from './package-loader.js';
import type { WordTokenizer } from './tokenizer.js';
import { selectPackageVariant, type LoadOptions, type PackageVariant } from './variants.js';

export type Dim = number | string;
export type TensorDtype = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: TensorDtype;
  readonly shape: readonly Dim[];
}

export interface GraphSpec {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export type Precision = 'fp32' | 'fp16' | 'int8' | 'int4';
export type GraphRole = 'encoder' | 'policy';
/** The graph roles of an encoder + policy package, in the order they are processed. */
export const GRAPH_ROLES: readonly GraphRole[] = Object.freeze(['encoder', 'policy'] as const);

export interface ModelFile {
  readonly path: string;
  readonly sha256: string;
}

/** A variant of an encoder + policy package. */
export type Variant = PackageVariant<GraphRole>;

/**
 * The fields every package family's manifest has, with the same meaning in each (the schema,
 * schema/model-manifest.schema.json, describes them once for all formats).
 */
export interface ManifestCommon {
  readonly name: string;
  readonly description?: string;
  readonly control_rate_hz: number;
  readonly token_dim: number;
  readonly chunk: { readonly horizon: number; readonly action_dim: number };
  readonly state: {
    readonly names: readonly string[];
    readonly mean: readonly number[];
    readonly std: readonly number[];
  };
  readonly tokenizer: { readonly file: string; readonly max_length: number };
  readonly training?: Readonly<Record<string, unknown>>;
}

/**
 * The manifest of a model package (`models/NAME/manifest.json`, format `vla-node/model@1`).
 *
 * Tensor roles are positional: the encoder's input 0 is the image, its outputs are the visual
 * tokens [B, N, D] and one saliency score per token [B, N]; the policy's inputs are the kept
 * visual tokens [B, K, D], their grid positions [B, K] (row-major patch index), the instruction
 * token ids [B, L] and the normalised robot state [B, S]; its output is the normalised action
 * chunk [B, H, A]. Names are the graphs' own. B is 1 in every tensor (one observation per run)
 * or the same name in every tensor (e.g. "batch": the graphs accept a batch; see
 * {@link batchDimension}).
 */
export interface Manifest extends ManifestCommon {
  readonly format: 'vla-node/model@1';
  readonly image: {
    readonly width: number;
    readonly height: number;
    readonly channels: 3;
    readonly layout: 'NCHW';
    readonly resize: ResizeMode;
    readonly mean: readonly [number, number, number];
    readonly std: readonly [number, number, number];
  };
  readonly patch_grid: {
    readonly width: number;
    readonly height: number;
    readonly patch_size: number;
  };
  readonly action: {
    readonly names: readonly string[];
    readonly mean: readonly number[];
    readonly std: readonly number[];
    readonly min: readonly number[];
    readonly max: readonly number[];
  };
  readonly graphs: Readonly<Record<GraphRole, GraphSpec>>;
  readonly variants: readonly Variant[];
}

/** Format `vla-node/model@2`: the flow-matching and autoregressive families (`family`). */
export const FLOW_FORMAT = 'vla-node/model@2';

/** The schema-valid manifest as format v1, or why this loader cannot load a v2 package. */
function acceptV1(valid: unknown): Manifest {
  if ((valid as { format?: unknown }).format === FLOW_FORMAT) {
    // The encoder + policy runtime cannot run a flow package; the flow runtime loads it with
    // loadFlowPackage (src/model/flow-manifest.ts).
    const family = (valid as { family?: unknown }).family;
    throw new ModelError(
      'INVALID_MANIFEST',
      family === 'autoregressive'
        ? `Expected format vla-node/model@1 (encoder + policy) here but received ${FLOW_FORMAT}, family autoregressive: load it with ArPolicy; info and bench decode run it`
        : `Expected format vla-node/model@1 (encoder + policy) here but received ${FLOW_FORMAT} (a flow-matching package): load it with loadFlowPackage; sim, info and bench flow run it`,
      { field: 'manifest.format' },
    );
  }
  return valid as Manifest;
}

function expectDim(field: string, actual: Dim | undefined, expected: Dim, what: string): void {
  if (actual !== expected) {
    failManifest(
      field,
      `Expected ${what} = ${String(expected)} but the manifest says ${describe(actual)}`,
    );
  }
}

/**
 * The name of the graphs' batch dimension (e.g. "batch") when the manifest declares one, so that
 * several observations can run in one call; undefined when every tensor's first dimension is 1.
 * A validated manifest is one or the other (mixtures are rejected when it loads).
 *
 * @example
 * if (batchDimension(pkg.manifest) === undefined) log('the model takes one observation per run');
 */
export function batchDimension(m: Manifest): string | undefined {
  const first = m.graphs.encoder.inputs[0]?.shape[0];
  return typeof first === 'string' ? first : undefined;
}

/** Every graph tensor's first dimension is 1, or every one is the same name. */
function checkBatchDimension(m: Manifest): void {
  const dims: { field: string; dim: Dim | undefined }[] = [];
  for (const role of GRAPH_ROLES) {
    for (const kind of ['inputs', 'outputs'] as const) {
      m.graphs[role][kind].forEach((t, i) => {
        dims.push({ field: `graphs.${role}.${kind}[${i}].shape[0]`, dim: t.shape[0] });
      });
    }
  }
  const [head] = dims;
  if (head === undefined) return;
  const other = dims.find((d) => d.dim !== head.dim);
  if (other !== undefined) {
    failManifest(
      other.field,
      `Expected the first dimension of every graph tensor to be 1 (one observation per run) or the same name (a batch dimension, e.g. "batch") but ${head.field} is ${describe(head.dim)} and ${other.field} is ${describe(other.dim)}`,
    );
  }
}

/** Cross-field checks the schema cannot express: the graphs' shapes agree with the rest. */
function checkConsistency(m: Manifest): void {
  checkBatchDimension(m);
  const tokens = m.patch_grid.width * m.patch_grid.height;
  const [pixels] = m.graphs.encoder.inputs;
  const [vis, sal] = m.graphs.encoder.outputs;
  if (pixels === undefined || vis === undefined || sal === undefined) {
    failManifest(
      'graphs.encoder',
      'Expected the encoder to have 1 input (pixels) and 2 outputs (visual tokens, saliency)',
    );
  }
  if (pixels.shape.length !== 4)
    failManifest(
      'graphs.encoder.inputs[0].shape',
      `Expected rank 4 [B, 3, H, W] but received rank ${pixels.shape.length}`,
    );
  expectDim('graphs.encoder.inputs[0].shape[1]', pixels.shape[1], 3, 'channels');
  expectDim('graphs.encoder.inputs[0].shape[2]', pixels.shape[2], m.image.height, 'image.height');
  expectDim('graphs.encoder.inputs[0].shape[3]', pixels.shape[3], m.image.width, 'image.width');
  expectDim(
    'graphs.encoder.outputs[0].shape[1]',
    vis.shape[1],
    tokens,
    'patch_grid.width × patch_grid.height',
  );
  expectDim('graphs.encoder.outputs[0].shape[2]', vis.shape[2], m.token_dim, 'token_dim');
  expectDim(
    'graphs.encoder.outputs[1].shape[1]',
    sal.shape[1],
    tokens,
    'patch_grid.width × patch_grid.height',
  );

  const [pv, pp, pt, ps] = m.graphs.policy.inputs;
  const [actions] = m.graphs.policy.outputs;
  if (
    pv === undefined ||
    pp === undefined ||
    pt === undefined ||
    ps === undefined ||
    actions === undefined
  ) {
    failManifest(
      'graphs.policy',
      'Expected the policy to have 4 inputs (visual tokens, token positions, instruction ids, state) and 1 output (actions)',
    );
  }
  expectDynamicTokenCount('graphs.policy.inputs[0].shape[1]', pv.shape[1]);
  expectDim('graphs.policy.inputs[0].shape[2]', pv.shape[2], m.token_dim, 'token_dim');
  if (pp.dtype !== 'int64' && pp.dtype !== 'int32')
    failManifest(
      'graphs.policy.inputs[1].dtype',
      `Expected int64|int32 grid positions but received ${pp.dtype}`,
    );
  if (pt.dtype !== 'int64' && pt.dtype !== 'int32')
    failManifest(
      'graphs.policy.inputs[2].dtype',
      `Expected int64|int32 token ids but received ${pt.dtype}`,
    );
  expectDim(
    'graphs.policy.inputs[2].shape[1]',
    pt.shape[1],
    m.tokenizer.max_length,
    'tokenizer.max_length',
  );
  expectDim(
    'graphs.policy.inputs[3].shape[1]',
    ps.shape[1],
    m.state.names.length,
    'the number of state.names',
  );
  expectDim(
    'graphs.policy.outputs[0].shape[1]',
    actions.shape[1],
    m.chunk.horizon,
    'chunk.horizon',
  );
  expectDim(
    'graphs.policy.outputs[0].shape[2]',
    actions.shape[2],
    m.chunk.action_dim,
    'chunk.action_dim',
  );

  checkActionSection(m.action, m.chunk.action_dim, ['names', 'mean', 'std', 'min', 'max']);
}

/** A loaded, validated model package. */
export interface ModelPackage {
  /** Absolute folder of the package. */
  readonly dir: string;
  readonly manifest: Manifest;
  readonly tokenizer: WordTokenizer;
}

/**
 * Load `dir/manifest.json`, validate it against the schema and for consistency, load the
 * tokenizer and check that every variant's files exist and match their SHA-256.
 *
 * @example
 * const pkg = await loadModelPackage('models/tiny-vla');
 * const fp32 = selectVariant(pkg, 'fp32');
 */
export async function loadModelPackage(
  dir: string,
  options: LoadOptions = {},
): Promise<ModelPackage> {
  return loadPackage(dir, options, {
    accept: acceptV1,
    check: checkConsistency,
    roles: () => GRAPH_ROLES,
  });
}

/**
 * The variant to run for `precision`. `auto` picks the fastest variant whose report says it passed
 * its gate on `provider` (CPU by default) and is faster than fp32; otherwise fp32.
 */
export function selectVariant(
  pkg: ModelPackage,
  precision: Precision | 'auto',
  provider = 'cpu',
): Variant & { readonly paths: Readonly<Record<GraphRole, string>> } {
  return selectPackageVariant(pkg, precision, provider, GRAPH_ROLES);
}
