/**
 * PyTorch's greedy decode of the fixture decoder pair (test/fixtures/ar-decoder/reference.json,
 * written by make.py): the cases' prefill inputs and the tokens every exact decoding must give.
 */
import { readFileSync } from 'node:fs';
import type { PrefillInput } from '../../../src/policy/autoregressive/decoder-graphs.js';

export interface ArReference {
  readonly horizon: number;
  readonly action_dim: number;
  readonly first_action_position: number;
  readonly cases: readonly {
    readonly visual_tokens: number[];
    readonly token_positions: number[];
    readonly instruction_ids: number[];
    readonly state: number[];
    readonly tokens: number[];
  }[];
}

export const AR_REFERENCE = JSON.parse(
  readFileSync(new URL('../../fixtures/ar-decoder/reference.json', import.meta.url), 'utf8'),
) as ArReference;

/** Each case's prefill input, as the runtime passes it to the prefill graph. */
export const AR_REFERENCE_INPUTS: readonly PrefillInput[] = AR_REFERENCE.cases.map((c) => ({
  visualTokens: Float32Array.from(c.visual_tokens),
  tokenPositions: BigInt64Array.from(c.token_positions, BigInt),
  instructionIds: BigInt64Array.from(c.instruction_ids, BigInt),
  state: Float32Array.from(c.state),
}));
