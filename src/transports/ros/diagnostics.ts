/**
 * The node's `/diagnostics` status: its level and message from the node's state (unconfigured,
 * loading, holding, waiting for input, running, deadline misses, failures), and its key values.
 */
import type { LatencySummary } from '../../runtime/latency.js';
import type { CameraCounts, CameraHold } from './cameras.js';
import { INPUT_PROBLEMS, type InputProblemKind } from './input.js';
import {
  DIAGNOSTIC_LEVEL,
  type DiagnosticLevel,
  type RosDiagnosticArray,
  type RosKeyValue,
} from './messages.js';

/** The decoding of an autoregressive package as the diagnostics show it. */
export interface NodeDecoding {
  /** `runtime.decoding`: greedy, jacobi or speculative. */
  readonly strategy: string;
  /** Tokens fed per decoder call (`runtime.decoding_window`; 0: the chunk's whole token count). */
  readonly window: number;
  /** Totals since the model was loaded (warm-up excluded). */
  readonly totals: {
    readonly chunks: number;
    readonly tokens: number;
    readonly decoderCalls: number;
    readonly guessesFed: number;
    readonly guessesAccepted: number;
  };
}

/** Counters the node keeps, shown in diagnostics. */
export interface RosNodeStats {
  readonly framesReceived: number;
  readonly framesDropped: number;
  readonly framesStale: number;
  readonly chunksPublished: number;
  readonly chunksRejected: number;
  readonly inferenceErrors: number;
  readonly deadlineMisses: number;
  readonly consecutiveMisses: number;
  readonly safeHoldSteps: number;
  readonly lastProcessingMs: number;
  readonly keptTokenRatio: number;
}

/** What the node's status is computed from, read when it is published. */
export interface NodeCondition {
  /** rcl's node name (after a `__node` remap). */
  readonly name: string;
  readonly hardwareId: string;
  /** The node's ROS time, ns (the /clock timeline under use_sim_time). */
  readonly stampNs: bigint;
  /** The lifecycle state label. */
  readonly state: string;
  readonly provider: string | undefined;
  readonly latency: LatencySummary | undefined;
  readonly stats: RosNodeStats;
  readonly inSafeHold: boolean;
  readonly dropped: (kind: InputProblemKind) => number;
  readonly loadError: string | undefined;
  readonly configured: boolean;
  readonly ready: boolean;
  readonly active: boolean;
  /** The control loop has sent its first command. */
  readonly started: boolean;
  readonly lastError: string | undefined;
  /** The inputs that have not come yet ({@link missingInputs}). */
  readonly missingInputs: readonly string[];
  readonly processingWarnMs: number;
  readonly errorConsecutiveMisses: number;
  /** Per subscribed camera, its counters (absent before the first configure). */
  readonly cameras?: ReadonlyMap<string, Readonly<CameraCounts>>;
  /** The camera whose frames trigger inferences. */
  readonly triggerCamera?: string;
  /** Why the last inference wanted was held (a camera of a several-camera model without a usable frame). */
  readonly hold?: CameraHold | undefined;
  /** How the chunks are decoded (an autoregressive package), absent for the other families. */
  readonly decoding?: NodeDecoding | undefined;
}

/**
 * The inputs an inference needs that have not come yet, named as the status names them; none
 * once an inference can start (the control loop counts deadline misses from then on).
 */
export function missingInputs(have: {
  readonly instruction: boolean;
  readonly jointStates: boolean;
  readonly frames: boolean;
}): string[] {
  return [
    ...(have.instruction ? [] : ['an instruction']),
    ...(have.jointStates ? [] : ['joint states']),
    ...(have.frames ? [] : ['camera frames']),
  ];
}

/** The level and message of the node's status. */
export function assess(c: NodeCondition): { level: DiagnosticLevel; text: string } {
  if (c.loadError !== undefined)
    return { level: DIAGNOSTIC_LEVEL.error, text: `model did not load: ${c.loadError}` };
  if (!c.configured) return { level: DIAGNOSTIC_LEVEL.ok, text: 'unconfigured' };
  if (!c.ready) return { level: DIAGNOSTIC_LEVEL.warn, text: 'loading and warming up the model' };
  if (!c.active) return { level: DIAGNOSTIC_LEVEL.ok, text: 'inactive (holding)' };
  const s = c.stats;
  // Why no chunk comes, when a camera holds the inferences: the operator sees which one.
  const holding = c.hold === undefined ? '' : `; holding inference: ${c.hold.reason}`;
  // Before the first chunk nothing is sent to the robot; a missing input is what to fix then,
  // however many control periods have passed.
  const waiting = c.started ? [] : c.missingInputs;
  if (waiting.length > 0)
    return { level: DIAGNOSTIC_LEVEL.warn, text: `waiting for ${waiting.join(', ')}` };
  if (s.consecutiveMisses >= c.errorConsecutiveMisses)
    return {
      level: DIAGNOSTIC_LEVEL.error,
      text: c.started
        ? `safe hold: ${s.consecutiveMisses} consecutive deadline misses (no chunk covers the control steps${holding})`
        : `no first chunk: ${s.consecutiveMisses} consecutive deadline misses with every input received (nothing sent to the robot yet${holding})`,
    };
  if (c.lastError !== undefined)
    return { level: DIAGNOSTIC_LEVEL.error, text: `inference failed: ${c.lastError}` };
  if (!c.started)
    return c.hold !== undefined
      ? { level: DIAGNOSTIC_LEVEL.warn, text: `holding inference: ${c.hold.reason}` }
      : { level: DIAGNOSTIC_LEVEL.warn, text: 'waiting for the first chunk' };
  if (s.consecutiveMisses > 0)
    return {
      level: DIAGNOSTIC_LEVEL.warn,
      text: `${s.consecutiveMisses} deadline misses in a row${holding === '' ? '' : ` (${holding.slice(2)})`}`,
    };
  if (c.hold !== undefined)
    return { level: DIAGNOSTIC_LEVEL.warn, text: `holding inference: ${c.hold.reason}` };
  if (s.lastProcessingMs > c.processingWarnMs)
    return {
      level: DIAGNOSTIC_LEVEL.warn,
      text: `processing time ${s.lastProcessingMs.toFixed(1)} ms over ${c.processingWarnMs.toFixed(1)} ms`,
    };
  return { level: DIAGNOSTIC_LEVEL.ok, text: 'running' };
}

/** The DiagnosticArray the node publishes: one status, `<node name>: policy`. */
export function nodeDiagnostics(c: NodeCondition): RosDiagnosticArray {
  const { level, text } = assess(c);
  const s = c.stats;
  const latency = c.latency;
  const values: RosKeyValue[] = [
    { key: 'lifecycle state', value: c.state },
    { key: 'provider', value: c.provider ?? 'none' },
    { key: 'latency p50 ms', value: String(latency?.p50 ?? 0) },
    { key: 'latency p95 ms', value: String(latency?.p95 ?? 0) },
    { key: 'latency p99 ms', value: String(latency?.p99 ?? 0) },
    { key: 'processing time ms', value: s.lastProcessingMs.toFixed(3) },
    { key: 'deadline misses', value: String(s.deadlineMisses) },
    { key: 'consecutive deadline misses', value: String(s.consecutiveMisses) },
    { key: 'safe hold', value: String(c.inSafeHold) },
    { key: 'safe hold steps', value: String(s.safeHoldSteps) },
    { key: 'kept token ratio', value: s.keptTokenRatio.toFixed(3) },
    { key: 'frames received', value: String(s.framesReceived) },
    { key: 'frames dropped', value: String(s.framesDropped) },
    { key: 'frames stale', value: String(s.framesStale) },
    { key: 'chunks published', value: String(s.chunksPublished) },
    { key: 'chunks rejected', value: String(s.chunksRejected) },
    { key: 'inference errors', value: String(s.inferenceErrors) },
    ...INPUT_PROBLEMS.map((kind) => ({ key: `dropped ${kind}`, value: String(c.dropped(kind)) })),
    ...cameraValues(c),
    ...decodingValues(c.decoding),
  ];
  return {
    // ROS time, so that with use_sim_time the status is stamped on the /clock timeline.
    header: { stamp: rosTimeOf(c.stampNs), frame_id: '' },
    status: [
      {
        level,
        // rcl's name: launch's node_name remaps it, and two arms must not share a status.
        name: `${c.name}: policy`,
        message: text,
        hardware_id: c.hardwareId,
        values,
      },
    ],
  };
}

/** One key per camera and counter, so a monitor can follow each camera on its own. */
function cameraValues(c: NodeCondition): RosKeyValue[] {
  if (c.cameras === undefined) return [];
  const names = [...c.cameras.keys()];
  const values: RosKeyValue[] = [
    {
      key: 'cameras',
      value: names.map((n) => (n === c.triggerCamera ? `${n} (trigger)` : n)).join(', '),
    },
  ];
  for (const [name, n] of c.cameras) {
    values.push(
      { key: `camera ${name} frames received`, value: String(n.received) },
      { key: `camera ${name} frames dropped (bad)`, value: String(n.bad) },
      { key: `camera ${name} inferences held (no frame)`, value: String(n.heldMissing) },
      { key: `camera ${name} inferences held (stale)`, value: String(n.heldStale) },
    );
  }
  return values;
}

/**
 * The decoding strategy and what a chunk costs with it (means since the model was loaded), so an
 * operator sees whether Jacobi or speculative decoding saves sequential decoder calls on this robot.
 */
function decodingValues(d: NodeDecoding | undefined): RosKeyValue[] {
  if (d === undefined) return [];
  const t = d.totals;
  const perChunk = (n: number): string => (t.chunks === 0 ? '0' : (n / t.chunks).toFixed(2));
  return [
    { key: 'decoding', value: d.strategy },
    { key: 'decoding window', value: d.window === 0 ? 'whole chunk' : String(d.window) },
    { key: 'chunks decoded', value: String(t.chunks) },
    { key: 'decoder calls per chunk', value: perChunk(t.decoderCalls) },
    { key: 'action tokens per chunk', value: perChunk(t.tokens) },
    {
      key: 'guesses accepted',
      value: t.guessesFed === 0 ? '0' : (t.guessesAccepted / t.guessesFed).toFixed(3),
    },
  ];
}

function rosTimeOf(ns: bigint): { sec: number; nanosec: number } {
  return { sec: Number(ns / 1_000_000_000n), nanosec: Number(ns % 1_000_000_000n) };
}
