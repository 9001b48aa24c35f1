/**
 * Greedy decoding of several observations' chunks together, one decoder call per step for all of
 * them (the step of continuous batching: sequences of different prefix lengths share a call,
 * their padding hidden by the attention mask). Each chunk is exactly what {@link decodeChunk}
 * decodes greedily for that observation alone.
 */
import type { ActionTokenizer } from './action-tokenizer.js';
import { argmaxAllowed, type DecodeResult } from './decode.js';
import type { DecoderGraphs, KvState, PrefillInput } from './decoder-graphs.js';

/** Greedy chunks of `inputs`, decoded in batched decoder calls; one result per input, in order. */
export async function decodeChunksGreedy(
  graphs: DecoderGraphs,
  tokenizer: ActionTokenizer,
  inputs: readonly PrefillInput[],
  tokenOffset = 0,
  firstActionPosition?: number,
): Promise<DecodeResult[]> {
  const mask = new Uint8Array(tokenizer.vocabSize);
  const choose = (logits: Float32Array, prefix: readonly number[]): number | undefined =>
    tokenizer.allowedNext(prefix, mask) ? argmaxAllowed(logits, tokenOffset, mask) : undefined;
  const seqs: { tokens: number[]; state: KvState; pending: number | undefined; calls: number }[] =
    [];
  for (const input of inputs) {
    const first = await graphs.prefill(input, firstActionPosition);
    seqs.push({ tokens: [], state: first.state, pending: choose(first.logits, []), calls: 0 });
  }
  for (;;) {
    const active = seqs.filter((s) => {
      if (s.pending === undefined) return false;
      s.tokens.push(s.pending);
      s.pending = undefined;
      return tokenizer.allowedNext(s.tokens, mask);
    });
    if (active.length === 0) break;
    const results = await graphs.stepMany(
      active.map((s) => s.state),
      active.map((s) => [(s.tokens[s.tokens.length - 1] as number) + tokenOffset]),
    );
    active.forEach((s, i) => {
      const r = results[i] as { logits: Float32Array; state: KvState };
      s.state = r.state;
      s.calls++;
      s.pending = choose(r.logits, s.tokens);
    });
  }
  return seqs.map((s) => ({
    tokens: s.tokens,
    chunk: tokenizer.decode(s.tokens),
    decoderCalls: s.calls,
    guessesFed: 0,
    guessesAccepted: 0,
  }));
}
