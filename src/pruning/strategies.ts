import { kernels } from '../native/index.js';
import { Rng } from '../util/rng.js';
import type { PruneInput, PruneOutput, Pruner, PruningStrategy } from './pruner.js';

/** A pruner that chooses a subset of the tokens and passes them through unchanged. */
abstract class SelectingPruner implements Pruner {
  abstract readonly name: PruningStrategy;

  prune(input: PruneInput, budget: number, out: PruneOutput): number {
    const n = input.saliency.length;
    const k = Math.min(budget, n);
    this.select(input, k, out.positions);
    kernels.gatherRows(input.tokens, input.tokenDim, out.positions, k, out.tokens);
    return k;
  }

  /** Write `k` grid indices, ascending, into `positions`. */
  protected abstract select(input: PruneInput, k: number, positions: Int32Array): void;

  reset(): void {
    // stateless unless overridden
  }
}

/** No pruning: every token, whatever the budget (the baseline and the default). */
export class NonePruner implements Pruner {
  readonly name = 'none';
  prune(input: PruneInput, _budget: number, out: PruneOutput): number {
    const n = input.saliency.length;
    for (let i = 0; i < n; i++) out.positions[i] = i;
    out.tokens.set(input.tokens.subarray(0, n * input.tokenDim));
    return n;
  }
  reset(): void {
    // stateless
  }
}

/**
 * A uniformly random subset, reproducible: the n-th frame of a stream after a reset gets the same
 * subset for the same seed.
 */
export class RandomPruner extends SelectingPruner {
  readonly name = 'random';
  readonly #seed: number;
  readonly #frames = new Map<string, number>();
  #scratch = new Int32Array(0);

  constructor(seed: number) {
    super();
    this.#seed = seed >>> 0;
  }

  protected select(input: PruneInput, k: number, positions: Int32Array): void {
    const n = input.saliency.length;
    const frame = this.#frames.get(input.stream) ?? 0;
    this.#frames.set(input.stream, frame + 1);
    const rng = new Rng(mix(this.#seed, hashString(input.stream), frame));
    if (this.#scratch.length !== n) this.#scratch = new Int32Array(n);
    const idx = this.#scratch;
    for (let i = 0; i < n; i++) idx[i] = i;
    for (let i = 0; i < k; i++) {
      const j = i + rng.int(n - i);
      const t = idx[i] as number;
      idx[i] = idx[j] as number;
      idx[j] = t;
    }
    positions.set(idx.subarray(0, k));
    positions.subarray(0, k).sort();
  }

  override reset(stream?: string): void {
    if (stream === undefined) this.#frames.clear();
    else this.#frames.delete(stream);
  }
}

/** The `k` most salient tokens by the encoder's saliency head. */
export class SaliencyPruner extends SelectingPruner {
  readonly name = 'saliency';
  protected select(input: PruneInput, k: number, positions: Int32Array): void {
    kernels.topK(input.saliency, k, positions);
  }
}

/**
 * DivPrune: greedy max-min diversity of the token embeddings (cosine distance), starting from the
 * most salient token.
 */
export class DiversityPruner extends SelectingPruner {
  readonly name = 'diversity';
  readonly #first = new Int32Array(1);
  protected select(input: PruneInput, k: number, positions: Int32Array): void {
    kernels.topK(input.saliency, 1, this.#first);
    const n = input.saliency.length;
    kernels.maxMinDiversity(input.tokens, n, input.tokenDim, k, this.#first[0] ?? 0, positions);
  }
}

/**
 * VLA-Cache-style temporal pruning: each token's score is its saliency plus a bonus for how much
 * its image patch changed since the previous frame of the same stream; static, non-salient tokens
 * go first. The first frame of a stream (or after a reset) uses saliency alone.
 */
export class TemporalPruner extends SelectingPruner {
  readonly name = 'temporal';
  /** Mean absolute change (grey levels, 0–255) at which a patch gets the full bonus. */
  static readonly CHANGE_SCALE = 8;
  /** Weight of the change bonus relative to saliency (which is in [0, 1]). */
  static readonly CHANGE_WEIGHT = 1;
  readonly #previous = new Map<string, Uint8Array>();
  #diff = new Float32Array(0);
  #score = new Float32Array(0);

  protected select(input: PruneInput, k: number, positions: Int32Array): void {
    const n = input.saliency.length;
    const prev = this.#previous.get(input.stream);
    if (prev?.length !== input.rgb.length) {
      kernels.topK(input.saliency, k, positions);
    } else {
      if (this.#diff.length !== n) {
        this.#diff = new Float32Array(n);
        this.#score = new Float32Array(n);
      }
      const { width, height } = input.grid;
      kernels.patchDifference(
        prev,
        input.rgb,
        input.imageWidth,
        input.imageHeight,
        width,
        height,
        this.#diff,
      );
      for (let i = 0; i < n; i++) {
        const change = Math.min(1, (this.#diff[i] as number) / TemporalPruner.CHANGE_SCALE);
        this.#score[i] = (input.saliency[i] as number) + TemporalPruner.CHANGE_WEIGHT * change;
      }
      kernels.topK(this.#score, k, positions);
    }
    if (prev?.length === input.rgb.length) prev.set(input.rgb);
    else this.#previous.set(input.stream, input.rgb.slice());
  }

  override reset(stream?: string): void {
    if (stream === undefined) this.#previous.clear();
    else this.#previous.delete(stream);
  }
}

/**
 * Spatial average pooling: neighbouring tokens are averaged in windows of pw × ph patches, the
 * largest window count that fits the budget (squarer windows first); each pooled token takes the
 * grid position of its window's top-left-of-centre patch. Keeps at most `budget` tokens.
 */
export class PoolPruner implements Pruner {
  readonly name = 'pool';

  prune(input: PruneInput, budget: number, out: PruneOutput): number {
    const { width: gw, height: gh } = input.grid;
    const [pw, ph] = poolWindow(gw, gh, budget);
    const d = input.tokenDim;
    const cols = Math.ceil(gw / pw);
    const rows = Math.ceil(gh / ph);
    let t = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const r0 = r * ph;
        const c0 = c * pw;
        const r1 = Math.min(gh, r0 + ph);
        const c1 = Math.min(gw, c0 + pw);
        const o = t * d;
        out.tokens.fill(0, o, o + d);
        for (let y = r0; y < r1; y++) {
          for (let x = c0; x < c1; x++) {
            const s = (y * gw + x) * d;
            for (let j = 0; j < d; j++)
              out.tokens[o + j] = (out.tokens[o + j] as number) + (input.tokens[s + j] as number);
          }
        }
        const inv = 1 / ((r1 - r0) * (c1 - c0));
        for (let j = 0; j < d; j++) out.tokens[o + j] = (out.tokens[o + j] as number) * inv;
        out.positions[t] =
          (r0 + Math.floor((r1 - r0 - 1) / 2)) * gw + c0 + Math.floor((c1 - c0 - 1) / 2);
        t++;
      }
    }
    return t;
  }

  reset(): void {
    // stateless
  }
}

/** The pooling window [pw, ph] for a grid and a budget: most windows ≤ budget, then the squarest. */
export function poolWindow(gw: number, gh: number, budget: number): [number, number] {
  let best: [number, number] = [gw, gh];
  let bestCount = 1;
  for (let ph = 1; ph <= gh; ph++) {
    for (let pw = 1; pw <= gw; pw++) {
      const count = Math.ceil(gw / pw) * Math.ceil(gh / ph);
      if (count > budget) continue;
      const squarer = Math.abs(pw - ph) < Math.abs(best[0] - best[1]);
      if (count > bestCount || (count === bestCount && squarer)) {
        best = [pw, ph];
        bestCount = count;
      }
    }
  }
  return best;
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function mix(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ c;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The pruner for a configured strategy. */
export function createPruner(
  strategy: PruningStrategy,
  options: { readonly seed: number },
): Pruner {
  switch (strategy) {
    case 'none':
      return new NonePruner();
    case 'random':
      return new RandomPruner(options.seed);
    case 'pool':
      return new PoolPruner();
    case 'saliency':
      return new SaliencyPruner();
    case 'diversity':
      return new DiversityPruner();
    case 'temporal':
      return new TemporalPruner();
  }
}
