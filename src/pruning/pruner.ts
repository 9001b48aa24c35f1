import type { PruningStrategy } from '../config/index.js';
import { InputError } from '../errors.js';

export type { PruningStrategy } from '../config/index.js';

/** What a pruner sees of one frame. */
export interface PruneInput {
  /** The encoder's tokens, N × tokenDim, row-major in grid order. */
  readonly tokens: Float32Array;
  /** One score per token in [0, 1] (the encoder's saliency head). */
  readonly saliency: Float32Array;
  readonly grid: { readonly width: number; readonly height: number };
  readonly tokenDim: number;
  /** The frame as the encoder saw it: packed RGB8 at the model's input size. */
  readonly rgb: Uint8Array;
  readonly imageWidth: number;
  readonly imageHeight: number;
  /** Camera stream the frame came from (stateful strategies keep state per stream). */
  readonly stream: string;
}

/** Where a pruner writes the tokens the policy will see: capacity N positions and N × tokenDim values. */
export interface PruneOutput {
  /** Grid index (row-major) of each kept token, ascending. */
  readonly positions: Int32Array;
  /** The kept tokens, row-major, in the order of `positions`. */
  readonly tokens: Float32Array;
}

/**
 * A visual-token pruning strategy. `prune` keeps at most `budget` tokens: it writes their grid
 * positions (ascending: kept tokens keep their original positions) and their embeddings into
 * `out` and returns how many it kept. The same input, state and seed give the same result.
 */
export interface Pruner {
  readonly name: PruningStrategy;
  prune(input: PruneInput, budget: number, out: PruneOutput): number;
  /** Forget per-stream state (every stream when none is named). */
  reset(stream?: string): void;
}

/**
 * How many tokens to keep out of `total`: `keepCount` when > 0, else round(keepRatio × total),
 * at least 1.
 *
 * @throws {InputError} when the ratio is outside (0, 1] or the count outside [0, total].
 */
export function tokenBudget(total: number, keepRatio: number, keepCount: number): number {
  if (!(keepRatio > 0 && keepRatio <= 1)) {
    throw new InputError(`Expected pruning.keep_ratio in (0, 1] but received ${keepRatio}`, {
      field: 'pruning.keep_ratio',
    });
  }
  if (!Number.isInteger(keepCount) || keepCount < 0 || keepCount > total) {
    throw new InputError(
      `Expected pruning.keep_count in [0, ${total}] (0 = use keep_ratio; the model has ${total} visual tokens) but received ${keepCount}`,
      { field: 'pruning.keep_count' },
    );
  }
  return keepCount > 0 ? keepCount : Math.max(1, Math.round(keepRatio * total));
}
