/**
 * What the compression reports of both families (report.ts: encoder + policy, flow-report.ts:
 * flow) share: the per-precision fields of INT8 and FP16 reports, keyed by the family's graph
 * roles, and the Markdown lines both renderers write alike.
 */
import type { Fp16Stats } from './fp16.js';
import type { CompressedPrecision } from './options.js';
import type { QuantMode } from './quantize.js';
import type { CalibrationMethod } from './runner.js';

/** The action error section's figures (each family may add its own fields). */
export type ActionErrorSection = {
  readonly frames: number;
  readonly names: readonly string[];
  readonly mean_abs: readonly number[];
  readonly max_abs: readonly number[];
  readonly threshold: number;
};

/** The closed loop section's success figures; the compressed variant's rate keyed by precision. */
export type ClosedLoopSection<P extends CompressedPrecision> = {
  readonly episodes: number;
  readonly seed: number;
  readonly fp32_success_rate: number;
  readonly tolerance_points: number;
} & { readonly [K in `${P}_success_rate`]: number };

/** File sizes in bytes, the compressed variant's keyed by precision, and variant / fp32. */
export type SizeSection<P extends CompressedPrecision> = {
  readonly fp32: number;
  readonly ratio: number;
} & { readonly [K in P]: number };

/** Measured on the CPU provider (the only one `compress` runs). */
export type GateSection = {
  readonly passed: boolean;
  readonly provider: 'cpu';
  readonly reasons: string[];
};

/**
 * The validation sections every report has, as far as both families agree; each family adds its
 * closed-loop stage times, its `latency` section and (flow) the denoising steps.
 */
export type CommonSections<P extends CompressedPrecision> = {
  readonly action_error: ActionErrorSection;
  readonly closed_loop: ClosedLoopSection<P>;
  readonly size_bytes: SizeSection<P>;
  readonly gate: GateSection;
};

/** An INT8 report's own fields, per graph role `R`. */
export type Int8Fields<R extends string> = {
  readonly precision: 'int8';
  readonly mode: QuantMode;
  readonly method: CalibrationMethod | null;
  readonly excluded: Readonly<Record<R, readonly string[]>>;
  readonly quantized_nodes: Readonly<Record<R, number>>;
};

/** The fields that say what an FP16 report's variant is, in report order (both families). */
export const FP16_KIND = Object.freeze({
  precision: 'fp16',
  mode: 'fp16',
  method: null,
  // Frozen: every report spreads this object, so they all share this one array.
  intended_providers: Object.freeze(['tensorrt', 'cuda'] as const),
} as const);

/** An FP16 report's own fields, per graph role `R`. */
export type Fp16Fields<R extends string> = {
  readonly precision: 'fp16';
  readonly mode: 'fp16';
  readonly method: null;
  /** The providers FP16 is made for; the figures below were measured on the CPU provider. */
  readonly intended_providers: (typeof FP16_KIND)['intended_providers'];
  /**
   * Operator types kept in float32, and the nodes that stayed float32 because of them or by name
   * (the flow family's: every node that computes in float32, `for_range` ones included).
   */
  readonly kept_fp32: {
    readonly ops: readonly string[];
    readonly nodes: Readonly<Record<R, readonly string[]>>;
  };
  readonly converted: Readonly<Record<R, Omit<Fp16Stats, 'fp32_nodes'>>>;
  /** The largest |value| of the fp32 graphs' float activations over the calibration inputs. */
  readonly activations: {
    readonly max_abs: Readonly<Record<R, { readonly tensor: string; readonly value: number }>>;
    /** Activations computed in float16 whose magnitude exceeds 65504 (they would overflow). */
    readonly over_fp16_max: readonly string[];
  };
  /**
   * The action error of {@link emulateFloat16} (every float16 result rounded as a GPU stores it)
   * on the same frames: ONNX Runtime's CPU provider computes most activations of the float16
   * graph in float32, so `action_error` alone understates what a GPU gives. Gated too.
   */
  readonly emulated_action_error: {
    readonly mean_abs: readonly number[];
    readonly max_abs: readonly number[];
  };
};

/** A rate in [0, 1] as a percentage with one decimal. */
export function pct(v: number): string {
  return `${(100 * v).toFixed(1)}%`;
}

/** The gate's Markdown line: provider, verdict and (when failed) the reasons. */
export function gateLine(gate: {
  readonly passed: boolean;
  readonly provider: string;
  readonly reasons: readonly string[];
}): string {
  return `Gate (${gate.provider}): **${gate.passed ? 'passed' : 'failed'}**${gate.reasons.length > 0 ? ` — ${gate.reasons.join('; ')}` : ''}`;
}

type ErrorColumns = { readonly mean_abs: readonly number[]; readonly max_abs: readonly number[] };

/**
 * The action error table, a row per dimension: mean and max |error|, and the float16 emulation's
 * two columns when `emulated` is given (FP16).
 */
export function actionErrorTable(
  e: ErrorColumns & { readonly names: readonly string[] },
  emulated?: ErrorColumns,
): string[] {
  return emulated === undefined
    ? [
        '| dimension | mean abs | max abs |',
        '|---|---|---|',
        ...e.names.map((n, i) => `| ${n} | ${String(e.mean_abs[i])} | ${String(e.max_abs[i])} |`),
      ]
    : [
        '| dimension | mean abs | max abs | mean abs, float16 emulated | max abs, float16 emulated |',
        '|---|---|---|---|---|',
        ...e.names.map(
          (n, i) =>
            `| ${n} | ${String(e.mean_abs[i])} | ${String(e.max_abs[i])} | ${String(emulated.mean_abs[i])} | ${String(emulated.max_abs[i])} |`,
        ),
      ];
}
