/**
 * Checks of the manifest sections that every package family (encoder + policy, flow-matching,
 * autoregressive) shares and that the schema cannot express: the action and state vectors agree
 * with their dimensions, variant names are unique, the tokenizer file agrees with the manifest, and
 * graph tensors have the counts and shapes the runtime feeds. Each family's loader adds the checks
 * of its own graphs. The errors' code and `manifest.<JSON path>` field are the same whichever loader
 * finds the fault; the wording of a shape's dimension message is the loader's (see
 * ShapeMessageOptions), as each loader had it.
 */
import { describe, ModelError } from '../errors.js';
import { packageFile, PACKAGE_LIMITS } from './files.js';
import type { Dim, GraphSpec, ManifestCommon, TensorSpec } from './manifest.js';
import { WordTokenizer } from './tokenizer.js';

/**
 * Throw the error of a manifest that passed the schema but not a cross-field check.
 *
 * @param field the JSON path below `manifest`, e.g. `action.min[0]`.
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.<field>`.
 */
export function failManifest(field: string, message: string): never {
  throw new ModelError('INVALID_MANIFEST', message, { field: `manifest.${field}` });
}

/**
 * The action section: each of `keys` holds one value per action dimension, and every action's
 * lower limit is below its upper limit (the safety clamp needs a non-empty range).
 *
 * @param keys the section's per-dimension vectors, in the order they are checked (the
 * autoregressive family has no normalisation, so no `mean` and `std`).
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.action.<key>` or `manifest.action.min[i]`.
 */
export function checkActionSection<K extends string>(
  action: Readonly<Record<K, readonly unknown[]>> & {
    readonly min: readonly number[];
    readonly max: readonly number[];
  },
  actionDim: number,
  keys: readonly K[],
): void {
  for (const key of keys) {
    if (action[key].length !== actionDim)
      failManifest(
        `action.${key}`,
        `Expected ${actionDim} values (chunk.action_dim) but received ${action[key].length}`,
      );
  }
  action.min.forEach((lo, i) => {
    const hi = action.max[i] ?? Number.NaN;
    if (!(lo < hi))
      failManifest(
        `action.min[${i}]`,
        `Expected action.min[${i}] < action.max[${i}] but received ${lo} and ${hi}`,
      );
  });
}

/**
 * The checks every package family shares: the state's mean and std have one value per state name,
 * and no two variants share a name.
 *
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.state.mean|std` or `manifest.variants[i].name`.
 */
export function checkStateAndVariants(
  m: Pick<ManifestCommon, 'state'> & { readonly variants: readonly { readonly name: string }[] },
): void {
  const s = m.state.names.length;
  for (const key of ['mean', 'std'] as const) {
    if (m.state[key].length !== s)
      failManifest(
        `state.${key}`,
        `Expected ${s} values (one per state name) but received ${m.state[key].length}`,
      );
  }
  const names = new Set<string>();
  m.variants.forEach((v, i) => {
    expectNewName(names, v.name, `variants[${i}].name`, 'variant');
  });
}

/**
 * `name` is not among the `seen` names of a list's earlier items (a variant or camera name picks
 * one item, so a repeat would hide the later one); adds it. One item at a time, so a caller that
 * checks more of each item reports the first faulty item, whatever its fault.
 *
 * @param what the kind of item, for the message (e.g. "camera").
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.<field>`.
 */
export function expectNewName(seen: Set<string>, name: string, field: string, what: string): void {
  if (seen.has(name))
    failManifest(field, `Expected unique ${what} names but ${JSON.stringify(name)} repeats`);
  seen.add(name);
}

/** Load the package's tokenizer and check it against the manifest's `tokenizer` entry. */
export async function loadTokenizer(
  root: string,
  spec: ManifestCommon['tokenizer'],
): Promise<WordTokenizer> {
  const tokenizer = await WordTokenizer.load(
    packageFile(root, spec.file, 'manifest.tokenizer.file', {
      maxBytes: PACKAGE_LIMITS.jsonBytes,
    }),
  );
  if (tokenizer.maxLength !== spec.max_length) {
    failManifest(
      'tokenizer.max_length',
      `Expected ${spec.max_length} to equal the tokenizer file's max_length ${tokenizer.maxLength}`,
    );
  }
  return tokenizer;
}

/**
 * The visual-token count of the graph input at `field` is a name, not a number: pruning hands the
 * policy a different number of tokens from frame to frame.
 *
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.<field>`.
 */
export function expectDynamicTokenCount(
  field: string,
  dim: Dim | undefined,
): asserts dim is string {
  if (typeof dim !== 'string')
    failManifest(
      field,
      `Expected a named (dynamic) token count so pruned token sets fit, but received ${describe(dim)}`,
    );
}

/**
 * The graph of `role` has exactly the inputs and outputs the runtime feeds and reads.
 *
 * @param what the tensors in words, for the message (e.g. "pixels -> visual tokens, saliency").
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.graphs.<role>`.
 */
export function expectGraphCount(
  role: string,
  g: GraphSpec,
  inputs: number,
  outputs: number,
  what: string,
): void {
  if (g.inputs.length !== inputs || g.outputs.length !== outputs)
    failManifest(
      `graphs.${role}`,
      `Expected the ${role} graph to have ${inputs} inputs and ${outputs} outputs (${what}) but received ${g.inputs.length} and ${g.outputs.length}`,
    );
}

/** How {@link expectShape} words a wrong dimension. */
export interface ShapeMessageOptions {
  /**
   * End the message with "in <field>.shape" (the flow loader's wording, which its users and tests
   * rely on); the autoregressive loader's message stops at the received value.
   */
  readonly sayWhere?: boolean;
}

/**
 * The tensor at `field` has the rank of `expected` and each dimension `expected` gives (null: any).
 *
 * @throws {ModelError} INVALID_MANIFEST naming `manifest.<field>.shape` (wrong rank) or
 * `manifest.<field>.shape[i]` (wrong dimension).
 */
export function expectShape(
  field: string,
  tensor: TensorSpec,
  expected: readonly (Dim | null)[],
  options: ShapeMessageOptions = {},
): void {
  if (tensor.shape.length !== expected.length)
    failManifest(
      `${field}.shape`,
      `Expected rank ${expected.length} [${expected.map((d) => (d === null ? '?' : String(d))).join(', ')}] but received [${tensor.shape.join(', ')}]`,
    );
  const where = options.sayWhere === true ? ` in ${field}.shape` : '';
  expected.forEach((want, i) => {
    if (want !== null && tensor.shape[i] !== want)
      failManifest(
        `${field}.shape[${i}]`,
        `Expected ${String(want)} but received ${describe(tensor.shape[i])}${where}`,
      );
  });
}
