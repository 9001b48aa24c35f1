import * as ort from 'onnxruntime-node';
import type { FlowCamera } from '../model/flow-manifest.js';
import type { Pruner } from '../pruning/pruner.js';

/** The shape of per-layer keys/values: [B, layers, heads, tokens, head_dim]. */
export class KvLayout {
  constructor(
    readonly layers: number,
    readonly heads: number,
    readonly headDim: number,
  ) {}

  /** Values of one token across every layer and head. */
  get perToken(): number {
    return this.layers * this.heads * this.headDim;
  }

  /** Copy token `j` of a [1, layers, heads, n, headDim] tensor into `out` (perToken values). */
  readToken(data: Float32Array, n: number, j: number, out: Float32Array): void {
    const hd = this.headDim;
    let o = 0;
    for (let lh = 0; lh < this.layers * this.heads; lh++) {
      const base = (lh * n + j) * hd;
      out.set(data.subarray(base, base + hd), o);
      o += hd;
    }
  }
}

/** The visual tokens a frame's prefix sees: computed now, or reused from an earlier frame. */
export interface KeptTokens {
  /** Tokens to compute, [K × tokenDim], and their global positions (camera c's patch p at c·N + p). */
  readonly tokens: Float32Array;
  readonly positions: BigInt64Array;
  /** Global positions whose keys/values are reused. */
  readonly reused: readonly number[];
}

interface Stored {
  readonly keys: Float32Array;
  readonly values: Float32Array;
  /** The patch's pixels when its keys/values were computed (what "unchanged" is measured against). */
  readonly patch: Uint8Array;
}

/**
 * Per-camera pruning and VLA-Cache-style reuse of visual tokens' keys/values: a kept token whose
 * patch differs from the pixels its keys/values were computed from by at most the threshold (mean
 * absolute difference, 0-255) reuses them instead of being recomputed. Reference pixels are those
 * of the frame the keys/values came from, so slow drift is caught.
 */
export class VisualKvCache {
  readonly #layout: KvLayout;
  readonly #cameras: readonly FlowCamera[];
  readonly #threshold: number | null;
  readonly #reusable: readonly boolean[];
  readonly #stored = new Map<number, Stored>();
  readonly #out: { positions: Int32Array; tokens: Float32Array };

  constructor(
    layout: KvLayout,
    cameras: readonly FlowCamera[],
    options: { readonly visualThreshold: number | null; readonly visualCameras: readonly string[] },
  ) {
    this.#layout = layout;
    this.#cameras = cameras;
    this.#threshold = options.visualThreshold;
    this.#reusable = cameras.map((c) => options.visualCameras.includes(c.name));
    const cam = cameras[0] as FlowCamera;
    const n = cam.patch_grid.width * cam.patch_grid.height;
    this.#out = { positions: new Int32Array(n), tokens: new Float32Array(0) };
  }

  get enabled(): boolean {
    return this.#threshold !== null;
  }

  reset(): void {
    this.#stored.clear();
  }

  /** Prune each camera's tokens and split the kept ones into computed and reused. */
  select(
    pruner: Pruner,
    frame: {
      readonly tokens: Float32Array;
      readonly saliency: Float32Array;
      readonly rgb: readonly Uint8Array[];
      readonly budget: number;
      readonly tokenDim: number;
    },
  ): KeptTokens {
    const D = frame.tokenDim;
    const cam0 = this.#cameras[0] as FlowCamera;
    const n = cam0.patch_grid.width * cam0.patch_grid.height;
    if (this.#out.tokens.length !== n * D) this.#out.tokens = new Float32Array(n * D);
    const computed: number[] = [];
    const reused: number[] = [];
    const values: Float32Array[] = [];
    this.#cameras.forEach((cam, c) => {
      const count = pruner.prune(
        {
          tokens: frame.tokens.subarray(c * n * D, (c + 1) * n * D),
          saliency: frame.saliency.subarray(c * n, (c + 1) * n),
          grid: { width: cam.patch_grid.width, height: cam.patch_grid.height },
          tokenDim: D,
          rgb: frame.rgb[c] as Uint8Array,
          imageWidth: cam.image.width,
          imageHeight: cam.image.height,
          stream: cam.name,
        },
        frame.budget,
        this.#out,
      );
      for (let j = 0; j < count; j++) {
        const p = this.#out.positions[j] as number;
        const g = c * n + p;
        if (this.#reuses(c, g, p, frame.rgb[c] as Uint8Array)) {
          reused.push(g);
        } else {
          computed.push(g);
          values.push(this.#out.tokens.slice(j * D, (j + 1) * D));
        }
      }
    });
    // The prefix graph needs at least one visual token: recompute one reused token if all are.
    if (computed.length === 0 && reused.length > 0) {
      const g = reused.pop() as number;
      const c = Math.floor(g / n);
      const p = g - c * n;
      computed.push(g);
      values.push(frame.tokens.slice((c * n + p) * D, (c * n + p + 1) * D));
    }
    const tokens = new Float32Array(computed.length * D);
    values.forEach((v, i) => {
      tokens.set(v, i * D);
    });
    return { tokens, positions: BigInt64Array.from(computed, (g) => BigInt(g)), reused };
  }

  #reuses(c: number, g: number, p: number, rgb: Uint8Array): boolean {
    if (this.#threshold === null || this.#reusable[c] !== true) return false;
    const stored = this.#stored.get(g);
    if (stored === undefined) return false;
    return meanAbsDiff(this.#patch(c, p, rgb), stored.patch) <= this.#threshold;
  }

  /** The pixels of patch `p` of camera `c` (packed RGB8). */
  #patch(c: number, p: number, rgb: Uint8Array): Uint8Array {
    const cam = this.#cameras[c] as FlowCamera;
    const gw = cam.patch_grid.width;
    const pw = Math.floor(cam.image.width / gw);
    const ph = Math.floor(cam.image.height / cam.patch_grid.height);
    const x0 = (p % gw) * pw;
    const y0 = Math.floor(p / gw) * ph;
    const out = new Uint8Array(pw * ph * 3);
    for (let y = 0; y < ph; y++) {
      const row = ((y0 + y) * cam.image.width + x0) * 3;
      out.set(rgb.subarray(row, row + pw * 3), y * pw * 3);
    }
    return out;
  }

  /**
   * Keep the keys/values the prefix graph just computed for its visual tokens (not the state,
   * which is last), with their patches' pixels. Only when reuse is on: otherwise nothing is
   * copied out of the output tensors.
   */
  store(kept: KeptTokens, keys: ort.Tensor, values: ort.Tensor, rgb: readonly Uint8Array[]): void {
    if (!this.enabled) return;
    const cam0 = this.#cameras[0] as FlowCamera;
    const n = cam0.patch_grid.width * cam0.patch_grid.height;
    const count = kept.positions.length + 1;
    const kd = keys.data as Float32Array;
    const vd = values.data as Float32Array;
    kept.positions.forEach((big, j) => {
      const g = Number(big);
      const c = Math.floor(g / n);
      if (this.#reusable[c] !== true) return;
      const k = new Float32Array(this.#layout.perToken);
      const v = new Float32Array(this.#layout.perToken);
      this.#layout.readToken(kd, count, j, k);
      this.#layout.readToken(vd, count, j, v);
      this.#stored.set(g, {
        keys: k,
        values: v,
        patch: this.#patch(c, g - c * n, rgb[c] as Uint8Array),
      });
    });
  }

  /** The context of a frame with reused tokens: the instruction's keys/values then the reused ones'. */
  context(
    instruction: { readonly keys: ort.Tensor; readonly values: ort.Tensor },
    reused: readonly number[],
  ): { keys: ort.Tensor; values: ort.Tensor } {
    const { layers, heads, headDim: hd } = this.#layout;
    const L = instruction.keys.dims[3] as number;
    const total = L + reused.length;
    const build = (inst: Float32Array, pick: (s: Stored) => Float32Array): ort.Tensor => {
      const out = new Float32Array(layers * heads * total * hd);
      for (let lh = 0; lh < layers * heads; lh++) {
        out.set(inst.subarray(lh * L * hd, (lh + 1) * L * hd), lh * total * hd);
        reused.forEach((g, r) => {
          const src = pick(this.#stored.get(g) as Stored);
          out.set(src.subarray(lh * hd, (lh + 1) * hd), (lh * total + L + r) * hd);
        });
      }
      return new ort.Tensor('float32', out, [1, layers, heads, total, hd]);
    };
    return {
      keys: build(instruction.keys.data as Float32Array, (s) => s.keys),
      values: build(instruction.values.data as Float32Array, (s) => s.values),
    };
  }
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number));
  return sum / Math.max(1, a.length);
}
