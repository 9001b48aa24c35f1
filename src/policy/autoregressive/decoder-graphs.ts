/**
 * The graphs of an autoregressive VLA in ONNX Runtime: the prefill (observation -> the prefix's
 * keys and values and the first action token's logits), the decoder with Hugging Face Optimum's
 * decoder-with-past signature (`input_ids`, `attention_mask`, `position_ids`,
 * `past_key_values.N.key/value` in; `logits`, `present.N.key/value` out) and, optionally, the
 * instruction graph (`instruction_ids` -> the words' `present.N.key/value`), whose output is kept
 * across frames ({@link InstructionCache}) and fed to the prefill as `past_key_values`: the prefill
 * then runs over the observation only and returns the same cache (words + observation).
 *
 * The key-value cache stays in the tensors ONNX Runtime returned: each call's `present` tensors
 * are the next call's `past` as they are, never copied in JavaScript (for sequences sharing calls,
 * as long as the same ones step together: see cache-rows.ts). Entries that must not be
 * attended to (instruction padding, guesses a verification rejected) are hidden by
 * `attention_mask` instead of being cut out of the cache, so a rejected guess costs no copy either.
 */
import * as ort from 'onnxruntime-node';
import { BackendError, ModelError } from '../../errors.js';
import { CacheRow, gatherRow, wholeSharedCache, type SharedCache } from './cache-rows.js';
import { joined } from '../../util/typed-arrays.js';
import { InstructionCache, type InstructionCacheStats } from './instruction-cache.js';

/** What the prefill needs from one observation (batch of one). */
export interface PrefillInput {
  /** `[K, tokenDim]` row-major: the kept visual tokens. */
  readonly visualTokens: Float32Array;
  /** `[K]`: each kept token's grid index. */
  readonly tokenPositions: BigInt64Array;
  /** `[L]`: the instruction's word ids, 0 = padding. */
  readonly instructionIds: BigInt64Array;
  /** `[S]`: the normalised state. */
  readonly state: Float32Array;
}

/** The decoding state of one sequence: its cache and which cache entries are real. */
export interface KvState {
  /** `past_key_values.N.key/value` for the next call, in layer order (key, value, key, …). */
  readonly past: readonly ort.Tensor[];
  /** One flag per cache entry: 1 = attend to it. */
  readonly valid: Uint8Array;
  /** The position id of the next real token. */
  readonly nextPosition: number;
}

/** Logits of the positions a call ran, `[T, vocab]` row-major. */
export interface StepResult {
  readonly logits: Float32Array;
  readonly state: KvState;
}

/** The optional instruction graph and how many instructions to keep. */
export interface InstructionGraphOptions {
  /** The instruction graph's file: with it, the prefill takes the words' cache as its past. */
  readonly instruction?: string;
  /** Instructions kept across frames (default 16; 0: run the instruction graph every frame). */
  readonly instructionCacheSize?: number;
}

/** A loaded prefill + decoder pair, with the instruction graph when the package has one. */
export class DecoderGraphs {
  readonly layers: number;
  readonly vocab: number;
  readonly tokenDim: number;
  /** Whether the prefill takes several observations in one call (its batch dimension is open). */
  readonly prefillBatches: boolean;
  readonly #cache: InstructionCache;
  #closed = false;

  private constructor(
    readonly prefillSession: ort.InferenceSession,
    readonly decoderSession: ort.InferenceSession,
    readonly instructionSession: ort.InferenceSession | undefined,
    layers: number,
    vocab: number,
    tokenDim: number,
    cacheSize: number | undefined,
  ) {
    this.layers = layers;
    this.vocab = vocab;
    this.tokenDim = tokenDim;
    const tokens = prefillSession.inputMetadata.find((m) => m.name === 'visual_tokens');
    this.prefillBatches = !(tokens?.isTensor === true && typeof tokens.shape[0] === 'number');
    this.#cache = new InstructionCache(cacheSize);
  }

  /** The instruction cache's counters; undefined without an instruction graph. */
  get instructionCache(): InstructionCacheStats | undefined {
    return this.instructionSession === undefined ? undefined : this.#cache.stats;
  }

  /**
   * Loads the graphs and checks their signatures: the decoder's inputs and outputs are Optimum's
   * names, the prefill returns as many `present` pairs as the decoder takes (and, with the
   * instruction graph, takes as many as `past_key_values`), and both agree on the vocabulary. A
   * mismatch is a `ModelError` naming the graph and the tensor.
   */
  static async load(
    prefillPath: string,
    decoderPath: string,
    options: ort.InferenceSession.SessionOptions = {},
    extra: InstructionGraphOptions = {},
  ): Promise<DecoderGraphs> {
    const opened: ort.InferenceSession[] = [];
    try {
      return await DecoderGraphs.#load(prefillPath, decoderPath, options, extra, opened);
    } catch (error) {
      // Nothing opened before the failure is left behind.
      await Promise.all(opened.map((s) => s.release()));
      throw error;
    }
  }

  static async #load(
    prefillPath: string,
    decoderPath: string,
    options: ort.InferenceSession.SessionOptions,
    extra: InstructionGraphOptions,
    opened: ort.InferenceSession[],
  ): Promise<DecoderGraphs> {
    const open = async (path: string, role: string): Promise<ort.InferenceSession> => {
      try {
        const session = await ort.InferenceSession.create(path, options);
        opened.push(session);
        return session;
      } catch (cause) {
        throw new ModelError(
          'MODEL_FILE',
          `Expected an ONNX graph for the ${role} at ${path} but ONNX Runtime could not load it`,
          {
            field: `graphs.${role}`,
            cause,
          },
        );
      }
    };
    const prefill = await open(prefillPath, 'prefill');
    const decoder = await open(decoderPath, 'decoder');
    const instruction =
      extra.instruction === undefined ? undefined : await open(extra.instruction, 'instruction');
    const layers = decoder.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
    const need = (
      session: ort.InferenceSession,
      role: string,
      kind: 'input' | 'output',
      names: string[],
    ): void => {
      const have = kind === 'input' ? session.inputNames : session.outputNames;
      const missing = names.filter((n) => !have.includes(n));
      if (missing.length > 0)
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected the ${role} graph to have ${kind}s ${names.join(', ')} but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing (it has ${have.join(', ')})`,
          { field: `graphs.${role}.${kind}s` },
        );
    };
    const kv = (prefix: string): string[] =>
      Array.from({ length: layers }, (_, i) => [
        `${prefix}.${i}.key`,
        `${prefix}.${i}.value`,
      ]).flat();
    if (layers === 0)
      throw new ModelError(
        'MODEL_MISMATCH',
        'Expected the decoder graph to take past_key_values.0.key but it has no past inputs',
        {
          field: 'graphs.decoder.inputs',
        },
      );
    need(decoder, 'decoder', 'input', [
      'input_ids',
      'attention_mask',
      'position_ids',
      ...kv('past_key_values'),
    ]);
    need(decoder, 'decoder', 'output', ['logits', ...kv('present')]);
    if (instruction === undefined)
      need(prefill, 'prefill', 'input', [
        'visual_tokens',
        'token_positions',
        'instruction_ids',
        'state',
      ]);
    else {
      need(instruction, 'instruction', 'input', ['instruction_ids']);
      need(instruction, 'instruction', 'output', kv('present'));
      need(prefill, 'prefill', 'input', [
        'visual_tokens',
        'token_positions',
        'state',
        'attention_mask',
        ...kv('past_key_values'),
      ]);
    }
    need(prefill, 'prefill', 'output', ['logits', ...kv('present')]);
    const vocab = lastDim(decoder, 'decoder', 'logits');
    const prefillVocab = lastDim(prefill, 'prefill', 'logits');
    if (vocab !== prefillVocab)
      throw new ModelError(
        'MODEL_MISMATCH',
        `Expected the prefill's logits to have the decoder's vocabulary ${vocab} but they have ${prefillVocab}`,
        {
          field: 'graphs.prefill.outputs.logits',
        },
      );
    const tokenDim = lastDim(prefill, 'prefill', 'visual_tokens', 'input');
    return new DecoderGraphs(
      prefill,
      decoder,
      instruction,
      layers,
      vocab,
      tokenDim,
      extra.instructionCacheSize,
    );
  }

  /**
   * Runs the prefill: the first token's logits `[vocab]` and the prefix's cache. The first action
   * token's position id is `firstActionPosition` where the model fixes it (a prefix whose slots
   * keep their positions when visual tokens are pruned), else the prefix's length (Optimum). With
   * the instruction graph, the words' cache comes from the instruction cache (the graph runs on a
   * miss, or every time with `useCache: false`) and the result is the same.
   */
  async prefill(
    input: PrefillInput,
    firstActionPosition?: number,
    options: { readonly useCache?: boolean } = {},
  ): Promise<StepResult> {
    return (await this.prefillMany([input], firstActionPosition, options))[0] as StepResult;
  }

  /**
   * {@link prefill} for several observations: one call when they keep as many visual tokens (the
   * graph's shapes) and the graph takes a batch ({@link prefillBatches}), else one call each.
   * Each result is what {@link prefill} gives for that observation alone; after a shared call its
   * cache is a row of the call's tensors (a {@link CacheRow}), which a {@link stepMany} of the same
   * sequences in the same order takes as it is.
   */
  async prefillMany(
    inputs: readonly PrefillInput[],
    firstActionPosition?: number,
    options: { readonly useCache?: boolean } = {},
  ): Promise<StepResult[]> {
    const b = inputs.length;
    const first = inputs[0];
    if (first === undefined) return [];
    const k = first.tokenPositions.length;
    const l = first.instructionIds.length;
    if (
      (b > 1 && !this.prefillBatches) ||
      inputs.some((x) => x.tokenPositions.length !== k || x.instructionIds.length !== l)
    ) {
      const results: StepResult[] = [];
      for (const input of inputs)
        results.push(await this.prefill(input, firstActionPosition, options));
      return results;
    }
    const feeds: Record<string, ort.Tensor> = {
      visual_tokens: new ort.Tensor('float32', joined(inputs.map((x) => x.visualTokens)), [
        b,
        k,
        this.tokenDim,
      ]),
      token_positions: new ort.Tensor('int64', joined(inputs.map((x) => x.tokenPositions)), [b, k]),
      state: new ort.Tensor('float32', joined(inputs.map((x) => x.state)), [b, first.state.length]),
    };
    if (this.instructionSession === undefined)
      feeds.instruction_ids = new ort.Tensor('int64', joined(inputs.map((x) => x.instructionIds)), [
        b,
        l,
      ]);
    else {
      const words: (readonly ort.Tensor[])[] = [];
      for (const { instructionIds: ids } of inputs) {
        const run = () => this.#instruction(ids);
        words.push(options.useCache === false ? await run() : await this.#cache.get(ids, run));
      }
      // The words' padding hidden, as in the full prefill; the observation sees everything.
      const mask = new BigInt64Array(b * (l + k + 1)).fill(1n);
      inputs.forEach(({ instructionIds: ids }, r) => {
        ids.forEach((id, i) => {
          if (id === 0n) mask[r * (l + k + 1) + i] = 0n;
        });
      });
      feeds.attention_mask = new ort.Tensor('int64', mask, [b, l + k + 1]);
      (words[0] as readonly ort.Tensor[]).forEach((tensor, i) => {
        feeds[pastName(i)] =
          b === 1
            ? tensor
            : new ort.Tensor(
                'float32',
                joined(words.map((w) => (w[i] as ort.Tensor).data as Float32Array)),
                [b, ...tensor.dims.slice(1)],
              );
      });
    }
    const out = await this.#run(this.prefillSession, 'prefill', feeds);
    const presents = this.#presents(out);
    const total = (presents[0] as ort.Tensor).dims[2] as number;
    const logits = out.logits?.data as Float32Array;
    const shared: SharedCache = { presents, rows: b, length: total };
    const rowLength = logits.length / b;
    return inputs.map(({ instructionIds: ids }, r) => {
      const valid = new Uint8Array(total).fill(1);
      // Padding words of the instruction are never attended to.
      ids.forEach((id, i) => {
        if (id === 0n) valid[i] = 0;
      });
      const nextPosition = firstActionPosition ?? total;
      return b === 1
        ? { logits, state: { past: presents, valid, nextPosition } }
        : {
            logits: logits.slice(r * rowLength, (r + 1) * rowLength),
            state: new CacheRow(shared, r, valid, nextPosition),
          };
    });
  }

  /**
   * Feeds `tokens` (T >= 1) at consecutive positions after the state's real tokens. The returned
   * state holds all T new entries as valid; {@link keepFirst} hides the ones a verification
   * rejected.
   */
  async step(state: KvState, tokens: readonly number[]): Promise<StepResult> {
    const t = tokens.length;
    const total = state.valid.length + t;
    const mask = new BigInt64Array(total);
    for (let i = 0; i < total; i++)
      mask[i] = i < state.valid.length ? BigInt(state.valid[i] as number) : 1n;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, t]),
      attention_mask: new ort.Tensor('int64', mask, [1, total]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: t }, (_, i) => BigInt(state.nextPosition + i)),
        [1, t],
      ),
    };
    state.past.forEach((tensor, i) => {
      feeds[pastName(i)] = tensor;
    });
    const out = await this.#run(this.decoderSession, 'decoder', feeds);
    const valid = new Uint8Array(total);
    valid.set(state.valid);
    valid.fill(1, state.valid.length);
    return {
      logits: out.logits?.data as Float32Array,
      state: { past: this.#presents(out), valid, nextPosition: state.nextPosition + t },
    };
  }

  /**
   * {@link step} for several sequences in one decoder call (continuous batching): their caches
   * right-padded to the longest, their fed tokens to the most fed, the padding hidden by
   * `attention_mask` (the decoder's contract: zeros hide entries anywhere in the cache). Each
   * result is what {@link step} gives that sequence alone, its cache carrying the padding columns
   * as hidden entries: a row of this call's tensors (a {@link CacheRow}), which the next call of
   * the same sequences in the same order takes as it is.
   */
  async stepMany(
    states: readonly KvState[],
    tokens: readonly (readonly number[])[],
  ): Promise<StepResult[]> {
    const b = states.length;
    if (b === 1) return [await this.step(states[0] as KvState, tokens[0] as readonly number[])];
    // The sequences of the last call, in its order: its tensors are their caches as they are.
    const shared = wholeSharedCache(states);
    const pmax = shared?.length ?? Math.max(...states.map((s) => s.valid.length));
    const tmax = Math.max(...tokens.map((t) => t.length));
    const total = pmax + tmax;
    const ids = new BigInt64Array(b * tmax);
    const positions = new BigInt64Array(b * tmax);
    const mask = new BigInt64Array(b * total);
    states.forEach((s, r) => {
      const fed = tokens[r] as readonly number[];
      for (let j = 0; j < tmax; j++) {
        // Padding repeats the last real token at its position: attended by nothing real.
        const k = Math.min(j, fed.length - 1);
        ids[r * tmax + j] = BigInt(fed[k] as number);
        positions[r * tmax + j] = BigInt(s.nextPosition + k);
      }
      for (let i = 0; i < s.valid.length; i++) mask[r * total + i] = s.valid[i] === 1 ? 1n : 0n;
      mask.fill(1n, r * total + pmax, r * total + pmax + fed.length);
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [b, tmax]),
      attention_mask: new ort.Tensor('int64', mask, [b, total]),
      position_ids: new ort.Tensor('int64', positions, [b, tmax]),
    };
    const past =
      shared?.presents ??
      (states[0] as KvState).past.map((first, i) => {
        const [, heads, , dim] = first.dims as [number, number, number, number];
        const data = new Float32Array(b * heads * pmax * dim);
        states.forEach((s, r) => {
          gatherRow(s, i, data, r, pmax);
        });
        return new ort.Tensor('float32', data, [b, heads, pmax, dim]);
      });
    past.forEach((tensor, i) => {
      feeds[pastName(i)] = tensor;
    });
    const out = await this.#run(this.decoderSession, 'decoder', feeds);
    const logits = out.logits?.data as Float32Array;
    const next: SharedCache = { presents: this.#presents(out), rows: b, length: total };
    return states.map((s, r) => {
      const t = (tokens[r] as readonly number[]).length;
      const valid = new Uint8Array(pmax + t);
      valid.set(s.valid);
      valid.fill(1, pmax);
      return {
        logits: logits.slice(r * tmax * this.vocab, (r * tmax + t) * this.vocab),
        state: new CacheRow(next, r, valid, s.nextPosition + t),
      };
    });
  }

  /** The state after a call of `fed` tokens of which only the first `kept` are real. */
  keepFirst(state: KvState, fed: number, kept: number): KvState {
    const valid = state.valid.slice();
    valid.fill(0, valid.length - fed + kept);
    const nextPosition = state.nextPosition - fed + kept;
    // A row of a shared call stays one, so that the batch's next call can take it as it is.
    return state instanceof CacheRow
      ? state.withValid(valid, nextPosition)
      : { past: state.past, valid, nextPosition };
  }

  /** Releases the sessions. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.clear();
    await Promise.all([
      this.prefillSession.release(),
      this.decoderSession.release(),
      this.instructionSession?.release(),
    ]);
  }

  /** The instruction graph's `present` tensors for `ids`: the words' keys and values. */
  async #instruction(ids: BigInt64Array): Promise<ort.Tensor[]> {
    const out = await this.#run(this.instructionSession as ort.InferenceSession, 'instruction', {
      instruction_ids: new ort.Tensor('int64', ids, [1, ids.length]),
    });
    const words = this.#presents(out);
    const length = (words[0] as ort.Tensor).dims[2];
    if (length !== ids.length)
      throw new BackendError(
        `Expected the instruction graph's cache to hold ${ids.length} entries (one per word) but it holds ${length}`,
        { field: 'graphs.instruction.outputs.present.0.key' },
      );
    return words;
  }

  #presents(out: ort.InferenceSession.OnnxValueMapType): ort.Tensor[] {
    return Array.from({ length: this.layers }, (_, i) => [
      out[`present.${i}.key`] as ort.Tensor,
      out[`present.${i}.value`] as ort.Tensor,
    ]).flat();
  }

  async #run(
    session: ort.InferenceSession,
    role: string,
    feeds: Record<string, ort.Tensor>,
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    if (this.#closed)
      throw new BackendError(`Expected an open ${role} graph but it was closed`, {
        field: `graphs.${role}`,
      });
    try {
      return await session.run(feeds);
    } catch (cause) {
      throw new BackendError(`ONNX Runtime failed to run the ${role} graph`, {
        field: `graphs.${role}`,
        cause,
      });
    }
  }
}

/** The decoder's (and prefill's) input name of cache tensor `i` (key, value, key, … by layer). */
function pastName(i: number): string {
  return `past_key_values.${i >> 1}.${i % 2 === 0 ? 'key' : 'value'}`;
}

function lastDim(
  session: ort.InferenceSession,
  role: string,
  name: string,
  kind: 'input' | 'output' = 'output',
): number {
  const meta = (kind === 'input' ? session.inputMetadata : session.outputMetadata).find(
    (m) => m.name === name,
  );
  const shape = meta?.isTensor === true ? meta.shape : [];
  const last = shape[shape.length - 1];
  if (typeof last !== 'number')
    throw new ModelError(
      'MODEL_MISMATCH',
      `Expected ${name} to have a fixed last dimension but its shape is [${shape.join(', ')}]`,
      {
        field: `graphs.${role}.${kind}s.${name}`,
      },
    );
  return last;
}
