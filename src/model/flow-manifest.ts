import { describe } from '../errors.js';
import {
  FLOW_FORMAT,
  type GraphSpec,
  type Manifest,
  type ManifestCommon,
  type Precision,
  type TensorSpec,
} from './manifest.js';
import {
  checkActionSection,
  expectDynamicTokenCount,
  expectGraphCount,
  expectNewName,
  expectShape,
  failManifest,
  type ShapeMessageOptions,
} from './manifest-sections.js';
import { loadPackage, readManifestJson } from './package-loader.js';
import { selectPackageVariant, type LoadOptions, type PackageVariant } from './variants.js';
import type { WordTokenizer } from './tokenizer.js';

/** The graph roles of a flow-matching package (format `vla-node/model@2`, family `flow`). */
export const FLOW_ROLES = ['encoder', 'instruction', 'prefix', 'expert'] as const;
export type FlowRole = (typeof FLOW_ROLES)[number];

/** One camera of a flow package: its name (the request's image key), image spec and patch grid. */
export interface FlowCamera {
  readonly name: string;
  readonly encoder: 'encoder';
  readonly image: Manifest['image'];
  readonly patch_grid: Manifest['patch_grid'];
}

/** A variant of a flow package. */
export type FlowVariant = PackageVariant<FlowRole>;

/**
 * The manifest of a flow-matching package (pi0 / SmolVLA shaped). Tensor roles are positional
 * (names are the graphs' own; see docs/flow-models.md):
 *
 * - encoder: pixels [B,3,H,W] -> visual tokens [B,N,D], saliency [B,N]; run once per camera.
 * - instruction: instruction ids [B,L] -> keys, values [B,layers,heads,L,head_dim].
 * - prefix: visual tokens [B,K,D], token positions [B,K] (camera c's patch p at c·N+p), state
 *   [B,S], context keys, values [B,layers,heads,C,head_dim] -> keys, values of the K visual
 *   tokens and the state [B,layers,heads,K+1,head_dim].
 * - expert: noisy chunk [B,H,A], flow time [B], state [B,S], context keys, values, prefix keys,
 *   values -> velocity [B,H,A].
 */
export interface FlowManifest extends ManifestCommon {
  readonly format: typeof FLOW_FORMAT;
  readonly family: 'flow';
  readonly cameras: readonly FlowCamera[];
  readonly action: Manifest['action'];
  readonly prefix: {
    readonly layers: number;
    readonly heads: number;
    readonly head_dim: number;
    readonly instruction_attention: 'block-causal';
  };
  readonly denoising: {
    readonly method: 'euler';
    readonly steps: number;
    readonly noise: 'gaussian';
    readonly time: 'noise-0-to-actions-1';
  };
  readonly graphs: Readonly<Record<FlowRole, GraphSpec>>;
  readonly variants: readonly FlowVariant[];
}

/** A loaded, validated flow package. */
export interface FlowPackage {
  readonly dir: string;
  readonly manifest: FlowManifest;
  readonly tokenizer: WordTokenizer;
}

/**
 * Whether `dir` holds a flow package (its manifest says format `vla-node/model@2` and is not of the
 * autoregressive family); false for anything else, including unreadable folders (the v1 loader
 * then reports why).
 */
export async function isFlowPackage(dir: string): Promise<boolean> {
  try {
    const { raw } = await readManifestJson(dir);
    const m = raw as { format?: unknown; family?: unknown } | null;
    return m?.format === FLOW_FORMAT && m.family !== 'autoregressive';
  } catch {
    return false;
  }
}

function expectInteger(field: string, t: TensorSpec): void {
  if (t.dtype !== 'int64' && t.dtype !== 'int32') {
    failManifest(`${field}.dtype`, `Expected int64|int32 but received ${t.dtype}`);
  }
}

// Flow's shape errors end with where the tensor is (users and tests read them that way).
const SAY_WHERE: ShapeMessageOptions = { sayWhere: true };

/** Cross-field checks the schema cannot express: every graph's shapes agree with the rest. */
function checkFlowConsistency(m: FlowManifest): void {
  const [cam0] = m.cameras;
  if (cam0 === undefined) failManifest('cameras', 'Expected at least one camera');
  const names = new Set<string>();
  m.cameras.forEach((c, i) => {
    expectNewName(names, c.name, `cameras[${i}].name`, 'camera');
    // One encoder graph serves every camera: the same image size and grid.
    if (
      c.image.width !== cam0.image.width ||
      c.image.height !== cam0.image.height ||
      c.patch_grid.width !== cam0.patch_grid.width ||
      c.patch_grid.height !== cam0.patch_grid.height
    ) {
      failManifest(
        `cameras[${i}].image`,
        `Expected every camera to share the encoder's image size and patch grid (${cam0.image.width}x${cam0.image.height}, ${cam0.patch_grid.width}x${cam0.patch_grid.height}) but ${c.name} has ${c.image.width}x${c.image.height}, ${c.patch_grid.width}x${c.patch_grid.height}`,
      );
    }
  });
  const n = cam0.patch_grid.width * cam0.patch_grid.height;
  const { layers, heads, head_dim: hd } = m.prefix;
  const D = m.token_dim;
  const L = m.tokenizer.max_length;
  const S = m.state.names.length;
  const { horizon: H, action_dim: A } = m.chunk;
  const g = m.graphs;

  expectGraphCount('encoder', g.encoder, 1, 2, 'pixels -> visual tokens, saliency');
  const [pixels] = g.encoder.inputs as [TensorSpec];
  const [vis, sal] = g.encoder.outputs as [TensorSpec, TensorSpec];
  expectShape(
    'graphs.encoder.inputs[0]',
    pixels,
    [null, 3, cam0.image.height, cam0.image.width],
    SAY_WHERE,
  );
  expectShape('graphs.encoder.outputs[0]', vis, [null, n, D], SAY_WHERE);
  expectShape('graphs.encoder.outputs[1]', sal, [null, n], SAY_WHERE);

  const kv = [null, layers, heads, null, hd];
  expectGraphCount('instruction', g.instruction, 1, 2, 'instruction ids -> keys, values');
  const [ids] = g.instruction.inputs as [TensorSpec];
  expectInteger('graphs.instruction.inputs[0]', ids);
  expectShape('graphs.instruction.inputs[0]', ids, [null, L], SAY_WHERE);
  g.instruction.outputs.forEach((t, i) => {
    expectShape(`graphs.instruction.outputs[${i}]`, t, [null, layers, heads, L, hd], SAY_WHERE);
  });

  expectGraphCount(
    'prefix',
    g.prefix,
    5,
    2,
    'visual tokens, positions, state, context keys, values -> keys, values',
  );
  const [pv, pp, ps, ck, cv] = g.prefix.inputs as [
    TensorSpec,
    TensorSpec,
    TensorSpec,
    TensorSpec,
    TensorSpec,
  ];
  expectDynamicTokenCount('graphs.prefix.inputs[0].shape[1]', pv.shape[1]);
  expectShape('graphs.prefix.inputs[0]', pv, [null, null, D], SAY_WHERE);
  expectInteger('graphs.prefix.inputs[1]', pp);
  expectShape('graphs.prefix.inputs[1]', pp, [null, null], SAY_WHERE);
  expectShape('graphs.prefix.inputs[2]', ps, [null, S], SAY_WHERE);
  expectShape('graphs.prefix.inputs[3]', ck, kv, SAY_WHERE);
  expectShape('graphs.prefix.inputs[4]', cv, kv, SAY_WHERE);
  g.prefix.outputs.forEach((t, i) => {
    expectShape(`graphs.prefix.outputs[${i}]`, t, kv, SAY_WHERE);
  });

  expectGraphCount(
    'expert',
    g.expert,
    7,
    1,
    'noisy actions, time, state, context keys, values, prefix keys, values -> velocity',
  );
  const [xt, time, es, ...ekv] = g.expert.inputs as [
    TensorSpec,
    TensorSpec,
    TensorSpec,
    ...TensorSpec[],
  ];
  expectShape('graphs.expert.inputs[0]', xt, [null, H, A], SAY_WHERE);
  expectShape('graphs.expert.inputs[1]', time, [null], SAY_WHERE);
  expectShape('graphs.expert.inputs[2]', es, [null, S], SAY_WHERE);
  ekv.forEach((t, i) => {
    expectShape(`graphs.expert.inputs[${i + 3}]`, t, kv, SAY_WHERE);
  });
  expectShape(
    'graphs.expert.outputs[0]',
    g.expert.outputs[0] as TensorSpec,
    [null, H, A],
    SAY_WHERE,
  );
  for (const role of FLOW_ROLES) {
    for (const kind of ['inputs', 'outputs'] as const) {
      g[role][kind].forEach((t, i) => {
        if (t.dtype === 'float16' || t.dtype === 'uint8') {
          failManifest(
            `graphs.${role}.${kind}[${i}].dtype`,
            `Expected float32 or an integer type at the graph boundary but received ${t.dtype}`,
          );
        }
      });
    }
  }

  checkActionSection(m.action, A, ['names', 'mean', 'std', 'min', 'max']);
}

/** The schema-valid manifest as a flow package, or which loader runs what it is instead. */
function acceptFlow(valid: unknown): FlowManifest {
  if ((valid as { format?: unknown }).format !== FLOW_FORMAT) {
    failManifest(
      'format',
      `Expected ${FLOW_FORMAT} (a flow-matching package) but received ${describe((valid as { format?: unknown }).format)}: load it with loadModelPackage`,
    );
  }
  if ((valid as { family?: unknown }).family !== 'flow') {
    failManifest(
      'family',
      `Expected family flow (a flow-matching package) but received ${describe((valid as { family?: unknown }).family)}: an autoregressive package runs with ArPolicy; info and bench decode run it`,
    );
  }
  return valid as FlowManifest;
}

/**
 * Load a flow package: validate `manifest.json` (format `vla-node/model@2`) against the schema and
 * for consistency, load the tokenizer, confine every file and check its SHA-256.
 *
 * @throws {ModelError} INVALID_MANIFEST / MODEL_FILE naming the field.
 * @example
 * const pkg = await loadFlowPackage('models/tiny-vla-flow');
 */
export async function loadFlowPackage(
  dir: string,
  options: LoadOptions = {},
): Promise<FlowPackage> {
  return loadPackage(dir, options, {
    accept: acceptFlow,
    check: checkFlowConsistency,
    roles: () => FLOW_ROLES,
  });
}

/**
 * The variant of `precision` with absolute paths of its graphs. `auto` picks, as for v1, the
 * fastest variant whose compression report says it passed its gate on `provider` (CPU by default)
 * and is faster than fp32; otherwise fp32.
 */
export function selectFlowVariant(
  pkg: FlowPackage,
  precision: Precision | 'auto',
  provider = 'cpu',
): FlowVariant & { readonly paths: Readonly<Record<FlowRole, string>> } {
  return selectPackageVariant(pkg, precision, provider, FLOW_ROLES);
}
