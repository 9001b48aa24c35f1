/**
 * The batch stages' bookkeeping for {@link VlaPipeline.inferBatch}: the per-observation buffers
 * (slots), the results of a batch (which entries failed, which ran), the grouping of the policy
 * calls by kept-token count, and the per-observation conversions in and out of the model's units.
 */

import type { PolicyInput } from '../backend/backend.js';
import { BackendError } from '../errors.js';
import type { Manifest } from '../model/manifest.js';
import type { PruneInput } from '../pruning/pruner.js';
import { enforceLimits, type ActionLimits } from '../runtime/safety.js';
import type { ActionChunk, PreparedObservation } from './types.js';

/** Per-observation buffers of a batch: the frame at the model's size, the pruner's output and
 * the policy's other inputs. */
export interface Slot {
  /** The slot's raw camera frame as RGB8 at the model's size (reused: see VlaPipeline.lastSelection). */
  readonly rgb: Uint8Array;
  readonly positions: Int32Array;
  readonly tokens: Float32Array;
  readonly ids: BigInt64Array;
  readonly state: Float32Array;
  readonly input: PolicyInput;
  instruction: string | undefined;
}

/** The slots of a pipeline's batches, made on first use and kept across batches. */
export class BatchSlots {
  readonly #slots: Slot[] = [];
  readonly #manifest: Manifest;
  readonly #totalTokens: number;

  constructor(manifest: Manifest, totalTokens: number) {
    this.#manifest = manifest;
    this.#totalTokens = totalTokens;
  }

  /** The buffers of batch slot `j`, made on first use. */
  slot(j: number): Slot {
    for (let i = this.#slots.length; i <= j; i++) {
      const m = this.#manifest;
      const positions = new Int32Array(this.#totalTokens);
      const tokens = new Float32Array(this.#totalTokens * m.token_dim);
      const ids = new BigInt64Array(m.tokenizer.max_length);
      const state = new Float32Array(m.state.names.length);
      this.#slots.push({
        rgb: new Uint8Array(m.image.width * m.image.height * 3),
        positions,
        tokens,
        ids,
        state,
        input: { tokens, positions, instructionIds: ids, state },
        instruction: undefined,
      });
    }
    return this.#slots[j] as Slot;
  }

  /** Forget the instructions tokenized into the slots (they are tokenized again on next use). */
  forgetInstructions(): void {
    for (const slot of this.#slots) slot.instruction = undefined;
  }
}

/** One observation of a batch that prepared: its index in the batch and its prepared form. */
export interface BatchItem {
  readonly index: number;
  readonly prepared: PreparedObservation;
}

/**
 * The results of one batch: the entries that failed to prepare are rejected from the start, the
 * others (the {@link items}, numbered by slot) as the stages settle them.
 */
export class BatchResults {
  /** The observations that prepared, in batch order; slot `j` is `items[j]`. */
  readonly items: BatchItem[] = [];
  // Entries still undefined at the end were never run (a bug, not the input's fault).
  readonly #results: (PromiseSettledResult<ActionChunk> | undefined)[];

  constructor(settled: readonly PromiseSettledResult<PreparedObservation>[]) {
    this.#results = settled.map((s) => (s.status === 'fulfilled' ? undefined : s));
    settled.forEach((s, index) => {
      if (s.status === 'fulfilled') this.items.push({ index, prepared: s.value });
    });
  }

  /** Reject the entries of these slots with `reason`. */
  fail(reason: unknown, slots: readonly number[]): void {
    for (const j of slots) {
      const item = this.items[j];
      if (item !== undefined) this.#results[item.index] = { status: 'rejected', reason };
    }
  }

  /** Fulfil the entry of `item` with its chunk. */
  fulfil(item: BatchItem, value: ActionChunk): void {
    this.#results[item.index] = { status: 'fulfilled', value };
  }

  /** One result per observation of the batch, in order. */
  complete(): PromiseSettledResult<ActionChunk>[] {
    return this.#results.map(
      (r) =>
        r ?? {
          status: 'rejected',
          reason: new BackendError('Expected the batch to run this observation but it did not', {
            field: 'batch',
          }),
        },
    );
  }
}

/** The slots of each kept-token count (one policy call each), in order of first appearance. */
export function policyGroups(
  kept: Int32Array,
): { readonly count: number; readonly members: number[] }[] {
  const counts = [...new Set(kept)].filter((k) => k > 0);
  return counts.map((count) => {
    const members: number[] = [];
    kept.forEach((k, j) => {
      if (k === count) members.push(j);
    });
    return { count, members };
  });
}

/** The state in the policy's normalised units, into `out` (already checked). */
export function normaliseState(
  state: ArrayLike<number>,
  spec: Manifest['state'],
  out: Float32Array,
): void {
  const { mean, std } = spec;
  for (let i = 0; i < out.length; i++) {
    out[i] = ((state[i] as number) - (mean[i] as number)) / (std[i] as number);
  }
}

/** What the pruner sees of one observation. */
export function pruneInput(
  m: Manifest,
  tokens: Float32Array,
  saliency: Float32Array,
  rgb: Uint8Array,
  stream: string | undefined,
): PruneInput {
  return {
    tokens,
    saliency,
    grid: m.patch_grid,
    tokenDim: m.token_dim,
    rgb,
    imageWidth: m.image.width,
    imageHeight: m.image.height,
    stream: stream ?? 'camera',
  };
}

/**
 * One chunk from the policy's output at `offset`: de-normalised to manifest units and clamped
 * to the limits (the count of values clamped).
 */
export function toActions(
  raw: Float32Array,
  offset: number,
  m: Manifest,
  limits: ActionLimits,
): { actions: Float32Array; clamped: number } {
  const a = m.chunk.action_dim;
  const actions = new Float32Array(m.chunk.horizon * a);
  for (let i = 0; i < actions.length; i++) {
    actions[i] =
      (raw[offset + i] as number) * (m.action.std[i % a] as number) +
      (m.action.mean[i % a] as number);
  }
  return { actions, clamped: enforceLimits(actions, a, limits) };
}
