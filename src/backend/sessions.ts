/**
 * ONNX Runtime sessions: which execution providers this installation has, the session options of
 * each, creating and checking sessions against the manifest, and running them with errors that
 * name the graph.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BackendError, ModelError } from '../errors.js';
import type { ExecutionProvider, GraphOptimizationLevel } from '../config/generated.js';
export type { ExecutionProvider, GraphOptimizationLevel } from '../config/generated.js';
import {
  type GraphRole,
  type GraphSpec,
  type ModelPackage,
  type TensorSpec,
} from '../model/manifest.js';

export interface BackendOptions {
  /** Tried in order; the first that creates both sessions wins, the others are logged with why. */
  readonly executionProviders: readonly ExecutionProvider[];
  /** 0 = ONNX Runtime's default. */
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  readonly graphOptimization: GraphOptimizationLevel;
  /** Where TensorRT engines are cached; "" = `<model>/.trt-cache`. */
  readonly tensorrtCachePath: string;
  /** Human log lines (fallbacks, engine builds). */
  readonly log?: (message: string) => void;
  /** Let ONNX Runtime send its telemetry (`backend.telemetry`); off when absent. */
  readonly telemetry?: boolean;
}

const require = createRequire(import.meta.url);
/** Folder of onnxruntime-node's native binaries, where optional GPU provider libraries are installed. */
function ortBinaryDir(): string {
  return join(
    dirname(require.resolve('onnxruntime-node')),
    '..',
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
}

/** Which providers this machine can try, and why the others cannot run. */
export function providerAvailability(): {
  provider: ExecutionProvider;
  available: boolean;
  reason: string;
}[] {
  const dir = ortBinaryDir();
  const lib = (p: string): string => join(dir, `libonnxruntime_providers_${p}.so`);
  const gpuHint =
    'install the GPU binaries: `node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12` (needs CUDA 12 and cuDNN 9)';
  return [
    ['tensorrt', lib('tensorrt')],
    ['cuda', lib('cuda')],
  ]
    .map(([p, file]) => {
      const present = process.platform === 'linux' && existsSync(file as string);
      return {
        provider: p as ExecutionProvider,
        available: present,
        reason: present
          ? `found ${file as string}`
          : `${file as string} is not installed; ${gpuHint}`,
      };
    })
    .concat([{ provider: 'cpu', available: true, reason: 'built into onnxruntime-node' }]);
}

/**
 * Check a session's inputs/outputs against the manifest: names in order, dtypes, ranks, fixed dims.
 * `role` is the graph's key under the manifest's `graphs` (any family's: `policy`, `decoder`, …).
 */
export function checkGraph(role: string, session: ort.InferenceSession, spec: GraphSpec): void {
  const compare = (
    kind: 'inputs' | 'outputs',
    actual: readonly ort.InferenceSession.ValueMetadata[],
    expected: readonly TensorSpec[],
  ): void => {
    if (actual.length !== expected.length) {
      throw new ModelError(
        'MODEL_MISMATCH',
        `Expected the ${role} graph to have ${expected.length} ${kind} (${expected.map((t) => t.name).join(', ')}) as the manifest says, but the ONNX file has ${actual.length} (${actual.map((t) => t.name).join(', ')})`,
        { field: `manifest.graphs.${role}.${kind}` },
      );
    }
    expected.forEach((e, i) => {
      const a = actual[i];
      const field = `manifest.graphs.${role}.${kind}[${i}]`;
      if (a === undefined || a.name !== e.name) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${i} to be named ${JSON.stringify(e.name)} but the ONNX file names it ${JSON.stringify(a?.name)}`,
          { field: `${field}.name` },
        );
      }
      if (!a.isTensor)
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to be a tensor`,
          { field },
        );
      if (a.type !== e.dtype) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to be ${e.dtype} but the ONNX file says ${a.type}`,
          { field: `${field}.dtype` },
        );
      }
      if (a.shape.length === 0) {
        // A graph that declares no shape would be fed and read by the manifest's sizes unchecked:
        // its real outputs only show as out-of-bounds reads in the pruner.
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to have shape [${e.shape.join(', ')}] but the ONNX file declares no shape for it: export the graph with shapes (named dimensions for the open ones)`,
          { field: `${field}.shape` },
        );
      }
      if (a.shape.length !== e.shape.length) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to have shape [${e.shape.join(', ')}] but the ONNX file has [${a.shape.join(', ')}]`,
          { field: `${field}.shape` },
        );
      }
      e.shape.forEach((dim, j) => {
        const g = a.shape[j];
        if (j === 0) {
          // The batch: a graph that leaves it open runs one observation as well as several, but a
          // manifest that promises a batch needs an open one, and 1 needs 1 or an open one.
          const promised = typeof dim === 'string';
          if (typeof g === 'number' && (promised || g !== 1)) {
            throw new ModelError(
              'MODEL_MISMATCH',
              promised
                ? `Expected ${role} ${kind} ${e.name} to have an open batch dimension (the manifest names it ${JSON.stringify(dim)}) but the ONNX file fixes it to ${g}: declare 1 in the manifest or export the graph with a dynamic batch axis`
                : `Expected ${role} ${kind} ${e.name} dimension 0 (the batch) to be 1 or open but the ONNX file fixes it to ${g}`,
              { field: `${field}.shape[0]` },
            );
          }
          return;
        }
        if (typeof g !== 'number') return; // a dimension the graph leaves open
        if (typeof dim === 'string' || dim !== g) {
          throw new ModelError(
            'MODEL_MISMATCH',
            `Expected ${role} ${kind} ${e.name} dimension ${j} to be ${String(dim)} but the ONNX file fixes it to ${g}`,
            { field: `${field}.shape[${j}]` },
          );
        }
      });
    });
  };
  compare('inputs', session.inputMetadata, spec.inputs);
  compare('outputs', session.outputMetadata, spec.outputs);
}

/** The session options of `provider` for `pkg`: what the backend creates its sessions with. */
export function sessionOptionsFor(
  provider: ExecutionProvider,
  pkg: ModelPackage,
  options: BackendOptions,
): ort.InferenceSession.SessionOptions {
  if (provider === 'tensorrt') {
    // The TensorRT provider reads its engine-cache settings from the environment.
    process.env.ORT_TENSORRT_ENGINE_CACHE_ENABLE ??= '1';
    process.env.ORT_TENSORRT_CACHE_PATH ??=
      options.tensorrtCachePath === '' ? join(pkg.dir, '.trt-cache') : options.tensorrtCachePath;
  }
  return {
    executionProviders: provider === 'cpu' ? ['cpu'] : [provider, 'cpu'],
    graphOptimizationLevel: options.graphOptimization,
    ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.interOpThreads > 0 ? { interOpNumThreads: options.interOpThreads } : {}),
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
}

async function createSession(
  path: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, options);
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    if (/protobuf|parse|load model|invalid model|Deserialize/i.test(message)) {
      throw new ModelError(
        'MODEL_FILE',
        `Expected a valid ONNX model at ${path} but ONNX Runtime could not load it: ${message}`,
        { field: 'model.path', cause },
      );
    }
    throw cause;
  }
}

/** Both sessions, or neither: if one fails, the other is released before the error propagates. */
export async function createSessions(
  paths: Readonly<Record<GraphRole, string>>,
  options: ort.InferenceSession.SessionOptions,
): Promise<[ort.InferenceSession, ort.InferenceSession]> {
  const [encoder, policy] = await Promise.allSettled([
    createSession(paths.encoder, options),
    createSession(paths.policy, options),
  ]);
  if (encoder.status === 'fulfilled' && policy.status === 'fulfilled') {
    return [encoder.value, policy.value];
  }
  for (const s of [encoder, policy]) if (s.status === 'fulfilled') await s.value.release();
  throw encoder.status === 'rejected' ? encoder.reason : (policy as PromiseRejectedResult).reason;
}

export async function run(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  role: GraphRole,
  fetches?: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await (fetches === undefined ? session.run(feeds) : session.run(feeds, fetches));
  } catch (cause) {
    throw new BackendError(
      `The ${role} graph failed to run: ${cause instanceof Error ? cause.message : String(cause)}`,
      { field: role, cause },
    );
  }
}

export async function withProgress<T>(
  what: string | undefined,
  log: (m: string) => void,
  work: () => Promise<T>,
): Promise<T> {
  if (what === undefined) return work();
  const started = Date.now();
  log(what);
  const timer = setInterval(() => {
    log(`${what}: ${Math.round((Date.now() - started) / 1000)} s`);
  }, 5000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
