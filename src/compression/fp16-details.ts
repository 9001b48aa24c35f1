/**
 * What an FP16 build reports from the fp32 activation peaks and the converter's counts, the same
 * for the encoder + policy family and the flow family.
 */
import { graphOf, type ModelProto } from '../util/onnx-graph.js';
import { round } from '../util/stats.js';
import { FLOAT16_MAX } from './float16-bits.js';
import type { Fp16Stats } from './fp16.js';

/** The activation with the largest peak of one graph (value rounded to 3 places; `''`, 0 if none). */
export function largestPeak(peaks: ReadonlyMap<string, number>): { tensor: string; value: number } {
  let best = { tensor: '', value: 0 };
  for (const [tensor, value] of peaks) if (value > best.value) best = { tensor, value };
  return { tensor: best.tensor, value: round(best.value, 3) };
}

/** The tensors the nodes `names` of `graph` compute (after conversion: those kept in float32). */
export function nodeOutputs(graph: ModelProto, names: readonly string[]): string[] {
  return graphOf(graph)
    .node.filter((n) => names.includes(n.name))
    .flatMap((n) => n.output);
}

/**
 * The activations whose peak exceeds float16's range (65504), in `peaks` order, except those in
 * `float32` (none when omitted): a node kept in float32 computes them, so they cannot overflow.
 */
export function overFp16Max(
  peaks: ReadonlyMap<string, number>,
  float32: ReadonlySet<string> = new Set(),
): string[] {
  return [...peaks].filter(([name, v]) => v > FLOAT16_MAX && !float32.has(name)).map(([n]) => n);
}

/** The converter's counts as a report's `converted` gives them (`fp32_nodes` goes to `kept_fp32`). */
export function convertedStats(stats: Fp16Stats): Omit<Fp16Stats, 'fp32_nodes'> {
  const { fp32_nodes: _, ...rest } = stats;
  return rest;
}
