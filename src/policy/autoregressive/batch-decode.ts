/**
 * Decoding several observations' chunks together, one decoder call per step for all of them (the
 * step of continuous batching: sequences of different prefix lengths, feeding different numbers
 * of tokens, share a call, their padding hidden by the attention mask). Each chunk is exactly what
 * {@link decodeChunk} decodes for that observation alone.
 */
import type { ActionTokenizer } from './action-tokenizer.js';
import {
  compactTogether,
  DecodeSequence,
  type DecodeResult,
  type DecodeStrategy,
} from './decode.js';
import type { DecoderGraphs, PrefillInput } from './decoder-graphs.js';

/**
 * One decoder call for every sequence that is not done: each takes its own rows of the answer.
 * Returns how many sequences the call fed.
 */
export async function stepSequences(
  graphs: Pick<DecoderGraphs, 'stepMany'>,
  sequences: readonly DecodeSequence[],
): Promise<number> {
  const active = sequences.filter((s) => !s.done);
  if (active.length === 0) return 0;
  compactTogether(active);
  const results = await graphs.stepMany(
    active.map((s) => s.state),
    active.map((s) => s.feed()),
  );
  active.forEach((s, i) => {
    s.take(results[i] as (typeof results)[number]);
  });
  return active.length;
}

/**
 * The sequences of `inputs`, each by its own strategy, ready for their first decoder call: one
 * prefill call for all of them where their shapes agree (the first decoder call then takes its
 * cache tensors as they are), else one each.
 */
export async function startSequences(
  graphs: DecoderGraphs,
  tokenizer: ActionTokenizer,
  inputs: readonly { readonly input: PrefillInput; readonly strategy: DecodeStrategy }[],
  tokenOffset = 0,
  firstActionPosition?: number,
): Promise<DecodeSequence[]> {
  const firsts = await graphs.prefillMany(
    inputs.map((x) => x.input),
    firstActionPosition,
  );
  return firsts.map(
    (first, i) =>
      new DecodeSequence(
        graphs,
        tokenizer,
        (inputs[i] as (typeof inputs)[number]).strategy,
        first,
        tokenOffset,
      ),
  );
}

/** Chunks of `inputs`, each by its own strategy, decoded in shared decoder calls; in order. */
export async function decodeChunks(
  ...start: Parameters<typeof startSequences>
): Promise<DecodeResult[]> {
  const [graphs] = start;
  const sequences = await startSequences(...start);
  while ((await stepSequences(graphs, sequences)) > 0);
  return sequences.map((s) => s.result());
}

/** Greedy chunks of `inputs`, decoded in batched decoder calls; one result per input, in order. */
export function decodeChunksGreedy(
  graphs: DecoderGraphs,
  tokenizer: ActionTokenizer,
  inputs: readonly PrefillInput[],
  tokenOffset = 0,
  firstActionPosition?: number,
): Promise<DecodeResult[]> {
  return decodeChunks(
    graphs,
    tokenizer,
    inputs.map((input) => ({ input, strategy: { kind: 'greedy' } as const })),
    tokenOffset,
    firstActionPosition,
  );
}
