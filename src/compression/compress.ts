import { InputError } from '../errors.js';
import {
  loadModelPackage,
  selectVariant,
  type GraphRole,
  type ModelPackage,
} from '../model/manifest.js';
import { prepareSamples, readCalibrationSet, type PreparedSample } from './calibration.js';
import { convertToFloat16, DEFAULT_FP16_KEEP_OPS } from './fp16.js';
import { emulateFloat16, floatActivations } from './fp16-emulate.js';
import { FP16_KNOWN_OPS } from './fp16-types.js';
import {
  encodeOnnx,
  graphOf,
  loadOnnx,
  withExtraOutputs,
  type ModelProto,
} from '../util/onnx-graph.js';
import {
  defaultExclusions,
  planQuantization,
  quantizeModel,
  type QuantMode,
  type QuantTarget,
  type Range,
} from './quantize.js';
import {
  collectPeaks,
  collectRanges,
  GraphRunner,
  type CalibrationMethod,
  type InstrumentedRun,
} from './runner.js';
import type { CompressOptions } from './options.js';
import { FP16_KIND } from './report-common.js';
import {
  reportMarkdown,
  type CompressionReport,
  type Fp16Report,
  type Int8Report,
} from './report.js';

import { measure, validationSections } from './measure.js';
import { emulatedActionError, fp16Reasons } from './validation.js';
import { GRAPH_ROLES as ROLES } from '../model/manifest.js';
import { byRole } from '../util/roles.js';
import { convertedStats, largestPeak, nodeOutputs, overFp16Max } from './fp16-details.js';
import { addCompressedVariant } from './add-variant.js';

export * from './options.js';
export * from './report.js';
export { withVariants } from './commit.js';

/** The fp32 graphs, instrumented, run on each prepared sample in turn. */
function runGraphs(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
): InstrumentedRun<GraphRole, void> {
  return async (names, consume, onFrame) => {
    const runner = await GraphRunner.create(
      pkg,
      encodeOnnx(withExtraOutputs(graphs.encoder, names.encoder)),
      encodeOnnx(withExtraOutputs(graphs.policy, names.policy)),
    );
    try {
      for (const [i, s] of samples.entries()) {
        const out = await runner.run(s);
        for (const role of ROLES) consume(role, out[role]);
        onFrame(i + 1);
      }
    } finally {
      await runner.release();
    }
  };
}

/** Activation ranges of the targets, running the fp32 graphs with the activations as extra outputs. */
export async function calibrate(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  targets: Readonly<Record<GraphRole, readonly QuantTarget[]>>,
  samples: readonly PreparedSample[],
  method: CalibrationMethod,
  batchSize: number,
  progress: (line: string) => void,
): Promise<Record<GraphRole, Map<string, Range>>> {
  const names = byRole(ROLES, (r) => [...new Set(targets[r].map((t) => t.activation))]);
  const frames = { total: samples.length, every: batchSize, progress };
  const run = runGraphs(pkg, graphs, samples);
  return (await collectRanges(ROLES, names, run, method, frames)).ranges;
}

/**
 * The largest |value| of every float tensor the fp32 graphs compute, over `samples` (each
 * tensor is added as an output; the FP16 gate fails when one computed in float16 exceeds 65504).
 */
export async function activationPeaks(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  batchSize: number,
  progress: (line: string) => void,
): Promise<Record<GraphRole, Map<string, number>>> {
  const names = byRole(ROLES, (r) => floatActivations(graphs[r], `graphs.${r}`));
  const frames = { total: samples.length, every: batchSize, progress };
  return (await collectPeaks(ROLES, names, runGraphs(pkg, graphs, samples), frames)).peaks;
}

function checkExclusions(
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  exclude: readonly string[],
  opTypes: ReadonlySet<string> = new Set(),
): void {
  const known = new Set(ROLES.flatMap((r) => graphOf(graphs[r]).node.map((n) => n.name)));
  const missing = exclude.filter((e) => !known.has(e) && !opTypes.has(e));
  if (missing.length > 0) {
    throw new InputError(
      `Expected --exclude to name nodes of the graphs${opTypes.size > 0 ? ' or operator types the fp16 converter knows' : ''} but ${missing.map((m) => JSON.stringify(m)).join(', ')} ${missing.length === 1 ? 'is' : 'are'} neither`,
      { field: 'exclude' },
    );
  }
}

/** A compressed variant's graphs before validation, with what its report says about how. */
type Built =
  | {
      readonly precision: 'int8';
      readonly bytes: Readonly<Record<GraphRole, Uint8Array>>;
      readonly details: Pick<Int8Report, 'mode' | 'method' | 'excluded' | 'quantized_nodes'>;
      readonly ranges: Readonly<Record<GraphRole, Map<string, Range>>>;
    }
  | {
      readonly precision: 'fp16';
      readonly bytes: Readonly<Record<GraphRole, Uint8Array>>;
      /** The float32 graphs that round like float16 ({@link emulateFloat16}). */
      readonly emulated: Readonly<Record<GraphRole, Uint8Array>>;
      readonly details: Pick<Fp16Report, 'kept_fp32' | 'converted' | 'activations'>;
    };

async function buildInt8(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  options: CompressOptions & { readonly mode: QuantMode },
): Promise<Built> {
  const progress = options.progress;
  const excluded = {
    encoder: defaultExclusions(graphs.encoder, 'encoder'),
    policy: defaultExclusions(graphs.policy, 'policy'),
  };
  if (options.exclude !== undefined) {
    const ex = options.exclude.filter((e) => e !== 'none');
    checkExclusions(graphs, ex);
    const enc = new Set(graphOf(graphs.encoder).node.map((n) => n.name));
    excluded.encoder = ex.filter((e) => enc.has(e));
    excluded.policy = ex.filter((e) => !enc.has(e));
  }
  const targets = {
    encoder: planQuantization(graphs.encoder, new Set(excluded.encoder), 'graphs.encoder'),
    policy: planQuantization(graphs.policy, new Set(excluded.policy), 'graphs.policy'),
  };
  progress(
    `quantizing ${targets.encoder.length} encoder and ${targets.policy.length} policy weight nodes (${options.mode}); kept in float: ${[...excluded.encoder, ...excluded.policy].join(', ') || 'none'}`,
  );

  let ranges: Record<GraphRole, Map<string, Range>> = { encoder: new Map(), policy: new Map() };
  if (options.mode === 'static') {
    ranges = await calibrate(
      pkg,
      graphs,
      targets,
      samples,
      options.method,
      options.batchSize,
      progress,
    );
  }
  return {
    precision: 'int8',
    bytes: {
      encoder: encodeOnnx(
        quantizeModel(graphs.encoder, targets.encoder, options.mode, ranges.encoder),
      ),
      policy: encodeOnnx(quantizeModel(graphs.policy, targets.policy, options.mode, ranges.policy)),
    },
    details: {
      mode: options.mode,
      method: options.mode === 'static' ? options.method : null,
      excluded,
      quantized_nodes: { encoder: targets.encoder.length, policy: targets.policy.length },
    },
    ranges,
  };
}

async function buildFp16(
  pkg: ModelPackage,
  graphs: Readonly<Record<GraphRole, ModelProto>>,
  samples: readonly PreparedSample[],
  options: CompressOptions,
): Promise<Built> {
  const progress = options.progress;
  let keepOps: string[] = [...DEFAULT_FP16_KEEP_OPS];
  let keepNodes: string[] = [];
  if (options.exclude !== undefined) {
    const ex = options.exclude.filter((e) => e !== 'none');
    checkExclusions(graphs, ex, FP16_KNOWN_OPS);
    const names = new Set(ROLES.flatMap((r) => graphOf(graphs[r]).node.map((n) => n.name)));
    keepNodes = ex.filter((e) => names.has(e));
    keepOps = ex.filter((e) => !names.has(e));
  }
  const fp16Options = { keepOps: new Set(keepOps), keepNodes: new Set(keepNodes) };
  const converted = {
    encoder: convertToFloat16(graphs.encoder, fp16Options, 'graphs.encoder'),
    policy: convertToFloat16(graphs.policy, fp16Options, 'graphs.policy'),
  };
  const fp32Nodes = {
    encoder: converted.encoder.stats.fp32_nodes,
    policy: converted.policy.stats.fp32_nodes,
  };
  progress(
    `converting to float16: ${converted.encoder.stats.fp16_nodes} encoder and ${converted.policy.stats.fp16_nodes} policy nodes; kept in float32: ${[...fp32Nodes.encoder, ...fp32Nodes.policy].join(', ') || 'none'}`,
  );
  const peaks = await activationPeaks(pkg, graphs, samples, options.batchSize, progress);
  // One set over both graphs (not per graph as in the flow family): a tensor name that a float32
  // node computes in either graph is not reported as overflowing.
  const fp32Tensors = new Set(ROLES.flatMap((r) => nodeOutputs(graphs[r], fp32Nodes[r])));
  const over = ROLES.flatMap((r) => overFp16Max(peaks[r], fp32Tensors));
  return {
    precision: 'fp16',
    bytes: {
      encoder: encodeOnnx(converted.encoder.model),
      policy: encodeOnnx(converted.policy.model),
    },
    emulated: {
      encoder: encodeOnnx(emulateFloat16(converted.encoder.model, 'graphs.encoder')),
      policy: encodeOnnx(emulateFloat16(converted.policy.model, 'graphs.policy')),
    },
    details: {
      kept_fp32: { ops: keepOps, nodes: fp32Nodes },
      converted: byRole(ROLES, (r) => convertedStats(converted[r].stats)),
      activations: {
        max_abs: byRole(ROLES, (r) => largestPeak(peaks[r])),
        over_fp16_max: over,
      },
    },
  };
}

/**
 * Compress a model package and add the variant to it: INT8 (`static` QDQ calibrated on the
 * calibration set, or `dynamic`) or FP16 (for GPU providers; the calibration set checks that no
 * activation overflows float16). The variant is validated against fp32 on the CPU provider.
 * Everything is written to temporary files first; the package's files and manifest change only
 * once all steps succeeded.
 */
export async function compressPackage(options: CompressOptions): Promise<CompressionReport> {
  const pkg = await loadModelPackage(options.model);
  const fp32 = selectVariant(pkg, 'fp32');
  const samples = await prepareSamples(pkg, await readCalibrationSet(options.calibration));
  const graphs = {
    encoder: await loadOnnx(fp32.paths.encoder, 'manifest.variants.fp32.files.encoder'),
    policy: await loadOnnx(fp32.paths.policy, 'manifest.variants.fp32.files.policy'),
  };
  const mode = options.mode;
  const built =
    mode === 'fp16'
      ? await buildFp16(pkg, graphs, samples, options)
      : await buildInt8(pkg, graphs, samples, { ...options, mode });
  return addCompressedVariant({
    dir: pkg.dir,
    roles: ROLES,
    fp32Files: fp32.files,
    precision: built.precision,
    bytes: built.bytes,
    options,
    scratchPrefix: 'vla-compress-',
    calibrated:
      built.precision === 'int8' && options.mode === 'static'
        ? { model: pkg.manifest.name, frames: samples.length, ranges: built.ranges }
        : undefined,
    markdown: reportMarkdown,
    validate: async (variant, work): Promise<CompressionReport> => {
      const m = await measure(
        pkg,
        variant,
        built.bytes,
        options,
        work,
        built.precision === 'fp16' ? built.emulated : undefined,
      );
      const calibration = { dir: options.calibration, frames: samples.length };
      const head = { format: 'vla-node/compression-report@1', variant: variant.name } as const;
      return built.precision === 'fp16'
        ? {
            ...head,
            ...FP16_KIND,
            calibration,
            ...built.details,
            emulated_action_error: emulatedActionError(m.emulated),
            ...validationSections(
              'fp16',
              pkg,
              m,
              options,
              fp16Reasons(built.details.activations.over_fp16_max, m.emulated, options),
            ),
          }
        : {
            ...head,
            precision: 'int8',
            mode: built.details.mode,
            method: built.details.method,
            calibration,
            excluded: built.details.excluded,
            quantized_nodes: built.details.quantized_nodes,
            ...validationSections('int8', pkg, m, options, []),
          };
    },
  });
}
