/**
 * Running a flow package for compression: the calibration inputs of every graph captured from
 * FlowPolicy's own calls (encoder on each camera, instruction, prefix, the expert at each
 * denoising time), activation ranges and peaks from instrumented copies of the graphs on those
 * inputs, and the action error and stage latency of a variant against fp32 through FlowPolicy.
 */
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';
import { BackendError } from '../errors.js';
import { FlowPolicy, type FlowPolicyOptions, type FlowTimings } from '../flow/policy.js';
import { FLOW_ROLES, type FlowPackage, type FlowRole } from '../model/flow-manifest.js';
import type { Precision } from '../model/manifest.js';
import { episodeSeed } from '../util/rng.js';
import { median, round } from '../util/stats.js';
import { encodeOnnx, withExtraOutputs, type ModelProto } from '../util/onnx-graph.js';
import type { FlowSample } from './calibration.js';
import type { FlowStageMs } from './flow-report.js';
import {
  collectPeaks,
  collectRanges,
  type CalibrationMethod,
  type InstrumentedRun,
} from './runner.js';
import { byRole } from '../util/roles.js';
import type { Range } from './quantize.js';
import { ActionErrorSum, type ActionError } from './action-error.js';

/** Seed of the noise of calibration observation `i` (held-out observations use another base). */
export function flowNoiseSeed(base: number, i: number): number {
  return episodeSeed(base, i);
}

/** FlowPolicy options for compression runs: all tokens, one thread, exact caches only. */
function policyOptions(
  precision: Precision,
  instructionCache: boolean,
  onGraphRun?: FlowPolicyOptions['onGraphRun'],
): FlowPolicyOptions {
  return {
    precision,
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
    caches: { instruction: instructionCache, visualThreshold: null, visualCameras: [] },
    intraOpThreads: 1,
    ...(onGraphRun === undefined ? {} : { onGraphRun }),
  };
}

type Feeds = Record<string, ort.Tensor>;

function copyFeeds(feeds: Readonly<Record<string, ort.Tensor>>): Feeds {
  const out: Feeds = {};
  for (const [name, t] of Object.entries(feeds)) {
    const data = t.data;
    out[name] =
      data instanceof BigInt64Array
        ? new ort.Tensor('int64', data.slice(), t.dims)
        : new ort.Tensor('float32', (data as Float32Array).slice(), t.dims);
  }
  return out;
}

/** What calibration saw: graph calls per role and the expert's flow times. */
export interface CaptureStats {
  readonly runs: Record<FlowRole, number>;
  readonly times: number[];
}

/**
 * Run FlowPolicy fp32 over `samples` (all visual tokens, the instruction graph on every frame,
 * the manifest's steps from noise seeded per observation) and hand each graph call's inputs, as
 * the runtime fed them, to instrumented sessions of the same graphs with the activations wanted
 * as extra outputs; `consume` sees those outputs by role.
 */
export async function forEachGraphRun(
  pkg: FlowPackage,
  instrumented: Readonly<Record<FlowRole, Uint8Array>>,
  samples: readonly FlowSample[],
  seed: number,
  consume: (role: FlowRole, outputs: ort.InferenceSession.OnnxValueMapType) => void,
  progress: (done: number) => void,
): Promise<CaptureStats> {
  const captured: [FlowRole, Feeds][] = [];
  const policy = await FlowPolicy.create(
    pkg,
    policyOptions('fp32', false, (role, feeds) => {
      captured.push([role, copyFeeds(feeds)]);
    }),
  );
  const sessions: Partial<Record<FlowRole, ort.InferenceSession>> = {};
  const runs = { encoder: 0, instruction: 0, prefix: 0, expert: 0 };
  const times = new Set<number>();
  const timeInput = pkg.manifest.graphs.expert.inputs[1]?.name ?? '';
  try {
    for (const role of FLOW_ROLES) sessions[role] = await open(instrumented[role], role);
    for (const [i, s] of samples.entries()) {
      captured.length = 0;
      await policy.infer({ ...s, seed: flowNoiseSeed(seed, i) });
      for (const [role, feeds] of captured) {
        const session = sessions[role] as ort.InferenceSession;
        if (role === 'expert') {
          const t = feeds[timeInput]?.data as Float32Array | undefined;
          if (t !== undefined) times.add(round(t[0] as number, 4));
        }
        runs[role]++;
        consume(role, await session.run(feeds));
      }
      progress(i + 1);
    }
  } finally {
    await Promise.all([policy.release(), ...Object.values(sessions).map((s) => s.release())]);
  }
  return { runs, times: [...times].sort((a, b) => a - b) };
}

async function open(bytes: Uint8Array, role: FlowRole): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
    });
  } catch (cause) {
    throw new BackendError(
      `Expected ONNX Runtime to load the instrumented ${role} graph but it failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { field: `graphs.${role}`, cause },
    );
  }
}

/** The graphs with `names[role]` added as outputs, encoded. */
function instrument(
  graphs: Readonly<Record<FlowRole, ModelProto>>,
  names: Readonly<Record<FlowRole, readonly string[]>>,
): Record<FlowRole, Uint8Array> {
  return byRole(FLOW_ROLES, (r) => encodeOnnx(withExtraOutputs(graphs[r], names[r])));
}

/** FlowPolicy fp32 over `samples`, each graph call repeated on the instrumented graphs. */
function runGraphs(
  pkg: FlowPackage,
  graphs: Readonly<Record<FlowRole, ModelProto>>,
  samples: readonly FlowSample[],
  seed: number,
): InstrumentedRun<FlowRole, CaptureStats> {
  return (names, consume, onFrame) =>
    forEachGraphRun(pkg, instrument(graphs, names), samples, seed, consume, onFrame);
}

/** Activation ranges of `names` per graph over the calibration inputs FlowPolicy fed. */
export async function flowRanges(
  pkg: FlowPackage,
  graphs: Readonly<Record<FlowRole, ModelProto>>,
  names: Readonly<Record<FlowRole, readonly string[]>>,
  samples: readonly FlowSample[],
  method: CalibrationMethod,
  seed: number,
  /** A progress line every this many frames. */
  every: number,
  progress: (line: string) => void,
): Promise<{ ranges: Record<FlowRole, Map<string, Range>>; stats: CaptureStats }> {
  const run = runGraphs(pkg, graphs, samples, seed);
  const frames = { total: samples.length, every, progress };
  const { ranges, result } = await collectRanges(FLOW_ROLES, names, run, method, frames);
  return { ranges, stats: result };
}

/** The largest finite |value| of each of `names` per graph over the calibration inputs. */
export async function flowPeaks(
  pkg: FlowPackage,
  graphs: Readonly<Record<FlowRole, ModelProto>>,
  names: Readonly<Record<FlowRole, readonly string[]>>,
  samples: readonly FlowSample[],
  seed: number,
  /** A progress line every this many frames. */
  every: number,
  progress: (line: string) => void,
): Promise<{ peaks: Record<FlowRole, Map<string, number>>; stats: CaptureStats }> {
  const run = runGraphs(pkg, graphs, samples, seed);
  const frames = { total: samples.length, every, progress };
  const { peaks, result } = await collectPeaks(FLOW_ROLES, names, run, frames);
  return { peaks, stats: result };
}

/**
 * Mean and max absolute difference per action dimension between FlowPolicy at fp32 and at
 * `precision` (clamped chunks, manifest units), each observation denoised from the same seeded
 * noise by both.
 */
export async function flowActionError(
  reference: FlowPackage,
  candidate: FlowPackage,
  precision: Precision,
  samples: readonly FlowSample[],
  seed: number,
): Promise<ActionError> {
  const a = reference.manifest.chunk.action_dim;
  const ref = await FlowPolicy.create(reference, policyOptions('fp32', true));
  const cand = await FlowPolicy.create(candidate, policyOptions(precision, true)).catch(
    async (e: unknown) => {
      await ref.release();
      throw e;
    },
  );
  const error = new ActionErrorSum(a);
  try {
    for (const [i, s] of samples.entries()) {
      const request = { ...s, seed: flowNoiseSeed(seed, i) };
      error.add((await ref.infer(request)).actions, (await cand.infer(request)).actions);
    }
  } finally {
    await Promise.all([ref.release(), cand.release()]);
  }
  return error.result();
}

const STAGES = ['encode', 'instruction', 'prefix', 'denoise'] as const;

/**
 * p50 of FlowPolicy's stages (ms, one intra-op thread, the instruction graph on every inference)
 * at fp32 and at `precision`, interleaved so that background load hits both alike.
 */
export async function flowLatency(
  pkg: FlowPackage,
  precision: Precision,
  samples: readonly FlowSample[],
  rounds: number,
): Promise<{ fp32: FlowStageMs; variant: FlowStageMs }> {
  const policies = {
    fp32: await FlowPolicy.create(pkg, policyOptions('fp32', false)),
    variant: await FlowPolicy.create(pkg, policyOptions(precision, false)),
  };
  const timings = { fp32: [] as FlowTimings[], variant: [] as FlowTimings[] };
  const pass = async (which: 'fp32' | 'variant', n: number, keep: boolean): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const s = samples[i % samples.length];
      if (s === undefined) return;
      const r = await policies[which].infer({ ...s, seed: i });
      if (keep) timings[which].push(r.timings);
    }
  };
  try {
    await pass('fp32', 10, false);
    await pass('variant', 10, false);
    const half = Math.max(1, Math.floor(rounds / 2));
    await pass('fp32', half, true);
    await pass('variant', half, true);
    await pass('variant', half, true);
    await pass('fp32', half, true);
  } finally {
    await Promise.all([policies.fp32.release(), policies.variant.release()]);
  }
  const p50 = (list: readonly FlowTimings[]): FlowStageMs => {
    const stage = (s: (typeof STAGES)[number]): number => median(list.map((t) => t[s]));
    // The graphs' stages only: ingest and pruning are the same code for every variant and their
    // thread-pool hops add noise that would swamp the model's share.
    const total = STAGES.reduce((n, s) => n + stage(s), 0);
    return {
      encode: round(stage('encode'), 4),
      instruction: round(stage('instruction'), 4),
      prefix: round(stage('prefix'), 4),
      denoise: round(stage('denoise'), 4),
      total: round(total, 4),
    };
  };
  return { fp32: p50(timings.fp32), variant: p50(timings.variant) };
}
