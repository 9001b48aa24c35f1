/**
 * Measuring a compressed variant against fp32: action error on held-out frames, latency and
 * profiled operators, the closed loop (by the evaluator given), and the report sections they fill.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  selectVariant,
  type GraphRole,
  type ModelPackage,
  type Variant,
} from '../model/manifest.js';
import { prepareSamples, type PreparedSample } from './calibration.js';
import { GraphRunner } from './runner.js';
import { GRAPH_ROLES as ROLES } from '../model/manifest.js';
import { byRole } from '../util/roles.js';
import { ActionErrorSum, type ActionError } from './action-error.js';
import { round } from '../util/stats.js';
import type { CompressOptions, CompressedPrecision } from './options.js';
import {
  cpuName,
  reportSections,
  runClosedLoop,
  writeScratchPackage,
  type CommonMeasurement,
} from './validation.js';
import { type SimStageMs, type StageMs, type ValidationSections } from './report.js';

/** Kernel time per operator type (µs) over `runs` profiled passes, slowest first. */
async function profileOps(
  pkg: ModelPackage,
  encoder: string,
  policy: string,
  samples: readonly PreparedSample[],
  runs: number,
  dir: string,
): Promise<Record<string, number>> {
  const prefix = join(dir, `profile-${Math.random().toString(36).slice(2)}`);
  const runner = await GraphRunner.create(pkg, encoder, policy, {
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  try {
    for (let i = 0; i < runs; i++) {
      const s = samples[i % samples.length];
      if (s !== undefined) await runner.run(s);
    }
    runner.encoder.endProfiling();
    runner.policy.endProfiling();
  } finally {
    await runner.release();
  }
  const totals = new Map<string, number>();
  const base = prefix.slice(dir.length + 1);
  for (const f of await readdir(dir)) {
    if (!f.startsWith(base)) continue;
    const events = JSON.parse(await readFile(join(dir, f), 'utf8')) as {
      cat?: string;
      name?: string;
      dur?: number;
      args?: { op_name?: string };
    }[];
    for (const e of events) {
      if (e.cat !== 'Node' || !(e.name ?? '').endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? '?';
      totals.set(op, (totals.get(op) ?? 0) + (e.dur ?? 0));
    }
  }
  return Object.fromEntries([...totals].sort((a, b) => b[1] - a[1]).slice(0, 8));
}

/** Figures of the new variant against fp32, measured on the CPU provider. */
export interface Measurement extends CommonMeasurement<SimStageMs> {
  /** The action error of the float16 emulation (FP16 only). */
  readonly emulated?: ActionError;
  readonly latency: Readonly<Record<'fp32' | 'variant', StageMs>>;
  readonly profiles: Readonly<Record<'fp32' | 'variant', Record<string, number>>>;
}

async function actionError(
  pkg: ModelPackage,
  reference: GraphRunner,
  candidate: GraphRunner,
  samples: readonly PreparedSample[],
): Promise<ActionError> {
  const error = new ActionErrorSum(pkg.manifest.chunk.action_dim);
  for (const s of samples)
    error.add((await reference.run(s)).actions, (await candidate.run(s)).actions);
  return error.result();
}

/**
 * Validate a variant in a scratch package holding fp32 and the new variant, so closed-loop
 * validation runs the real pipeline: action error on held-out frames (also of `emulated`, when
 * given), latency, profiled operators, closed-loop success.
 */
export async function measure(
  pkg: ModelPackage,
  variant: Variant,
  bytes: Readonly<Record<GraphRole, Uint8Array>>,
  options: CompressOptions,
  work: string,
  emulated?: Readonly<Record<GraphRole, Uint8Array>>,
): Promise<Measurement> {
  const progress = options.progress;
  const fp32 = selectVariant(pkg, 'fp32');
  const scratch = join(work, 'package');
  await writeScratchPackage(scratch, ROLES, { source: pkg, fp32, variant, bytes });
  const paths = byRole(ROLES, (r) => join(scratch, variant.files[r].path));

  const heldOut = await prepareSamples(
    pkg,
    options.evaluator.heldOut(options.heldOut, (options.seed + 0x5eed) >>> 0),
  );
  progress(`action error on ${heldOut.length} held-out frames...`);
  const reference = await GraphRunner.create(pkg, fp32.paths.encoder, fp32.paths.policy);
  const candidate = await GraphRunner.create(pkg, paths.encoder, paths.policy).catch(
    async (e: unknown) => {
      await reference.release();
      throw e;
    },
  );
  let error: ActionError;
  let emulatedError: ActionError | undefined;
  let latency: Measurement['latency'];
  try {
    error = await actionError(pkg, reference, candidate, heldOut);
    if (emulated !== undefined) {
      const runner = await GraphRunner.create(pkg, emulated.encoder, emulated.policy);
      try {
        emulatedError = await actionError(pkg, reference, runner, heldOut);
      } finally {
        await runner.release();
      }
    }
    progress(`latency: ${options.latencyRounds} rounds per variant, one thread...`);
    await reference.latency(heldOut, 20);
    await candidate.latency(heldOut, 20);
    // Interleave the two variants so background load hits both alike.
    const half = Math.max(1, Math.floor(options.latencyRounds / 2));
    const f1 = await reference.latency(heldOut, half);
    const q1 = await candidate.latency(heldOut, half);
    const q2 = await candidate.latency(heldOut, half);
    const f2 = await reference.latency(heldOut, half);
    latency = {
      fp32: { encoder: (f1.encoder + f2.encoder) / 2, policy: (f1.policy + f2.policy) / 2 },
      variant: { encoder: (q1.encoder + q2.encoder) / 2, policy: (q1.policy + q2.policy) / 2 },
    };
  } finally {
    await Promise.all([reference.release(), candidate.release()]);
  }
  const profiles = {
    fp32: await profileOps(pkg, fp32.paths.encoder, fp32.paths.policy, heldOut, 50, work),
    variant: await profileOps(pkg, paths.encoder, paths.policy, heldOut, 50, work),
  };
  const closed = {
    fp32: await runClosedLoop(scratch, 'fp32', options),
    variant: await runClosedLoop(scratch, variant.precision, options),
  };
  return {
    frames: heldOut.length,
    ...error,
    ...(emulatedError === undefined ? {} : { emulated: emulatedError }),
    latency,
    profiles,
    closed,
    size: {
      fp32:
        (await readFile(fp32.paths.encoder)).length + (await readFile(fp32.paths.policy)).length,
      variant: bytes.encoder.length + bytes.policy.length,
    },
  };
}

/** The report sections common to every precision, keyed by `precision`, and the gate. */
export function validationSections<P extends CompressedPrecision>(
  precision: P,
  pkg: ModelPackage,
  m: Measurement,
  options: CompressOptions,
  extraReasons: readonly string[],
): ValidationSections<P> {
  const lat = m.latency;
  const totalRatio =
    (lat.variant.encoder + lat.variant.policy) / (lat.fp32.encoder + lat.fp32.policy);
  const p50 = (s: StageMs): StageMs => ({
    encoder: round(s.encoder, 4),
    policy: round(s.policy, 4),
  });
  const sections = reportSections(precision, m, options, extraReasons, {
    names: pkg.manifest.action.names,
    stageKey: 'sim_stage_p50_ms',
    latency: {
      cpu: cpuName(),
      threads: 1,
      fp32_p50_ms: p50(lat.fp32),
      [`${precision}_p50_ms`]: p50(lat.variant),
      ratio: {
        encoder: round(lat.variant.encoder / lat.fp32.encoder, 3),
        policy: round(lat.variant.policy / lat.fp32.policy, 3),
        total: round(totalRatio, 3),
      },
      [`${precision}_top_ops_us`]: m.profiles.variant,
      fp32_top_ops_us: m.profiles.fp32,
    },
  });
  // Computed keys (`${precision}_success_rate`) are typed by ValidationSections<P>.
  return sections as unknown as ValidationSections<P>;
}
