/**
 * Decoding an action chunk from an autoregressive VLA: greedy decoding with a key-value cache, and
 * two ways to need fewer sequential decoder calls that produce exactly the same tokens.
 *
 * All three share one loop. Each decoder call feeds the next token that is known to be right
 * followed by guesses for the tokens after it; the logits at each fed position give the greedy
 * token that follows it, so guesses are accepted while they equal what greedy decoding would have
 * chosen, and the first disagreement is itself the right token. A call therefore commits at least
 * one token (greedy's rate) and every guess that was right on top; the result is greedy's whatever
 * the guesses were. The strategies differ only in where guesses come from:
 *
 * - `greedy`: none, one token per call.
 * - `jacobi`: parallel fixed-point decoding (Jacobi iteration, as PD-VLA): the positions after a
 *   disagreement take the model's own outputs of the previous call as their next guess.
 * - `speculative`: a draft chunk (for a robot, the previous chunk shifted by the steps executed)
 *   guesses each position; where it has none, the model's own outputs do, as in `jacobi`.
 *
 * Greedy choice is constrained to the tokens the action tokenizer admits after the tokens so far,
 * so every decode is a whole chunk within the action range.
 */
import * as ort from 'onnxruntime-node';
import { BackendError } from '../../errors.js';
import type { ActionTokenizer } from './action-tokenizer.js';
import type { DecoderGraphs, KvState, PrefillInput, StepResult } from './decoder-graphs.js';

/** How to decode. */
export type DecodeStrategy =
  | { readonly kind: 'greedy' }
  | { readonly kind: 'jacobi'; readonly window: number }
  | { readonly kind: 'speculative'; readonly window: number; readonly draft: readonly number[] };

/** A decoded chunk and what it cost. */
export interface DecodeResult {
  /** Local action-token ids (as the tokenizer numbers them). */
  readonly tokens: number[];
  /** The normalised chunk, `horizon × actionDim`. */
  readonly chunk: Float32Array;
  /** Sequential decoder calls after the prefill (greedy: tokens - 1). */
  readonly decoderCalls: number;
  /** Guesses fed to the decoder and how many were accepted. */
  readonly guessesFed: number;
  readonly guessesAccepted: number;
}

/**
 * Decodes one chunk. `tokenOffset` maps local action ids to the decoder's vocabulary (the
 * decoder's id = offset + local id), as OpenVLA places its bins at the end of Llama's vocabulary;
 * `firstActionPosition` is the first action token's position id where the model fixes it.
 */
export async function decodeChunk(
  graphs: DecoderGraphs,
  tokenizer: ActionTokenizer,
  input: PrefillInput,
  strategy: DecodeStrategy,
  tokenOffset = 0,
  firstActionPosition?: number,
): Promise<DecodeResult> {
  return finishSequence(
    graphs,
    await startSequence(graphs, tokenizer, input, strategy, tokenOffset, firstActionPosition),
  );
}

/** Steps `sequence` alone through the decoder until its chunk is whole. */
export async function finishSequence(
  graphs: Pick<DecoderGraphs, 'step'>,
  sequence: DecodeSequence,
): Promise<DecodeResult> {
  while (!sequence.done) sequence.take(await graphs.step(sequence.state, sequence.feed()));
  return sequence.result();
}

/**
 * Runs the prefill of one observation and returns its {@link DecodeSequence}, ready for its first
 * decoder call (arguments as {@link decodeChunk}).
 */
export async function startSequence(
  graphs: DecoderGraphs,
  tokenizer: ActionTokenizer,
  input: PrefillInput,
  strategy: DecodeStrategy,
  tokenOffset = 0,
  firstActionPosition?: number,
): Promise<DecodeSequence> {
  const first = await graphs.prefill(input, firstActionPosition);
  return new DecodeSequence(graphs, tokenizer, strategy, first, tokenOffset);
}

/** What a {@link DecodeSequence} needs of the decoder graphs between two calls. */
export type SequenceGraphs = Pick<DecoderGraphs, 'vocab' | 'keepFirst'>;

/**
 * The decoding of one chunk as a state machine, so that one decoder call can serve many sequences
 * (continuous batching): {@link feed} gives the tokens to feed next (the token known to be right,
 * then the strategy's guesses), the caller runs them through the decoder (alone with
 * `DecoderGraphs.step`, or with other sequences' tokens in one `stepMany`), and {@link take}
 * accepts the guesses the logits confirm. Whoever drives it, the tokens are greedy's.
 */
export class DecodeSequence {
  readonly #graphs: SequenceGraphs;
  readonly #tokenizer: ActionTokenizer;
  readonly #tokenOffset: number;
  readonly #window: number;
  readonly #draft: readonly number[];
  readonly #mask: Uint8Array;
  readonly #accepted: number[] = [];
  #state: KvState;
  /** The next token known to be right, not yet fed. */
  #pending: number | undefined;
  /** Local ids to feed next: the pending token then the guesses; undefined once the chunk is whole. */
  #fed: number[] | undefined;
  /** The model's own outputs at positions beyond the last disagreement (Jacobi's next iterate). */
  #ownGuesses: number[] = [];
  #decoderCalls = 0;
  #guessesFed = 0;
  #guessesAccepted = 0;

  /** A sequence after its prefill: `first` holds the first token's logits and the prefix's cache. */
  constructor(
    graphs: SequenceGraphs,
    tokenizer: ActionTokenizer,
    strategy: DecodeStrategy,
    first: StepResult,
    tokenOffset = 0,
  ) {
    this.#graphs = graphs;
    this.#tokenizer = tokenizer;
    this.#tokenOffset = tokenOffset;
    this.#window = strategy.kind === 'greedy' ? 1 : Math.max(1, Math.floor(strategy.window));
    this.#draft = strategy.kind === 'speculative' ? strategy.draft : [];
    this.#mask = new Uint8Array(tokenizer.vocabSize);
    this.#state = first.state;
    this.#pending = this.#choose(first.logits, 0);
    this.#advance();
  }

  /** Whether the chunk is whole (nothing more to feed). */
  get done(): boolean {
    return this.#fed === undefined;
  }

  /** The cache the next call extends. */
  get state(): KvState {
    return this.#state;
  }

  /** Decoder calls taken so far. */
  get decoderCalls(): number {
    return this.#decoderCalls;
  }

  /** Drop the cache entries nothing attends to (see {@link compactTogether}: when). */
  compact(): void {
    this.#state = compactState(this.#state);
  }

  /** The decoder's ids to feed in the next call (at least one); [] once {@link done}. */
  feed(): number[] {
    return (this.#fed ?? []).map((t) => t + this.#tokenOffset);
  }

  /**
   * The decoder's answer to {@link feed}'s tokens (`logits` of each fed position, the extended
   * cache): the guesses greedy decoding agrees with are kept, the first disagreement is the next
   * right token, the cache entries of rejected guesses are hidden.
   */
  take(result: StepResult): void {
    const fed = this.#fed;
    if (fed === undefined)
      throw new Error('Expected a sequence with tokens to feed but it is done');
    const guesses = fed.slice(1);
    const vocab = this.#graphs.vocab;
    this.#decoderCalls++;
    this.#guessesFed += guesses.length;
    let kept = 1;
    let next: number | undefined;
    let row = 0;
    for (; row < fed.length; row++) {
      const y = this.#choose(result.logits, row);
      if (y === undefined) {
        next = undefined;
        break;
      }
      const guess = guesses[row];
      if (guess !== undefined && y === guess) {
        this.#accepted.push(guess);
        kept++;
        this.#guessesAccepted++;
        continue;
      }
      next = y;
      break;
    }
    // The rows after the disagreement saw a wrong input: their outputs are only guesses now.
    this.#ownGuesses = [];
    for (let r = row + 1; r < fed.length; r++) {
      const g = bestAllowed(result.logits, r * vocab + this.#tokenOffset, this.#mask.fill(1));
      if (g >= 0) this.#ownGuesses.push(g);
    }
    this.#state = this.#graphs.keepFirst(result.state, fed.length, kept);
    this.#pending = next;
    this.#advance();
  }

  /** The decoded chunk and its cost (the tokens so far before {@link done}). */
  result(): DecodeResult {
    return {
      tokens: this.#accepted.slice(),
      chunk: this.#tokenizer.decode(this.#accepted),
      decoderCalls: this.#decoderCalls,
      guessesFed: this.#guessesFed,
      guessesAccepted: this.#guessesAccepted,
    };
  }

  /** Commit the pending token and, unless the chunk is whole, choose what the next call feeds. */
  #advance(): void {
    this.#fed = undefined;
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    const accepted = this.#accepted;
    accepted.push(pending);
    if (!this.#tokenizer.allowedNext(accepted, this.#mask)) return;
    const room = this.#tokenizer.maxTokens - accepted.length - 1;
    const guesses: number[] = [];
    for (let i = 0; i < Math.min(this.#window - 1, room); i++) {
      const position = accepted.length + i;
      const guess = this.#draft[position] ?? this.#ownGuesses[i] ?? guesses[i - 1] ?? pending;
      guesses.push(guess);
    }
    this.#fed = [pending, ...guesses];
  }

  /** Greedy's constrained choice after the accepted tokens, from row `row` of `logits`. */
  #choose(logits: Float32Array, row: number): number | undefined {
    return this.#tokenizer.allowedNext(this.#accepted, this.#mask)
      ? argmaxAllowed(logits, row * this.#graphs.vocab + this.#tokenOffset, this.#mask)
      : undefined;
  }
}

/**
 * Drop the cache entries nothing attends to (instruction padding, rejected guesses, the padding
 * of shared calls) from the sequences about to share a decoder call, once that would shorten the
 * call's cache by more than a quarter (and by more than 16 entries). In a continuous batch each
 * sequence is padded to the longest, and a joining sequence would otherwise inherit that padding
 * and pass it on, so that caches grew for as long as the batch never emptied. Below that the rows
 * stay as the last call left them: a sequence's padding costs nothing while a longer one shares
 * the call, and a batch that steps together then feeds its last call's tensors as they are.
 */
export function compactTogether(sequences: readonly DecodeSequence[]): void {
  let longest = 0;
  let attended = 0;
  for (const s of sequences) {
    const { valid } = s.state;
    let n = 0;
    for (const v of valid) n += v;
    longest = Math.max(longest, valid.length);
    attended = Math.max(attended, n);
  }
  if (longest - attended > Math.max(16, longest / 4)) for (const s of sequences) s.compact();
}

/**
 * `state` without its hidden entries: the same attention (hidden entries weigh nothing, and the
 * real ones keep the keys of their own positions), in a cache of the real entries only.
 */
export function compactState(state: KvState): KvState {
  const keep: number[] = [];
  state.valid.forEach((v, i) => {
    if (v === 1) keep.push(i);
  });
  if (keep.length === state.valid.length) return state;
  const past = state.past.map((tensor) => {
    const [batch, heads, length, dim] = tensor.dims as [number, number, number, number];
    const src = tensor.data as Float32Array;
    const data = new Float32Array(batch * heads * keep.length * dim);
    for (let h = 0; h < batch * heads; h++)
      keep.forEach((from, to) => {
        data.set(
          src.subarray((h * length + from) * dim, (h * length + from + 1) * dim),
          (h * keep.length + to) * dim,
        );
      });
    return new ort.Tensor('float32', data, [batch, heads, keep.length, dim]);
  });
  return { past, valid: new Uint8Array(keep.length).fill(1), nextPosition: state.nextPosition };
}

/**
 * The allowed id with the largest logit among `mask.length` logits from `offset`; NaN logits are
 * never chosen, and a row with no finite allowed logit is a backend failure (a chunk is never made
 * of garbage).
 */
export function argmaxAllowed(logits: Float32Array, offset: number, mask: Uint8Array): number {
  const best = bestAllowed(logits, offset, mask);
  if (best < 0)
    throw new BackendError(
      'Expected finite logits for an admitted action token but the decoder returned none',
      {
        field: 'graphs.decoder.outputs.logits',
      },
    );
  return best;
}

/** {@link argmaxAllowed} without the error: -1 when no allowed logit is finite. */
function bestAllowed(logits: Float32Array, offset: number, mask: Uint8Array): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < mask.length; i++) {
    const v = logits[offset + i] as number;
    if (mask[i] === 1 && v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}
