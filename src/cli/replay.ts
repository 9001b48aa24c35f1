import { resolvePackagePath } from '../config/index.js';
import { ConfigError, printable } from '../errors.js';
import { flowPipelineFromConfig } from '../flow/from-config.js';
import type { FlowPipeline } from '../flow/pipeline.js';
import { isArPackage } from '../model/ar-manifest.js';
import { isFlowPackage, loadFlowPackage } from '../model/flow-manifest.js';
import { arPipelineFromConfig } from '../policy/autoregressive/from-config.js';
import type { ArPipeline } from '../policy/autoregressive/pipeline.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import {
  bagOutput,
  DEFAULT_TOPICS,
  replay,
  type ReplayMetrics,
  type ReplayPipeline,
  type TopicMap,
} from '../transports/mcap/index.js';
import type { CommandIo, CommandSpec, OptionValues } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { observeInference } from '../pipeline/observer.js';
import { FOXGLOVE_OPTIONS, startLiveView, withFoxgloveFlag } from './foxglove.js';
import {
  CONFIG_OPTIONS,
  configFromArgs,
  MODEL_FLAG_KEYS,
  MODEL_OPTIONS,
  modelFromConfig,
  pipelineOptions,
} from './setup.js';

/** `--rate max|R` → 'max' or a positive number. */
export function parseRate(value: unknown): number | 'max' {
  if (value === undefined || value === 'max') return 'max';
  const rate = typeof value === 'string' ? Number(value) : NaN;
  if (!(rate > 0 && Number.isFinite(rate))) {
    throw new ConfigError(
      `Expected --rate max or a positive number but received ${JSON.stringify(value)}`,
      { field: 'rate' },
    );
  }
  return rate;
}

/** `--camera-topic NAME=TOPIC` (repeatable) → { NAME: TOPIC }. */
export function parseCameraTopics(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of Array.isArray(value) ? (value as unknown[]) : []) {
    const text = String(item);
    const at = text.indexOf('=');
    const name = text.slice(0, at);
    const topic = text.slice(at + 1);
    if (at < 1 || !topic.startsWith('/') || Object.hasOwn(out, name)) {
      throw new ConfigError(
        `Expected --camera-topic NAME=/topic (each camera once), e.g. wrist=/wrist_camera/image_raw, but received ${JSON.stringify(text)}`,
        { field: 'camera-topic' },
      );
    }
    out[name] = topic;
  }
  return out;
}

function text(values: OptionValues, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

/** A readable summary of a replay. */
export function formatReplay(r: ReplayMetrics): string {
  const lines = [
    `replayed ${printable(r.bag)}: ${r.frames} frames → ${r.chunks} chunks in ${r.wall_s.toFixed(2)} s (${r.frames_per_s} frames/s, rate ${String(r.rate)})`,
    ...(r.camera_topics === undefined
      ? []
      : [
          `  cameras: ${Object.entries(r.camera_topics)
            .map(([c, t]) => `${printable(c)} ${printable(t)}`)
            .join(', ')}`,
        ]),
    `  messages: ${Object.entries(r.messages)
      .map(([t, n]) => `${printable(t)} ${n}`)
      .join(', ')}`,
  ];
  if (r.skipped_topics.length > 0) {
    lines.push(
      `  skipped: ${r.skipped_topics.map((s) => `${printable(s.topic)} (${printable(s.type)}, ${s.messages})`).join(', ')}`,
    );
  }
  if (r.missing_topics.length > 0) {
    lines.push(
      `  not in the bag: ${r.missing_topics.map((m) => `${printable(m.topic)} (${m.role})`).join(', ')}`,
    );
  }
  if (Object.keys(r.warnings).length > 0) {
    lines.push(
      `  warnings: ${Object.entries(r.warnings)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
    );
  }
  if (r.chunks > 0) {
    lines.push(
      `  latency: p50 ${r.latency_ms.p50} ms, p95 ${r.latency_ms.p95} ms, p99 ${r.latency_ms.p99} ms`,
    );
  }
  if (r.action_error !== null) {
    lines.push(
      `  action error vs reference (${r.action_error.chunks} chunks): mean |e| [${r.action_error.mean_abs.join(', ')}], max |e| [${r.action_error.max_abs.join(', ')}]`,
    );
  }
  if (r.out !== null) lines.push(`  wrote ${printable(r.out)}`);
  return lines.join('\n');
}

export async function runReplay(
  values: OptionValues,
  io: CommandIo,
  positionals: readonly string[],
): Promise<number> {
  const [bag, ...extra] = positionals;
  if (bag === undefined || extra.length > 0) {
    throw new ConfigError(
      `Expected one BAG (an .mcap file or a bag folder) but received ${positionals.length}`,
      { field: 'BAG' },
    );
  }
  const rate = parseRate(values.rate);
  const cameraTopics = parseCameraTopics(values['camera-topic']);
  const config = await configFromArgs(withFoxgloveFlag(values), MODEL_FLAG_KEYS);
  const dir = resolvePackagePath(config.model.path);
  if (await isFlowPackage(dir))
    return replayPackage(bag, values, io, config, cameraTopics, flowReplay(dir, config));
  if (await isArPackage(dir))
    return replayPackage(bag, values, io, config, cameraTopics, arReplay(dir, config));
  if (Object.keys(cameraTopics).length > 0) {
    throw new ConfigError(
      'Expected no --camera-topic with a one-camera package (its camera reads --image-topic) but received one',
      { field: 'camera-topic' },
    );
  }
  const model = await modelFromConfig(config);
  const out = text(values, 'out');
  if (out !== undefined) {
    // Before the model warms up: a wrong --out costs nothing and never touches an input.
    await checkOutputs(
      values,
      [bagOutput('out', out)],
      [
        { what: 'BAG', path: bag, enclosing: true },
        { what: 'the model package', path: model.dir, enclosing: true },
      ],
    );
  }
  io.progress(`loading ${model.manifest.name} (${config.model.precision}) and warming up...`);
  const pipeline = await VlaPipeline.create(
    model,
    pipelineOptions(config, (line) => {
      io.progress(line);
    }),
  );
  const live = await startLiveView(config, io, model.manifest).catch(async (error: unknown) => {
    await pipeline.release();
    throw error;
  });
  try {
    const observed =
      live === undefined
        ? pipeline
        : {
            model: pipeline.model,
            pruner: pipeline.pruner,
            infer: observeInference(pipeline, live.view).infer,
          };
    const instruction = text(values, 'instruction');
    const { metrics } = await replay(bag, {
      pipeline: observed,
      rate,
      topics: topicsOf(values),
      ...(out === undefined ? {} : { out }),
      ...(instruction === undefined ? {} : { instruction }),
    });
    io.result(
      {
        ...metrics,
        model: model.manifest.name,
        precision: pipeline.precision,
        provider: pipeline.provider,
      },
      formatReplay(metrics),
    );
  } finally {
    await live?.close();
    await pipeline.release();
  }
  return 0;
}

function topicsOf(values: OptionValues): TopicMap {
  return {
    image: text(values, 'image-topic') ?? DEFAULT_TOPICS.image,
    instruction: text(values, 'instruction-topic') ?? DEFAULT_TOPICS.instruction,
    state: text(values, 'state-topic') ?? DEFAULT_TOPICS.state,
    reference: text(values, 'reference-topic') ?? DEFAULT_TOPICS.reference,
  };
}

/** What replay needs of a pipeline it opened: run, report its precision, close. */
type OpenedPipeline = ReplayPipeline & { readonly precision: string; release(): Promise<void> };

/** A package of the v2 format (flow or autoregressive), as replay opens it. */
interface PackageReplay<P extends OpenedPipeline> {
  /** Why `--foxglove` is refused for the family (checked before anything loads). */
  readonly noFoxglove: string;
  /** Load what the package needs before its pipeline opens. */
  load(): Promise<{
    /** The package's folder (kept out of `--out`). */
    readonly dir: string;
    /** The progress line while the pipeline opens and warms up. */
    readonly loading: string;
    open(): Promise<P>;
    /** The report's fields besides the replay's metrics. */
    report(pipeline: P): Record<string, unknown>;
  }>;
}

/**
 * Replay through a package of the v2 format: its cameras read `--camera-topic NAME=TOPIC` (the
 * first defaults to --image-topic, the others to /NAME_camera/image_raw), one chunk per message
 * of the first camera's topic with the latest of the others.
 */
async function replayPackage<P extends OpenedPipeline>(
  bag: string,
  values: OptionValues,
  io: CommandIo,
  config: Awaited<ReturnType<typeof configFromArgs>>,
  cameraTopics: Record<string, string>,
  family: PackageReplay<P>,
): Promise<number> {
  if (config.foxglove.enabled) {
    throw new ConfigError(family.noFoxglove, { field: 'foxglove.enabled' });
  }
  const pkg = await family.load();
  const out = text(values, 'out');
  if (out !== undefined) {
    await checkOutputs(
      values,
      [bagOutput('out', out)],
      [
        { what: 'BAG', path: bag, enclosing: true },
        { what: 'the model package', path: pkg.dir, enclosing: true },
      ],
    );
  }
  io.progress(pkg.loading);
  const pipeline = await pkg.open();
  try {
    const instruction = text(values, 'instruction');
    const { metrics } = await replay(bag, {
      pipeline,
      rate: parseRate(values.rate),
      topics: topicsOf(values),
      cameraTopics,
      ...(out === undefined ? {} : { out }),
      ...(instruction === undefined ? {} : { instruction }),
    });
    io.result({ ...metrics, ...pkg.report(pipeline) }, formatReplay(metrics));
  } finally {
    await pipeline.release();
  }
  return 0;
}

/**
 * A flow package: one image topic per camera. The noise of each frame is seeded from its header
 * stamp, so a replay is reproducible.
 */
function flowReplay(
  dir: string,
  config: Awaited<ReturnType<typeof configFromArgs>>,
): PackageReplay<FlowPipeline> {
  return {
    noFoxglove:
      'Expected foxglove.enabled false with a flow package: the live view shows one camera, and replaying flow packages with it is not supported yet',
    async load() {
      const pkg = await loadFlowPackage(dir);
      const names = pkg.manifest.cameras.map((c) => c.name);
      return {
        dir: pkg.dir,
        loading: `loading ${pkg.manifest.name} (flow, ${names.join(' + ')}, ${config.model.precision}) and warming up...`,
        open: () => flowPipelineFromConfig(config, pkg),
        report: (p) => ({ model: pkg.manifest.name, precision: p.precision, provider: 'cpu' }),
      };
    },
  };
}

/**
 * An autoregressive package (ArPipeline): one chunk per image message, decoded as
 * `runtime.decoding` says; decoding is deterministic, so a replay repeats.
 */
function arReplay(
  dir: string,
  config: Awaited<ReturnType<typeof configFromArgs>>,
): PackageReplay<ArPipeline> {
  return {
    noFoxglove:
      'Expected foxglove.enabled false with an autoregressive package: the live view runs the encoder + policy pipeline only, and replaying autoregressive packages with it is not supported yet',
    load() {
      return Promise.resolve({
        dir,
        loading: `loading the autoregressive package ${printable(dir)} (${config.model.precision}, decoding ${config.runtime.decoding}) and warming up...`,
        open: () => arPipelineFromConfig(config, dir),
        report: (p: ArPipeline) => ({
          model: p.model.manifest.name,
          precision: p.precision,
          provider: 'cpu',
          decoding: p.decoding.strategy,
        }),
      });
    },
  };
}

export const replayCommand: CommandSpec = {
  name: 'replay',
  summary: 'replay a rosbag2 MCAP bag through the pipeline; optionally record the action chunks',
  positionals: 'BAG',
  options: {
    out: {
      type: 'string',
      help: 'write the chunks (JointTrajectory, Float32MultiArray) and diagnostics to this .mcap file or new bag folder (never the BAG, inside its folder or the model package; an existing file needs --force)',
    },
    ...FORCE_OPTION,
    rate: {
      type: 'string',
      default: 'max',
      help: 'max (as fast as possible) or a multiple of the bag clock, e.g. 1',
    },
    'image-topic': {
      type: 'string',
      default: DEFAULT_TOPICS.image,
      help: 'sensor_msgs/Image or CompressedImage topic (of a flow package: its first camera)',
    },
    'camera-topic': {
      type: 'string',
      multiple: true,
      help: 'flow packages: NAME=TOPIC, the image topic of camera NAME (default: the first camera --image-topic, the others /NAME_camera/image_raw)',
    },
    'instruction-topic': {
      type: 'string',
      default: DEFAULT_TOPICS.instruction,
      help: 'std_msgs/String topic',
    },
    'state-topic': {
      type: 'string',
      default: DEFAULT_TOPICS.state,
      help: 'sensor_msgs/JointState topic',
    },
    'reference-topic': {
      type: 'string',
      default: DEFAULT_TOPICS.reference,
      help: 'std_msgs/Float32MultiArray topic of reference actions to compare with',
    },
    instruction: {
      type: 'string',
      help: 'instruction to use until one arrives on the instruction topic',
    },
    ...MODEL_OPTIONS,
    ...FOXGLOVE_OPTIONS,
    ...CONFIG_OPTIONS,
  },
  run: runReplay,
};
