import type { PruningStrategy } from '../config/index.js';
import { InputError } from '../errors.js';

/** What a pruner sees of one frame: the encoder's tokens (N × D, row-major) and saliency (N). */
export interface PruneInput {
  readonly tokens: Float32Array;
  readonly saliency: Float32Array;
  readonly grid: { readonly width: number; readonly height: number };
  readonly tokenDim: number;
  /** Camera stream the frame came from (stateful strategies keep state per stream). */
  readonly stream: string;
}

/**
 * A visual-token pruning strategy. `select` writes the grid indices of the `budget` tokens it
 * keeps into `out`, in ascending grid order (kept tokens keep their positions), and returns how
 * many it wrote. Same input and seed, same selection.
 */
export interface Pruner {
  readonly name: string;
  select(input: PruneInput, budget: number, out: Int32Array): number;
  /** Forget per-stream state (all streams when none is named). */
  reset(stream?: string): void;
}

/** How many tokens to keep out of `total`: `keepCount` when > 0, else round(keepRatio × total), at least 1. */
export function tokenBudget(total: number, keepRatio: number, keepCount: number): number {
  if (!(keepRatio > 0 && keepRatio <= 1)) {
    throw new InputError(`Expected pruning.keep_ratio in (0, 1] but received ${keepRatio}`, {
      field: 'pruning.keep_ratio',
    });
  }
  const n = keepCount > 0 ? keepCount : Math.round(keepRatio * total);
  return Math.min(total, Math.max(1, n));
}

/** Keep every token: the baseline and the default. */
export class NonePruner implements Pruner {
  readonly name = 'none';
  select(input: PruneInput, budget: number, out: Int32Array): number {
    const n = Math.min(budget, input.saliency.length);
    for (let i = 0; i < n; i++) out[i] = i;
    return n;
  }
  reset(): void {
    // stateless
  }
}

export type { PruningStrategy } from '../config/index.js';

/** The pruner for a configured strategy. */
export function createPruner(strategy: PruningStrategy): Pruner {
  return PRUNERS[strategy]();
}

const PRUNERS: Record<PruningStrategy, () => Pruner> = {
  none: () => new NonePruner(),
};
