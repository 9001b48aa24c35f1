/** The compression report: its JSON shape, per-precision figures and its Markdown rendering. */
import type { GraphRole } from '../model/manifest.js';
import type { CompressedPrecision } from './options.js';
import { actionErrorTable, gateLine, pct } from './report-common.js';
import type { CommonSections, Fp16Fields, Int8Fields } from './report-common.js';

export type StageMs = { readonly encoder: number; readonly policy: number };
export type SimStageMs = { readonly encode: number; readonly policy: number };

/**
 * The validation sections every report has; the compressed variant's figures are keyed by its
 * precision (`int8_success_rate`, `fp16_p50_ms`, ...).
 */
export type ValidationSections<P extends CompressedPrecision> = CommonSections<P> & {
  readonly closed_loop: {
    readonly sim_stage_p50_ms: Readonly<Record<'fp32' | P, SimStageMs>>;
  };
  readonly latency: {
    readonly cpu: string;
    readonly threads: 1;
    readonly fp32_p50_ms: StageMs;
    readonly ratio: { readonly encoder: number; readonly policy: number; readonly total: number };
    readonly fp32_top_ops_us: Readonly<Record<string, number>>;
  } & { readonly [K in `${P}_p50_ms`]: StageMs } & {
    /** Kernel time per operator type over the profiled runs (µs), slowest first. */
    readonly [K in `${P}_top_ops_us`]: Readonly<Record<string, number>>;
  };
};

type Head = {
  readonly format: 'vla-node/compression-report@1';
  readonly variant: string;
  readonly calibration: { readonly dir: string; readonly frames: number };
};

/** The report of an INT8 variant (`reports/int8.json`, `reports/int8-dynamic.json`). */
export type Int8Report = Head & Int8Fields<GraphRole> & ValidationSections<'int8'>;

/** The report of the FP16 variant (`reports/fp16.json`). */
export type Fp16Report = Head & Fp16Fields<GraphRole> & ValidationSections<'fp16'>;

export type CompressionReport = Int8Report | Fp16Report;

/** The compressed variant's own figures of a report, whatever its precision. */
export function variantFigures(r: CompressionReport): {
  readonly successRate: number;
  readonly p50: StageMs;
  readonly topOps: Readonly<Record<string, number>>;
  readonly stages: SimStageMs;
  readonly bytes: number;
} {
  return r.precision === 'int8'
    ? {
        successRate: r.closed_loop.int8_success_rate,
        p50: r.latency.int8_p50_ms,
        topOps: r.latency.int8_top_ops_us,
        stages: r.closed_loop.sim_stage_p50_ms.int8,
        bytes: r.size_bytes.int8,
      }
    : {
        successRate: r.closed_loop.fp16_success_rate,
        p50: r.latency.fp16_p50_ms,
        topOps: r.latency.fp16_top_ops_us,
        stages: r.closed_loop.sim_stage_p50_ms.fp16,
        bytes: r.size_bytes.fp16,
      };
}

/** The report as Markdown (`reports/<variant>.md`). */
export function reportMarkdown(r: CompressionReport): string {
  const p = r.precision;
  const v = variantFigures(r);
  const head =
    r.precision === 'int8'
      ? [
          `# ${r.variant}: INT8 ${r.mode} quantization report`,
          '',
          gateLine(r.gate),
          '',
          `- Calibration: ${r.calibration.frames} frames from \`${r.calibration.dir}\`, method ${r.method ?? 'n/a (dynamic: activations quantized at run time by DynamicQuantizeLinear, MatMulInteger)'}`,
          `- Quantized weight nodes: encoder ${r.quantized_nodes.encoder}, policy ${r.quantized_nodes.policy}; kept in float: ${[...r.excluded.encoder, ...r.excluded.policy].join(', ') || 'none'} (plus LayerNormalization, Softmax and activation×activation MatMuls)`,
        ]
      : [
          `# ${r.variant}: FP16 report`,
          '',
          `FP16 is meant for the GPU providers (${r.intended_providers.join(', ')}). Everything below was measured on the **CPU** provider, the only one here. ONNX Runtime's CPU provider runs the float16 graph by inserting Casts around the operators that lack float16 kernels, so the latency below says nothing about a GPU, and the action error is also given for a float16 emulation (see below). \`precision: auto\` picks a variant only from a report measured on the provider in use, so it does not pick this one on a GPU until it is measured there.`,
          '',
          gateLine(r.gate),
          '',
          `- Conversion: float32 initializers and constants to float16 (round to nearest even; ${r.converted.encoder.values_clamped + r.converted.policy.values_clamped} values clamped to ±65504, ${r.converted.encoder.values_flushed + r.converted.policy.values_flushed} flushed to zero); graph inputs and outputs stay float32 behind Casts (encoder ${r.converted.encoder.casts_added}, policy ${r.converted.policy.casts_added} Casts added)`,
          `- Nodes in float16: encoder ${r.converted.encoder.fp16_nodes}, policy ${r.converted.policy.fp16_nodes}; kept in float32: ${[...r.kept_fp32.nodes.encoder, ...r.kept_fp32.nodes.policy].join(', ') || 'none'} (operator types kept: ${r.kept_fp32.ops.join(', ') || 'none'})`,
          `- Activation range on ${r.calibration.frames} calibration frames from \`${r.calibration.dir}\` (fp32 graphs): largest |value| ${r.activations.max_abs.encoder.value} in the encoder (\`${r.activations.max_abs.encoder.tensor}\`), ${r.activations.max_abs.policy.value} in the policy (\`${r.activations.max_abs.policy.tensor}\`); beyond 65504: ${r.activations.over_fp16_max.join(', ') || 'none'}`,
        ];
  return [
    ...head,
    '',
    '## Action error against fp32',
    '',
    `${r.action_error.frames} held-out simulator frames (all visual tokens kept), table units:`,
    '',
    ...(r.precision === 'fp16'
      ? [
          ...actionErrorTable(r.action_error, r.emulated_action_error),
          '',
          'The first two columns run the float16 files on the CPU provider, which removes float32→float16→float32 Cast pairs (onnxruntime#8787) and so computes most activations in float32: they mostly measure the float16 weights. The emulated columns run a float32 copy of the graph that rounds every float16 result to float16 (11 significant bits), as a GPU stores it; both are gated.',
        ]
      : actionErrorTable(r.action_error)),
    '',
    `Threshold on the mean: ${r.action_error.threshold}.`,
    '',
    '## Closed loop',
    '',
    `${r.closed_loop.episodes} episodes, seed ${r.closed_loop.seed}: fp32 ${pct(r.closed_loop.fp32_success_rate)}, ${p} ${pct(v.successRate)} (tolerance ${r.closed_loop.tolerance_points} points).`,
    '',
    '## Latency and size on this CPU',
    '',
    `${r.latency.cpu}, one intra-op thread, p50 in ms, measured in one run:`,
    '',
    `| stage | fp32 | ${p} | ${p}/fp32 |`,
    '|---|---|---|---|',
    `| encoder | ${r.latency.fp32_p50_ms.encoder} | ${v.p50.encoder} | ${r.latency.ratio.encoder} |`,
    `| policy | ${r.latency.fp32_p50_ms.policy} | ${v.p50.policy} | ${r.latency.ratio.policy} |`,
    `| total | | | ${r.latency.ratio.total} |`,
    '',
    `In the closed loop (pipeline stage p50): fp32 encode ${r.closed_loop.sim_stage_p50_ms.fp32.encode} ms / policy ${r.closed_loop.sim_stage_p50_ms.fp32.policy} ms; ${p} encode ${v.stages.encode} ms / policy ${v.stages.policy} ms.`,
    '',
    `File size: fp32 ${r.size_bytes.fp32} bytes, ${p} ${v.bytes} bytes (ratio ${r.size_bytes.ratio}).`,
    '',
    'Kernel time by operator over 50 profiled runs (µs, ORT `enableProfiling`):',
    '',
    `- ${p}: ${Object.entries(v.topOps)
      .map(([k, x]) => `${k} ${x}`)
      .join(', ')}`,
    `- fp32: ${Object.entries(r.latency.fp32_top_ops_us)
      .map(([k, x]) => `${k} ${x}`)
      .join(', ')}`,
    '',
  ].join('\n');
}
