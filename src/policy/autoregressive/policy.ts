/**
 * An autoregressive VLA end to end on one observation: the vision encoder, optional visual-token
 * pruning, the prefill, a decoding strategy, and the decoded tokens turned into absolute actions
 * within the package's limits.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { checkGraph } from '../../backend/sessions.js';
import { BackendError, InputError, ModelError, printable } from '../../errors.js';
import type { ArRole } from '../../model/ar-manifest.js';
import type { WordTokenizer } from '../../model/tokenizer.js';
import type { Pruner } from '../../pruning/pruner.js';
import {
  finishSequence,
  type DecodeResult,
  type DecodeSequence,
  type DecodeStrategy,
} from './decode.js';
import { decodeChunksGreedy, startSequences } from './batch-decode.js';
import { DecoderGraphs, type PrefillInput } from './decoder-graphs.js';
import { readArPackage, type ArPackage, type ArPackageOptions } from './package.js';
import { joined } from '../../util/typed-arrays.js';
import { fulfilled, mapFulfilled, only, togetherOrAlone } from '../../util/together-or-alone.js';

/** One observation, the image already at the model's size. */
export interface ArObservation {
  /** Normalised CHW float32 pixels, 3 × height × width. */
  readonly pixels: Float32Array;
  /** The same image as packed RGB8 (what pixel-based pruners look at). */
  readonly rgb: Uint8Array;
  readonly instruction: string;
  /** The robot's state in the manifest's units. */
  readonly state: Float32Array;
  readonly stream?: string;
}

/** How to run one inference. */
export interface ArActOptions {
  readonly strategy: 'greedy' | 'jacobi' | 'speculative';
  /** Tokens fed per decoder call for jacobi and speculative (default: the chunk's token count). */
  readonly window?: number;
  /** Speculative: the previous chunk (absolute actions) and how many of its steps were executed. */
  readonly previous?: { readonly actions: Float32Array; readonly stepsExecuted: number };
  readonly pruner?: Pruner;
  /** Visual tokens kept when `pruner` is given. */
  readonly budget?: number;
}

/** A chunk of absolute actions and how it was decoded. */
export interface ArAction extends DecodeResult {
  /** `horizon × actionDim` absolute actions within the manifest's limits. */
  readonly actions: Float32Array;
  readonly keptTokens: number;
}

/** An observation encoded, pruned and prefilled: its sequence, ready for its first decoder call. */
export interface ArStart {
  readonly sequence: DecodeSequence;
  /** Visual tokens kept. */
  readonly kept: number;
  /** Its prefill ran alone after its group's failed: the start took longer than its work did. */
  readonly retried: boolean;
}

/** A loaded autoregressive package. */
export class ArPolicy {
  private constructor(
    readonly pkg: ArPackage,
    readonly encoder: ort.InferenceSession,
    readonly graphs: DecoderGraphs,
    readonly words: WordTokenizer,
  ) {}

  /**
   * Loads the package in `dir`: the manifest validated (schema and graph roles), the variant of
   * `precision` (default fp32) with its files confined and hashed, and its three graphs opened and
   * checked against the manifest's roles (four with the instruction graph, whose cache is then
   * kept across frames: {@link DecoderGraphs.instructionCache}). Errors are `ModelError`s naming
   * the manifest field.
   */
  static async load(
    dir: string,
    options: ort.InferenceSession.SessionOptions = {},
    select: ArPackageOptions = {},
  ): Promise<ArPolicy> {
    const pkg = await readArPackage(dir, select);
    const open = async (role: ArRole): Promise<ort.InferenceSession> => {
      try {
        return await ort.InferenceSession.create(join(pkg.dir, pkg.files[role]), options);
      } catch (cause) {
        throw new ModelError(
          'MODEL_FILE',
          `Expected a valid ONNX model for the ${role} graph at ${printable(pkg.files[role])} but ONNX Runtime could not load it`,
          { field: `manifest.variants[].files.${role}.path`, cause },
        );
      }
    };
    const encoder = await open('encoder');
    let graphs: DecoderGraphs | undefined;
    try {
      checkGraph('encoder', encoder, pkg.manifest.graphs.encoder);
      const { instruction } = pkg.files;
      graphs = await DecoderGraphs.load(
        join(pkg.dir, pkg.files.prefill),
        join(pkg.dir, pkg.files.decoder),
        options,
        instruction === undefined ? {} : { instruction: join(pkg.dir, instruction) },
      );
      if (graphs.instructionSession !== undefined && pkg.manifest.graphs.instruction !== undefined)
        checkGraph('instruction', graphs.instructionSession, pkg.manifest.graphs.instruction);
      checkGraph('prefill', graphs.prefillSession, pkg.manifest.graphs.prefill);
      checkGraph('decoder', graphs.decoderSession, pkg.manifest.graphs.decoder);
    } catch (error) {
      await Promise.all([encoder.release(), graphs?.close()]);
      throw error;
    }
    return new ArPolicy(pkg, encoder, graphs, pkg.words);
  }

  /** Encodes, prunes, decodes and de-normalises one observation. */
  async act(obs: ArObservation, options: ArActOptions): Promise<ArAction> {
    const { sequence, kept } = await this.begin(obs, options);
    const result = await finishSequence(this.graphs, sequence);
    return { ...result, actions: this.toActions(result.chunk, obs.state), keptTokens: kept };
  }

  /**
   * {@link act} up to its first decoder call: encoded, pruned and prefilled, the sequence ready to
   * be stepped (alone or with other observations' sequences in shared decoder calls, as continuous
   * batching does).
   */
  async begin(obs: ArObservation, options: ArActOptions): Promise<ArStart> {
    return only(await this.beginMany([{ obs, ...options }]));
  }

  /**
   * {@link begin} for several observations, each with its own options: one encoder call and one
   * prefill for all of them where the graphs allow it (as {@link actGreedyMany}); each sequence is
   * the one {@link begin} gives for its observation alone. If the shared prefill fails, each
   * observation's is run alone from its tokens already pruned (a stateful pruner sees each frame
   * once), so that a failure fails only the observations it belongs to.
   *
   * @throws {InputError} as {@link prefillInputs}, or the encoder's {@link BackendError}; nothing
   * is returned for any observation then (and no observation was pruned).
   */
  async beginMany(
    batch: readonly ({ readonly obs: ArObservation } & ArActOptions)[],
  ): Promise<PromiseSettledResult<ArStart>[]> {
    const { pkg } = this;
    const prepared = await this.prefillInputs(batch);
    const inputs = batch.map((b, i) => ({
      input: (prepared[i] as { input: PrefillInput }).input,
      strategy: this.strategy(b.obs, b),
    }));
    const { results, alone } = await togetherOrAlone(inputs, async (group) =>
      fulfilled(
        await startSequences(
          this.graphs,
          pkg.tokenizer,
          group,
          pkg.tokenOffset,
          pkg.firstActionPosition,
        ),
      ),
    );
    return mapFulfilled(results, (sequence, i) => ({
      sequence,
      kept: (prepared[i] as { kept: number }).kept,
      retried: alone,
    }));
  }

  /** The decode strategy of `options` for `obs` (speculative: its draft from the previous chunk). */
  strategy(obs: ArObservation, options: ArActOptions): DecodeStrategy {
    const window = options.window ?? this.pkg.tokenizer.maxTokens;
    return options.strategy === 'greedy'
      ? { kind: 'greedy' }
      : options.strategy === 'jacobi' || options.previous === undefined
        ? { kind: 'jacobi', window }
        : { kind: 'speculative', window, draft: this.draft(options.previous, obs.state) };
  }

  /**
   * Several observations' chunks decoded greedily in shared decoder calls (each exactly its own
   * greedy chunk, which every strategy gives): one encoder call and one prefill for all of them
   * (where the graphs take a batch and, for the prefill, the observations keep as many tokens),
   * the decoder once per step for all of them.
   */
  async actGreedyMany(
    batch: readonly {
      readonly obs: ArObservation;
      readonly pruner?: Pruner;
      readonly budget?: number;
    }[],
  ): Promise<ArAction[]> {
    const { pkg } = this;
    const prepared = await this.prefillInputs(batch);
    const results = await decodeChunksGreedy(
      this.graphs,
      pkg.tokenizer,
      prepared.map((p) => p.input),
      pkg.tokenOffset,
      pkg.firstActionPosition,
    );
    return results.map((result, i) => {
      const { obs } = batch[i] as { obs: ArObservation };
      return {
        ...result,
        actions: this.toActions(result.chunk, obs.state),
        keptTokens: (prepared[i] as { kept: number }).kept,
      };
    });
  }

  /** Checks, encodes and prunes one observation: the prefill's input and the tokens kept. */
  async prefillInput(
    obs: ArObservation,
    options: Pick<ArActOptions, 'pruner' | 'budget'>,
  ): Promise<{ input: PrefillInput; kept: number }> {
    const [one] = await this.prefillInputs([{ obs, ...options }]);
    return one as { input: PrefillInput; kept: number };
  }

  /**
   * {@link prefillInput} for several observations: their frames through the encoder in one call
   * when its batch dimension is open, then each pruned in turn (in order, so that a stateful
   * pruner sees each stream's frames in the order given).
   *
   * @throws {InputError} naming the first observation's field that is wrong (none is encoded).
   */
  async prefillInputs(
    batch: readonly ({ readonly obs: ArObservation } & Pick<ArActOptions, 'pruner' | 'budget'>)[],
  ): Promise<{ input: PrefillInput; kept: number }[]> {
    const { pkg } = this;
    const { width, height } = pkg.image;
    for (const { obs } of batch) {
      if (obs.pixels.length !== 3 * width * height)
        throw new InputError(
          `Expected ${3 * width * height} pixel values (3 × ${height} × ${width}) but received ${obs.pixels.length}`,
          { field: 'pixels' },
        );
      if (obs.state.length !== pkg.stateMean.length || !obs.state.every(Number.isFinite))
        throw new InputError(
          `Expected ${pkg.stateMean.length} finite state values but received ${obs.state.length}`,
          { field: 'state' },
        );
    }
    const together = typeof pkg.manifest.graphs.encoder.inputs[0]?.shape[0] === 'string';
    const groups = together ? [batch] : batch.map((b) => [b]);
    const encoded: { tokens: Float32Array; saliency: Float32Array }[] = [];
    for (const group of groups) encoded.push(...(await this.#encode(group.map((b) => b.obs))));
    return batch.map((b, r) => {
      const { tokens, saliency } = encoded[r] as (typeof encoded)[number];
      return this.#prefillInputOf(b.obs, tokens, saliency, b);
    });
  }

  /** The encoder on `observations` in one call: each one's tokens and saliency. */
  async #encode(
    observations: readonly ArObservation[],
  ): Promise<{ tokens: Float32Array; saliency: Float32Array }[]> {
    const { pkg } = this;
    const { width, height } = pkg.image;
    const b = observations.length;
    const pixels = joined(observations.map((o) => o.pixels));
    let encoded: ort.InferenceSession.OnnxValueMapType;
    try {
      encoded = await this.encoder.run({
        [pkg.encoderNames.pixels]: new ort.Tensor('float32', pixels, [b, 3, height, width]),
      });
    } catch (cause) {
      throw new BackendError('ONNX Runtime failed to run the encoder graph', {
        field: 'graphs.encoder',
        cause,
      });
    }
    const tokens = encoded[pkg.encoderNames.tokens]?.data as Float32Array;
    const saliency = encoded[pkg.encoderNames.saliency]?.data as Float32Array;
    const n = pkg.grid.width * pkg.grid.height;
    return observations.map((_, r) => ({
      tokens: tokens.subarray(r * n * pkg.tokenDim, (r + 1) * n * pkg.tokenDim),
      saliency: saliency.subarray(r * n, (r + 1) * n),
    }));
  }

  /** An encoded observation pruned (when `options.pruner` is given): the prefill's input. */
  #prefillInputOf(
    obs: ArObservation,
    tokens: Float32Array,
    saliency: Float32Array,
    options: Pick<ArActOptions, 'pruner' | 'budget'>,
  ): { input: PrefillInput; kept: number } {
    const { pkg } = this;
    const { width, height } = pkg.image;
    const n = pkg.grid.width * pkg.grid.height;
    let kept = n;
    let visual = tokens;
    let positions = Int32Array.from({ length: n }, (_, i) => i);
    if (options.pruner !== undefined) {
      const out = { positions: new Int32Array(n), tokens: new Float32Array(n * pkg.tokenDim) };
      kept = options.pruner.prune(
        {
          tokens,
          saliency,
          grid: pkg.grid,
          tokenDim: pkg.tokenDim,
          rgb: obs.rgb,
          imageWidth: width,
          imageHeight: height,
          stream: obs.stream ?? 'default',
        },
        options.budget ?? n,
        out,
      );
      visual = out.tokens.subarray(0, kept * pkg.tokenDim);
      positions = out.positions.subarray(0, kept);
    }
    const instructionIds = new BigInt64Array(this.words.maxLength);
    this.words.encodeInto(obs.instruction, instructionIds);
    const state = Float32Array.from(
      obs.state,
      (v, i) => (v - (pkg.stateMean[i] as number)) / (pkg.stateStd[i] as number),
    );
    return {
      input: {
        visualTokens: visual,
        tokenPositions: BigInt64Array.from(positions, BigInt),
        instructionIds,
        state,
      },
      kept,
    };
  }

  /**
   * The draft for speculative decoding: the previous chunk without the steps already executed,
   * held at its last action, expressed as tokens relative to the current state.
   */
  draft(
    previous: { readonly actions: Float32Array; readonly stepsExecuted: number },
    state: Float32Array,
  ): number[] {
    const { horizon, actionDim, range } = this.pkg;
    const shifted = new Float32Array(horizon * actionDim);
    for (let t = 0; t < horizon; t++) {
      const from = Math.min(horizon - 1, t + Math.max(0, previous.stepsExecuted));
      for (let j = 0; j < actionDim; j++)
        shifted[t * actionDim + j] =
          ((previous.actions[from * actionDim + j] as number) - (state[j] as number)) /
          (range[j] as number);
    }
    return this.pkg.tokenizer.encode(shifted);
  }

  /** Normalised motion from `state` -> absolute actions clamped to the manifest's limits. */
  toActions(chunk: Float32Array, state: ArrayLike<number>): Float32Array {
    const { actionDim, actionMin, actionMax } = this.pkg;
    return this.toAbsolute(chunk, state).map((a, i) => {
      const j = i % actionDim;
      return Math.min(actionMax[j] as number, Math.max(actionMin[j] as number, a));
    });
  }

  /**
   * Normalised motion from `state` -> absolute actions, not clamped (for a caller whose own safety
   * clamp counts what it changes, as the pipeline's does).
   */
  toAbsolute(chunk: Float32Array, state: ArrayLike<number>): Float32Array {
    const { actionDim, range } = this.pkg;
    return Float32Array.from(chunk, (v, i) => {
      const j = i % actionDim;
      return (state[j] as number) + v * (range[j] as number);
    });
  }

  /** Releases the sessions. */
  async close(): Promise<void> {
    await Promise.all([this.encoder.release(), this.graphs.close()]);
  }
}
