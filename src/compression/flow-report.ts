/**
 * The compression report of a flow-matching package (format v2): the same sections and gate as
 * the encoder + policy report (report.ts), with the figures per graph role and per runtime stage.
 */
import type { FlowRole } from '../model/flow-manifest.js';
import type { CompressedPrecision } from './options.js';
import { actionErrorTable, gateLine, pct } from './report-common.js';
import type { CommonSections, Fp16Fields, Int8Fields } from './report-common.js';

/**
 * p50 per FlowPolicy stage of one inference (ms): `denoise` is every expert step together;
 * `total` is the sum of the four stages' p50s (the graphs' time: ingest and pruning, the same
 * for every variant, are left out).
 */
export type FlowStageMs = {
  readonly encode: number;
  readonly instruction: number;
  readonly prefix: number;
  readonly denoise: number;
  readonly total: number;
};

/** Mean per closed-loop inference (ms): `policy` is instruction + prefix + denoising. */
export type FlowSimStageMs = { readonly encode: number; readonly policy: number };

/** Where the calibration inputs came from: FlowPolicy's own graph calls on the calibration frames. */
export type FlowCalibration = {
  readonly dir: string;
  readonly frames: number;
  readonly cameras: readonly string[];
  /** Graph calls captured per role (the expert once per denoising step). */
  readonly graph_runs: Readonly<Record<FlowRole, number>>;
  /** The flow times the expert was calibrated at (the runtime's Euler steps). */
  readonly expert_times: readonly number[];
  readonly steps: number;
};

/** The validation sections of a flow report (see report.ts's ValidationSections). */
export type FlowValidationSections<P extends CompressedPrecision> = CommonSections<P> & {
  /** FlowPolicy fp32 against FlowPolicy at the variant, the same observation and noise seed each. */
  readonly action_error: { readonly steps: number };
  readonly closed_loop: {
    readonly sim_stage_mean_ms: Readonly<Record<'fp32' | P, FlowSimStageMs>>;
  };
  readonly latency: {
    readonly cpu: string;
    readonly threads: 1;
    readonly steps: number;
    readonly fp32_p50_ms: FlowStageMs;
    /** variant / fp32 per stage; `total` is the whole inference (what `precision: auto` compares). */
    readonly ratio: FlowStageMs;
  } & { readonly [K in `${P}_p50_ms`]: FlowStageMs };
};

type FlowHead = {
  readonly format: 'vla-node/compression-report@1';
  readonly family: 'flow';
  readonly variant: string;
  readonly calibration: FlowCalibration;
};

/** The report of a flow package's INT8 variant. */
export type FlowInt8Report = FlowHead & Int8Fields<FlowRole> & FlowValidationSections<'int8'>;

/** The report of a flow package's FP16 variant (measured on the CPU provider, like v1's). */
export type FlowFp16Report = FlowHead &
  Fp16Fields<FlowRole> & {
    readonly kept_fp32: {
      /** The nodes kept because their fp32 output left the float16 range on the calibration inputs (default only). */
      readonly for_range: Readonly<Record<FlowRole, readonly string[]>>;
    };
  } & FlowValidationSections<'fp16'>;

export type FlowCompressionReport = FlowInt8Report | FlowFp16Report;

/** The compressed variant's own figures of a flow report, whatever its precision. */
export function flowVariantFigures(r: FlowCompressionReport): {
  readonly successRate: number;
  readonly p50: FlowStageMs;
  readonly stages: FlowSimStageMs;
  readonly bytes: number;
} {
  return r.precision === 'int8'
    ? {
        successRate: r.closed_loop.int8_success_rate,
        p50: r.latency.int8_p50_ms,
        stages: r.closed_loop.sim_stage_mean_ms.int8,
        bytes: r.size_bytes.int8,
      }
    : {
        successRate: r.closed_loop.fp16_success_rate,
        p50: r.latency.fp16_p50_ms,
        stages: r.closed_loop.sim_stage_mean_ms.fp16,
        bytes: r.size_bytes.fp16,
      };
}

const STAGES = ['encode', 'instruction', 'prefix', 'denoise', 'total'] as const;

/** The report as Markdown (`reports/<variant>.md`). */
export function flowReportMarkdown(r: FlowCompressionReport): string {
  const p = r.precision;
  const v = flowVariantFigures(r);
  const roles = (rec: Readonly<Record<FlowRole, readonly string[]>>): string =>
    Object.entries(rec)
      .map(([role, names]) => `${role}: ${names.join(', ') || 'none'}`)
      .join('; ');
  const gate = gateLine(r.gate);
  const c = r.calibration;
  const calibration = `- Calibration: ${c.frames} frames (cameras ${c.cameras.join(', ')}) from \`${c.dir}\`, run through FlowPolicy fp32 with all visual tokens: ${Object.entries(
    c.graph_runs,
  )
    .map(([role, n]) => `${role} ${n}`)
    .join(
      ', ',
    )} graph calls captured; the expert at t = ${c.expert_times.join(', ')} (${c.steps} Euler steps)`;
  const head =
    r.precision === 'int8'
      ? [
          `# ${r.variant}: INT8 ${r.mode} quantization report (flow package)`,
          '',
          gate,
          '',
          `${calibration}${r.mode === 'static' ? `, ranges by ${r.method ?? ''}` : ' (dynamic: activations quantized at run time by DynamicQuantizeLinear, MatMulInteger; the frames only check the set)'}`,
          `- Quantized weight nodes: ${Object.entries(r.quantized_nodes)
            .map(([role, n]) => `${role} ${n}`)
            .join(', ')}`,
          `- Kept in float: ${roles(r.excluded)} (plus LayerNormalization, Softmax and activation×activation MatMuls)`,
        ]
      : [
          `# ${r.variant}: FP16 report (flow package)`,
          '',
          `FP16 is meant for the GPU providers (${r.intended_providers.join(', ')}). Everything below was measured on the **CPU** provider, the only one here: the latency says nothing about a GPU, and the action error is also given for a float16 emulation (every float16 result rounded as a GPU stores it).`,
          '',
          gate,
          '',
          calibration,
          `- Nodes in float16: ${Object.entries(r.converted)
            .map(([role, s]) => `${role} ${s.fp16_nodes}`)
            .join(
              ', ',
            )}; kept in float32: ${roles(r.kept_fp32.nodes)} (operator types kept: ${r.kept_fp32.ops.join(', ') || 'none'}; kept because their fp32 output leaves the float16 range on the calibration inputs: ${roles(r.kept_fp32.for_range)})`,
          `- Largest |activation| of the fp32 graphs on the calibration inputs: ${Object.entries(
            r.activations.max_abs,
          )
            .map(([role, a]) => `${role} ${a.value} (\`${a.tensor}\`)`)
            .join(', ')}; beyond 65504: ${r.activations.over_fp16_max.join(', ') || 'none'}`,
        ];
  const e = r.action_error;
  return [
    ...head,
    '',
    '## Action error against fp32',
    '',
    `${e.frames} held-out simulator observations (every camera, all visual tokens kept), each denoised in ${e.steps} steps from the same seeded noise by FlowPolicy at fp32 and at ${p}; clamped actions in table units:`,
    '',
    ...actionErrorTable(e, r.precision === 'fp16' ? r.emulated_action_error : undefined),
    '',
    `Threshold on the mean: ${e.threshold}.`,
    '',
    '## Closed loop',
    '',
    `${r.closed_loop.episodes} episodes, seed ${r.closed_loop.seed}, both cameras: fp32 ${pct(r.closed_loop.fp32_success_rate)}, ${p} ${pct(v.successRate)} (tolerance ${r.closed_loop.tolerance_points} points). Mean per inference: fp32 encode ${r.closed_loop.sim_stage_mean_ms.fp32.encode} ms / policy ${r.closed_loop.sim_stage_mean_ms.fp32.policy} ms; ${p} encode ${v.stages.encode} ms / policy ${v.stages.policy} ms (policy = instruction + prefix + denoising).`,
    '',
    '## Latency and size on this CPU',
    '',
    `${r.latency.cpu}, one intra-op thread, FlowPolicy stages at ${r.latency.steps} steps (instruction cache off so that every inference runs it), p50 in ms, measured in one run; total = the four stages' p50s added (ingest and pruning, the same for every variant, left out):`,
    '',
    `| stage | fp32 | ${p} | ${p}/fp32 |`,
    '|---|---|---|---|',
    ...STAGES.map(
      (s) => `| ${s} | ${r.latency.fp32_p50_ms[s]} | ${v.p50[s]} | ${r.latency.ratio[s]} |`,
    ),
    '',
    `File size (four graphs): fp32 ${r.size_bytes.fp32} bytes, ${p} ${v.bytes} bytes (ratio ${r.size_bytes.ratio}).`,
    '',
  ].join('\n');
}
