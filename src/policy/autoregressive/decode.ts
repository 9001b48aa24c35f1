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
import { BackendError } from '../../errors.js';
import type { ActionTokenizer } from './action-tokenizer.js';
import type { DecoderGraphs, KvState, PrefillInput } from './decoder-graphs.js';

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
  const window = strategy.kind === 'greedy' ? 1 : Math.max(1, Math.floor(strategy.window));
  const draft = strategy.kind === 'speculative' ? strategy.draft : [];
  const mask = new Uint8Array(tokenizer.vocabSize);
  const choose = (
    logits: Float32Array,
    row: number,
    prefix: readonly number[],
  ): number | undefined =>
    tokenizer.allowedNext(prefix, mask)
      ? argmaxAllowed(logits, row * graphs.vocab + tokenOffset, mask)
      : undefined;

  const first = await graphs.prefill(input, firstActionPosition);
  const accepted: number[] = [];
  let pending = choose(first.logits, 0, accepted);
  let state: KvState = first.state;
  // The model's own outputs at positions beyond the last disagreement (Jacobi's next iterate).
  let ownGuesses: number[] = [];
  let decoderCalls = 0;
  let guessesFed = 0;
  let guessesAccepted = 0;

  while (pending !== undefined) {
    accepted.push(pending);
    if (!tokenizer.allowedNext(accepted, mask)) break;
    const room = tokenizer.maxTokens - accepted.length - 1;
    const guesses: number[] = [];
    for (let i = 0; i < Math.min(window - 1, room); i++) {
      const position = accepted.length + i;
      const guess = draft[position] ?? ownGuesses[i] ?? guesses[i - 1] ?? pending;
      guesses.push(guess);
    }
    const fed = [pending, ...guesses];
    const result = await graphs.step(
      state,
      fed.map((t) => t + tokenOffset),
    );
    decoderCalls++;
    guessesFed += guesses.length;
    let kept = 1;
    let next: number | undefined;
    let row = 0;
    for (; row < fed.length; row++) {
      const y = choose(result.logits, row, accepted);
      if (y === undefined) {
        next = undefined;
        break;
      }
      const guess = guesses[row];
      if (guess !== undefined && y === guess) {
        accepted.push(guess);
        kept++;
        guessesAccepted++;
        continue;
      }
      next = y;
      break;
    }
    // The rows after the disagreement saw a wrong input: their outputs are only guesses now.
    ownGuesses = [];
    for (let r = row + 1; r < fed.length; r++) {
      const g = bestAllowed(result.logits, r * graphs.vocab + tokenOffset, mask.fill(1));
      if (g >= 0) ownGuesses.push(g);
    }
    state = graphs.keepFirst(result.state, fed.length, kept);
    pending = next;
  }
  return {
    tokens: accepted,
    chunk: tokenizer.decode(accepted),
    decoderCalls,
    guessesFed,
    guessesAccepted,
  };
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
