import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BackendError, InputError, ModelError } from '../errors.js';
import type { GraphRole, GraphSpec, ModelPackage, TensorSpec, Variant } from '../model/manifest.js';

export type ExecutionProvider = 'tensorrt' | 'cuda' | 'cpu';
export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface BackendOptions {
  /** Tried in order; the first that creates both sessions wins, the others are logged with why. */
  readonly executionProviders: readonly ExecutionProvider[];
  /** 0 = ONNX Runtime's default. */
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  readonly graphOptimization: GraphOptimization;
  /** Where TensorRT engines are cached; "" = `<model>/.trt-cache`. */
  readonly tensorrtCachePath: string;
  /** Human log lines (fallbacks, engine builds). */
  readonly log?: (message: string) => void;
}

/** Why a provider was skipped. */
export interface ProviderFallback {
  readonly provider: ExecutionProvider;
  readonly reason: string;
}

/** Visual tokens and saliency of one frame; views into buffers owned by the backend, valid until the next encode. */
export interface EncoderOutput {
  readonly tokens: Float32Array;
  readonly saliency: Float32Array;
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

/** Check a session's inputs/outputs against the manifest: names in order, dtypes, ranks, fixed dims. */
export function checkGraph(role: GraphRole, session: ort.InferenceSession, spec: GraphSpec): void {
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
      if (a.shape.length !== 0 && a.shape.length !== e.shape.length) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to have shape [${e.shape.join(', ')}] but the ONNX file has [${a.shape.join(', ')}]`,
          { field: `${field}.shape` },
        );
      }
      e.shape.forEach((dim, j) => {
        const g = a.shape[j];
        if (j === 0 || typeof g !== 'number') return; // batch, or a dimension the graph leaves open
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

/**
 * The two ONNX Runtime sessions of a model variant (vision encoder and policy) behind typed calls
 * over reused buffers.
 *
 * @example
 * const backend = await OnnxBackend.create(pkg, selectVariant(pkg, 'fp32'), options);
 * const { tokens, saliency } = await backend.encode(pixels);
 */
export class OnnxBackend {
  readonly provider: ExecutionProvider;
  readonly fallbacks: readonly ProviderFallback[];
  readonly variant: Variant;
  readonly #pkg: ModelPackage;
  readonly #encoder: ort.InferenceSession;
  readonly #policy: ort.InferenceSession;
  readonly #pixels: ort.Tensor;
  readonly #pixelData: Float32Array;
  readonly #ids: ort.Tensor;
  readonly #idData: BigInt64Array;
  readonly #state: ort.Tensor;
  readonly #stateData: Float32Array;
  readonly #tokenTensors = new Map<number, { tokens: ort.Tensor; positions: ort.Tensor }>();
  readonly #tokenData: Float32Array;
  readonly #positionData: BigInt64Array;
  readonly #names: {
    encIn: string;
    encTokens: string;
    encSaliency: string;
    pol: [string, string, string, string];
    polOut: string;
  };

  private constructor(
    pkg: ModelPackage,
    variant: Variant,
    provider: ExecutionProvider,
    fallbacks: ProviderFallback[],
    encoder: ort.InferenceSession,
    policy: ort.InferenceSession,
  ) {
    this.#pkg = pkg;
    this.variant = variant;
    this.provider = provider;
    this.fallbacks = fallbacks;
    this.#encoder = encoder;
    this.#policy = policy;
    const m = pkg.manifest;
    const grid = m.patch_grid.width * m.patch_grid.height;
    this.#pixelData = new Float32Array(3 * m.image.height * m.image.width);
    this.#pixels = new ort.Tensor('float32', this.#pixelData, [
      1,
      3,
      m.image.height,
      m.image.width,
    ]);
    this.#idData = new BigInt64Array(m.tokenizer.max_length);
    this.#ids = new ort.Tensor('int64', this.#idData, [1, m.tokenizer.max_length]);
    this.#stateData = new Float32Array(m.state.names.length);
    this.#state = new ort.Tensor('float32', this.#stateData, [1, m.state.names.length]);
    this.#tokenData = new Float32Array(grid * m.token_dim);
    this.#positionData = new BigInt64Array(grid);
    const e = m.graphs.encoder;
    const p = m.graphs.policy.inputs;
    this.#names = {
      encIn: e.inputs[0]?.name ?? '',
      encTokens: e.outputs[0]?.name ?? '',
      encSaliency: e.outputs[1]?.name ?? '',
      pol: [p[0]?.name ?? '', p[1]?.name ?? '', p[2]?.name ?? '', p[3]?.name ?? ''],
      polOut: m.graphs.policy.outputs[0]?.name ?? '',
    };
  }

  /** Create both sessions on the first provider of the chain that works, checking each graph against the manifest. */
  static async create(
    pkg: ModelPackage,
    variant: Variant & { readonly paths: Readonly<Record<GraphRole, string>> },
    options: BackendOptions,
  ): Promise<OnnxBackend> {
    const log = options.log ?? (() => undefined);
    const availability = new Map(providerAvailability().map((a) => [a.provider, a]));
    const fallbacks: ProviderFallback[] = [];
    for (const provider of options.executionProviders) {
      const a = availability.get(provider);
      if (a !== undefined && !a.available) {
        fallbacks.push({ provider, reason: a.reason });
        log(`execution provider ${provider} skipped: ${a.reason}`);
        continue;
      }
      const sessionOptions = sessionOptionsFor(provider, pkg, options);
      try {
        const [encoder, policy] = await withProgress(
          provider === 'tensorrt'
            ? 'building TensorRT engines (first run can take minutes; cached afterwards)'
            : undefined,
          log,
          () => createSessions(variant.paths, sessionOptions),
        );
        try {
          checkGraph('encoder', encoder, pkg.manifest.graphs.encoder);
          checkGraph('policy', policy, pkg.manifest.graphs.policy);
        } catch (error) {
          await Promise.all([encoder.release(), policy.release()]);
          throw error;
        }
        return new OnnxBackend(pkg, variant, provider, fallbacks, encoder, policy);
      } catch (error) {
        if (error instanceof ModelError) throw error;
        const reason =
          error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
        fallbacks.push({ provider, reason });
        log(`execution provider ${provider} failed, falling back: ${reason}`);
      }
    }
    throw new BackendError(
      `Expected one of the execution providers ${options.executionProviders.join(', ')} to run ${pkg.manifest.name}, but none could: ${fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`,
      { field: 'backend.execution_providers' },
    );
  }

  /** The pixel tensor's buffer (CHW float32): ingest writes the normalised frame here. */
  get pixels(): Float32Array {
    return this.#pixelData;
  }

  /** Run the vision encoder on the frame in `pixels`. */
  async encode(): Promise<EncoderOutput> {
    const out = await run(this.#encoder, { [this.#names.encIn]: this.#pixels }, 'encoder');
    const tokens = out[this.#names.encTokens]?.data;
    const saliency = out[this.#names.encSaliency]?.data;
    if (!(tokens instanceof Float32Array) || !(saliency instanceof Float32Array)) {
      throw new BackendError('Expected float32 visual tokens and saliency from the encoder', {
        field: 'encoder.outputs',
      });
    }
    return { tokens, saliency };
  }

  /** The policy's visual-token buffer (N × D): the pruner writes the kept tokens here. */
  get keptTokens(): Float32Array {
    return this.#tokenData;
  }

  /**
   * Run the policy on the first `count` tokens of `keptTokens`, whose grid indices are
   * `positions[0..count)`; `instructionIds` and the normalised `state` are copied.
   */
  async act(
    count: number,
    positions: Int32Array,
    instructionIds: ArrayLike<bigint>,
    state: ArrayLike<number>,
  ): Promise<Float32Array> {
    const m = this.#pkg.manifest;
    const d = m.token_dim;
    const expect = (ok: boolean, field: string, what: string, received: number): void => {
      if (!ok)
        throw new InputError(`Expected ${what} for ${field} but received ${received}`, { field });
    };
    expect(
      Number.isInteger(count) && count >= 1 && count <= this.#positionData.length,
      'policy.token_count',
      `an integer in [1, ${this.#positionData.length}]`,
      count,
    );
    expect(
      instructionIds.length === this.#idData.length,
      'policy.instruction_ids',
      `${this.#idData.length} ids`,
      instructionIds.length,
    );
    expect(
      state.length === this.#stateData.length,
      'policy.state',
      `${this.#stateData.length} values`,
      state.length,
    );
    let t = this.#tokenTensors.get(count);
    if (t === undefined) {
      t = {
        tokens: new ort.Tensor('float32', this.#tokenData.subarray(0, count * d), [1, count, d]),
        positions: new ort.Tensor('int64', this.#positionData.subarray(0, count), [1, count]),
      };
      this.#tokenTensors.set(count, t);
    }
    expect(
      positions.length >= count,
      'policy.positions',
      `at least ${count} positions`,
      positions.length,
    );
    for (let i = 0; i < count; i++) this.#positionData[i] = BigInt(positions[i] as number);
    for (let i = 0; i < this.#idData.length; i++) this.#idData[i] = instructionIds[i] as bigint;
    this.#stateData.set(state);
    const [vt, vp, vi, vs] = this.#names.pol;
    const out = await run(
      this.#policy,
      { [vt]: t.tokens, [vp]: t.positions, [vi]: this.#ids, [vs]: this.#state },
      'policy',
    );
    const actions = out[this.#names.polOut]?.data;
    if (
      !(actions instanceof Float32Array) ||
      actions.length !== m.chunk.horizon * m.chunk.action_dim
    ) {
      throw new BackendError(
        `Expected ${m.chunk.horizon}×${m.chunk.action_dim} float32 actions from the policy`,
        { field: 'policy.outputs' },
      );
    }
    return actions;
  }

  async release(): Promise<void> {
    await Promise.all([this.#encoder.release(), this.#policy.release()]);
  }
}

function sessionOptionsFor(
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
async function createSessions(
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

async function run(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  role: GraphRole,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds);
  } catch (cause) {
    throw new BackendError(
      `The ${role} graph failed to run: ${cause instanceof Error ? cause.message : String(cause)}`,
      { field: role, cause },
    );
  }
}

async function withProgress<T>(
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
