/**
 * Playback of rosbag2 MCAP bags through the pipeline: the playback harness behind `vla-node replay`
 * and users' vitest tests.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { MessageReader } from '@foxglove/rosmsg2-serialization';
import { describe, InputError, printable } from '../../errors.js';
import type { Frame } from '../../ingest/index.js';
import {
  MAX_INSTRUCTION_LENGTH,
  type ActionChunk,
  type CameraFrame,
} from '../../pipeline/types.js';
import { LatencyHistogram } from '../../runtime/latency.js';
import {
  frameOfImage,
  jointTrajectoryOf,
  multiArrayOf,
  stateOfJoints,
  type CompressedImageMsg,
  type Float32MultiArrayMsg,
  type ImageMsg,
  type JointStateMsg,
} from './codec.js';
import { BagError } from './errors.js';
import { readBag, type BagChannel } from './reader.js';
import { checkFields } from './fields.js';
import { parseSchema, rosTime, shortTypeName } from './schemas.js';
import { bagOutput, BagWriter } from './writer.js';
import { guardOutputs } from '../../util/paths.js';
import { frameFromCompressed, msFromTime } from '../messages/index.js';
import { round } from '../../util/stats.js';
import {
  DEFAULT_TOPICS,
  defaultCameraTopic,
  OUTPUT_TOPICS,
  type TopicMap,
} from './replay-topics.js';
import type {
  ReplayMetrics,
  ReplayOptions,
  ReplayPipeline,
  ReplayResult,
  SkippedTopic,
} from './replay-types.js';

// The topic convention and the types were this module's until they took files of their own:
// imports of dist/transports/mcap/replay.js still find them here.
export * from './replay-topics.js';
export type * from './replay-types.js';

/** The longest step of the bag's clock between two frames that `rate` paces through: 10 s. */
const MAX_PACED_GAP_NS = 10_000_000_000n;

const IMAGE_TYPES = ['sensor_msgs/Image', 'sensor_msgs/CompressedImage'];
const ROLE_TYPES: Readonly<Record<Role, readonly string[]>> = {
  image: IMAGE_TYPES,
  camera: IMAGE_TYPES,
  instruction: ['std_msgs/String'],
  state: ['sensor_msgs/JointState'],
  reference: ['std_msgs/Float32MultiArray'],
};

const DEFAULTS = { rate: 'max', instruction: '', diagnosticsEvery: 10 } as const;

/** A mapped topic's input: a {@link TopicMap} role, or `camera` (a camera after the first). */
type Role = keyof TopicMap | 'camera';

interface ChannelState {
  readonly channel: BagChannel;
  readonly role: Role | undefined;
  readonly reader: MessageReader | undefined;
  readonly compressed: boolean;
  /** Of a `camera` topic: the camera's index in the model's cameras. */
  readonly camera: number | undefined;
}

/**
 * Replay a bag through the pipeline: every message on the image topic is one inference with the
 * latest instruction and joint state. Chunks are written to `out` as they come (JointTrajectory,
 * Float32MultiArray, DiagnosticArray); the output is closed properly even when reading fails.
 * The same bag and configuration give bit-identical chunks (with `latency_budget_ms` 0: the budget
 * controller adapts to measured latency); the pipeline's pruner is reset first.
 *
 * @throws {BagError} when the bag is missing or corrupt, or a mapped topic has a type, schema
 *   encoding or message encoding the node cannot decode.
 *
 * @example
 * const { chunks, metrics } = await replay('run.mcap', { pipeline, topics: { image: '/cam' } });
 */
export async function replay(bagPath: string, options: ReplayOptions): Promise<ReplayResult> {
  const run = new Replay(bagPath, options);
  return run.run();
}

class Replay {
  readonly #bag: string;
  readonly #options: ReplayOptions;
  readonly #topics: TopicMap;
  /** The model's camera names and topics, when it has several (else empty). */
  readonly #cameras: readonly { readonly name: string; readonly topic: string }[];
  /** The latest frame of each camera after the first (by index), with its stamp. */
  readonly #latest = new Map<number, Frame>();
  readonly #manifest: ReplayPipeline['model']['manifest'];
  readonly #rate: number | 'max';
  readonly #channels = new Map<string, ChannelState>();
  readonly #messages = new Map<string, number>();
  readonly #types = new Map<string, string>();
  readonly #warnings = new Map<string, number>();
  readonly #files: string[] = [];
  readonly #chunks: ActionChunk[] = [];
  readonly #latency = new LatencyHistogram();
  readonly #errSum: Float64Array;
  readonly #errMax: Float64Array;
  #errCount = 0;
  #errChunks = 0;
  #instruction: string | undefined;
  #state: Float64Array | undefined;
  #reference: Float32Array | undefined;
  #frames = 0;
  #out: BagWriter | undefined;
  #clock: { bag: bigint; wall: number } | undefined;
  /** Log time of the last frame paced. */
  #lastPaced: bigint | undefined;

  constructor(bag: string, options: ReplayOptions) {
    this.#bag = bag;
    this.#options = options;
    const topics = { ...DEFAULT_TOPICS, ...options.topics };
    const cameras = options.pipeline.cameras ?? [];
    this.#cameras = cameras.map((c, i) => ({
      name: c.name,
      topic: options.cameraTopics?.[c.name] ?? defaultCameraTopic(c.name, i, topics.image),
    }));
    const unknown = Object.keys(options.cameraTopics ?? {}).find(
      (name) => !cameras.some((c) => c.name === name),
    );
    if (unknown !== undefined) {
      throw new InputError(
        `Expected a camera of the model (${cameras.map((c) => c.name).join('|') || 'it takes one, on the image topic'}) in cameraTopics but received ${JSON.stringify(unknown)}`,
        { field: `camera_topics.${unknown}` },
      );
    }
    // The first camera's topic drives the inferences, as the image topic does for one camera.
    this.#topics = { ...topics, image: this.#cameras[0]?.topic ?? topics.image };
    this.#cameras.forEach((c, i) => {
      const taken =
        (['instruction', 'state', 'reference'] as const).find((r) => topics[r] === c.topic) ??
        (this.#cameras.findIndex((o) => o.topic === c.topic) < i ? 'another camera' : undefined);
      if (taken !== undefined) {
        throw new InputError(
          `Expected an image topic of camera ${c.name} of its own but ${printable(c.topic)} is already the ${taken}'s`,
          { field: `camera_topics.${c.name}` },
        );
      }
    });
    this.#manifest = options.pipeline.model.manifest;
    this.#rate = options.rate ?? DEFAULTS.rate;
    if (this.#rate !== 'max' && !(this.#rate > 0 && Number.isFinite(this.#rate))) {
      throw new InputError(
        `Expected rate "max" or a positive number but received ${String(this.#rate)}`,
        { field: 'rate' },
      );
    }
    const a = this.#manifest.chunk.action_dim;
    this.#errSum = new Float64Array(a);
    this.#errMax = new Float64Array(a);
  }

  async run(): Promise<ReplayResult> {
    const t0 = performance.now();
    this.#options.pipeline.pruner?.reset();
    if (this.#options.out !== undefined) {
      try {
        await guardOutputs(
          [bagOutput('out', this.#options.out)],
          [{ what: 'the bag', path: this.#bag, enclosing: true }],
          { force: true },
        );
      } catch (error) {
        throw new BagError((error as Error).message, { field: 'out', cause: error });
      }
      this.#out = await BagWriter.create({ path: this.#options.out });
    }
    try {
      for await (const event of readBag(this.#bag, {
        ...(this.#options.decompressHandlers === undefined
          ? {}
          : { decompressHandlers: this.#options.decompressHandlers }),
      })) {
        if (!this.#files.includes(event.file)) this.#files.push(event.file);
        if (event.kind === 'channel') this.#addChannel(event.file, event.channel);
        else if (event.kind === 'warning') this.#warn(event.warning);
        else await this.#message(event.file, event.channel, event.logTime, event.data);
      }
    } finally {
      await this.#out?.close();
    }
    const wall = (performance.now() - t0) / 1000;
    return { chunks: this.#chunks, metrics: this.#metrics(wall) };
  }

  #warn(kind: string): void {
    this.#warnings.set(kind, (this.#warnings.get(kind) ?? 0) + 1);
  }

  #roleOf(topic: string): Role | undefined {
    for (const role of ['image', 'instruction', 'state', 'reference'] as const) {
      if (this.#topics[role] === topic) return role;
    }
    return this.#cameraOf(topic) === undefined ? undefined : 'camera';
  }

  /** The index of the camera (after the first) whose topic this is. */
  #cameraOf(topic: string): number | undefined {
    const i = this.#cameras.findIndex((c, k) => k > 0 && c.topic === topic);
    return i < 0 ? undefined : i;
  }

  #addChannel(file: string, channel: BagChannel): void {
    this.#types.set(channel.topic, channel.type);
    if (!this.#messages.has(channel.topic)) this.#messages.set(channel.topic, 0);
    const role = this.#roleOf(channel.topic);
    let reader: MessageReader | undefined;
    const type = shortTypeName(channel.type);
    if (role !== undefined) reader = this.#readerFor(role, channel);
    this.#channels.set(`${file}#${channel.id}`, {
      channel,
      role,
      reader,
      compressed: type === 'sensor_msgs/CompressedImage',
      camera: this.#cameraOf(channel.topic),
    });
  }

  /** A CDR reader for a mapped topic, after checking its type, encodings and fields. */
  #readerFor(role: Role, channel: BagChannel): MessageReader {
    const camera = this.#cameras[this.#cameraOf(channel.topic) ?? -1]?.name;
    const field = role === 'camera' ? `camera_topics.${camera ?? ''}` : `topics.${role}`;
    const topic = printable(channel.topic);
    const type = shortTypeName(channel.type);
    if (!ROLE_TYPES[role].includes(type)) {
      throw new BagError(
        `Expected ${ROLE_TYPES[role].map((t) => t.replace('/', '/msg/')).join('|')} on ${topic} (the ${role === 'camera' ? `${camera ?? ''} camera's` : role} topic) but the bag records ${printable(channel.type) || 'no schema'}`,
        { field },
      );
    }
    if (channel.schemaEncoding !== 'ros2msg') {
      throw new BagError(
        `Expected schema encoding ros2msg for ${topic} but received ${describe(channel.schemaEncoding)}`,
        { field: `${field}.schema_encoding` },
      );
    }
    if (channel.messageEncoding !== 'cdr') {
      throw new BagError(
        `Expected message encoding cdr for ${topic} but received ${describe(channel.messageEncoding)}`,
        { field: `${field}.message_encoding` },
      );
    }
    const parsing = (error: unknown): BagError =>
      new BagError(
        `Expected a parsable ros2msg definition of ${printable(channel.type)} on ${topic} but parsing failed: ${printable(error instanceof Error ? error.message : String(error))}`,
        { field: `${field}.schema`, cause: error },
      );
    let definitions;
    try {
      definitions = parseSchema(new TextDecoder().decode(channel.schemaData));
    } catch (error) {
      throw parsing(error);
    }
    checkFields(definitions, channel.type, channel.topic, `${field}.schema`);
    try {
      return new MessageReader(definitions);
    } catch (error) {
      throw parsing(error);
    }
  }

  async #message(file: string, channel: BagChannel, logTime: bigint, data: Uint8Array) {
    this.#messages.set(channel.topic, (this.#messages.get(channel.topic) ?? 0) + 1);
    const state = this.#channels.get(`${file}#${channel.id}`);
    if (state?.role === undefined || state.reader === undefined) return;
    let msg: unknown;
    try {
      msg = state.reader.readMessage(data);
    } catch {
      this.#warn(`decode_error_${state.role}`);
      return;
    }
    switch (state.role) {
      case 'instruction': {
        const text = (msg as { data: string }).data;
        // As the ROS node does: a longer one is skipped, the previous instruction kept.
        if (text.length > MAX_INSTRUCTION_LENGTH) this.#warn('long_instruction');
        else this.#instruction = text;
        return;
      }
      case 'state': {
        const s = stateOfJoints(msg as JointStateMsg, this.#manifest.state.names);
        if (typeof s === 'string') this.#warn('bad_joint_state');
        else this.#state = s;
        return;
      }
      case 'reference':
        this.#reference = Float32Array.from((msg as Float32MultiArrayMsg).data);
        return;
      case 'camera': {
        const frame = frameOf(msg, state.compressed);
        if (typeof frame === 'string') this.#warn('image_size_mismatch');
        // A copy: the message's bytes may be a view of the chunk the reader reuses.
        else this.#latest.set(state.camera ?? -1, { ...frame, data: frame.data.slice() });
        return;
      }
      case 'image':
        await this.#pace(logTime);
        await this.#frame(msg, state.compressed, logTime);
        return;
    }
  }

  async #pace(logTime: bigint): Promise<void> {
    if (this.#rate === 'max') return;
    const last = this.#lastPaced;
    this.#lastPaced = logTime;
    const gap = last === undefined ? 0n : logTime - last;
    if (gap < 0n || gap > MAX_PACED_GAP_NS) {
      // The bag's clock jumped (a camera silent for minutes, a clock reset, files of different
      // sessions): pacing restarts here instead of sleeping through the jump or rushing after it.
      this.#warn('time_jump');
      this.#clock = undefined;
    }
    if (this.#clock === undefined) {
      this.#clock = { bag: logTime, wall: performance.now() };
      return;
    }
    const due = this.#clock.wall + Number(logTime - this.#clock.bag) / 1e6 / this.#rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
  }

  async #frame(msg: unknown, compressed: boolean, logTime: bigint): Promise<void> {
    const m = this.#manifest;
    const frame = frameOf(msg, compressed);
    if (typeof frame === 'string') {
      this.#warn('image_size_mismatch');
      return;
    }
    const others = this.#cameras.slice(1).map((c, k) => ({
      camera: c.name,
      frame: this.#latest.get(k + 1),
    }));
    const absent = others.find((c) => c.frame === undefined);
    if (absent !== undefined) {
      // No frame of that camera yet: nothing to infer from (counted, as a missing state is).
      this.#warn(`no_image_${absent.camera}`);
      return;
    }
    const cameras =
      this.#cameras.length === 0
        ? undefined
        : [{ camera: (this.#cameras[0] as { name: string }).name, frame }, ...others];
    const header = (msg as ImageMsg).header;
    const stamp = msFromTime(header.stamp);
    if (this.#state === undefined) this.#warn('no_state');
    if (this.#instruction === undefined && this.#options.instruction === undefined) {
      this.#warn('no_instruction');
    }
    this.#frames++;
    let chunk: ActionChunk;
    try {
      chunk = await this.#options.pipeline.infer({
        frame,
        instruction: this.#instruction ?? this.#options.instruction ?? DEFAULTS.instruction,
        state: this.#state ?? m.state.mean,
        stamp,
        stream: this.#topics.image,
        ...(cameras === undefined ? {} : { cameras: cameras as CameraFrame[] }),
      });
    } catch (error) {
      if (error instanceof InputError) {
        this.#warn(`invalid_${error.field ?? 'input'}`);
        return;
      }
      throw error;
    }
    this.#chunks.push(chunk);
    this.#latency.record(chunk.latencyMs);
    this.#options.onChunk?.(chunk);
    this.#compare(chunk);
    if (this.#out !== undefined) await this.#write(chunk, header.stamp, logTime);
  }

  #compare(chunk: ActionChunk): void {
    const ref = this.#reference;
    if (ref === undefined) return;
    const a = chunk.actionDim;
    const n = Math.min(ref.length, chunk.actions.length);
    for (let i = 0; i < n; i++) {
      const e = Math.abs((chunk.actions[i] as number) - (ref[i] as number));
      const d = i % a;
      this.#errSum[d] = (this.#errSum[d] as number) + e;
      if (e > (this.#errMax[d] as number)) this.#errMax[d] = e;
    }
    this.#errCount += Math.floor(n / a);
    this.#errChunks++;
  }

  async #write(
    chunk: ActionChunk,
    stamp: { sec: number; nanosec: number },
    logTime: bigint,
  ): Promise<void> {
    const out = this.#out as BagWriter;
    const names = this.#manifest.action.names;
    await out.write(
      OUTPUT_TOPICS.chunk,
      'trajectory_msgs/msg/JointTrajectory',
      jointTrajectoryOf(chunk, names, stamp),
      logTime,
    );
    await out.write(
      OUTPUT_TOPICS.raw,
      'std_msgs/msg/Float32MultiArray',
      multiArrayOf(chunk.actions, chunk.horizon, chunk.actionDim),
      logTime,
    );
    const every = this.#options.diagnosticsEvery ?? DEFAULTS.diagnosticsEvery;
    if (every > 0 && this.#chunks.length % every === 0) {
      const s = this.#latency.summary();
      await out.write(
        OUTPUT_TOPICS.diagnostics,
        'diagnostic_msgs/msg/DiagnosticArray',
        {
          header: {
            stamp: chunk.sourceStamp === undefined ? rosTime(logTime) : stamp,
            frame_id: '',
          },
          status: [
            {
              level: 0,
              name: 'vla_node: inference',
              message: `latency p50 ${s.p50} ms, p95 ${s.p95} ms over ${s.count} chunks`,
              hardware_id: '',
              values: [
                { key: 'latency_p50_ms', value: String(s.p50) },
                { key: 'latency_p95_ms', value: String(s.p95) },
                { key: 'chunks', value: String(this.#chunks.length) },
                { key: 'frames', value: String(this.#frames) },
              ],
            },
          ],
        },
        logTime,
      );
    }
  }

  #metrics(wall: number): ReplayMetrics {
    const skipped: SkippedTopic[] = [];
    for (const [topic, count] of this.#messages) {
      if (this.#roleOf(topic) !== undefined) continue;
      skipped.push({
        topic,
        type: this.#types.get(topic) ?? '',
        messages: count,
        reason: 'not mapped to a pipeline input',
      });
    }
    const micro = (v: number): number => round(v, 6);
    const a = this.#manifest.chunk.action_dim;
    return {
      bag: this.#bag,
      files: this.#files,
      topics: this.#topics,
      ...(this.#cameras.length === 0
        ? {}
        : { camera_topics: Object.fromEntries(this.#cameras.map((c) => [c.name, c.topic])) }),
      messages: Object.fromEntries(this.#messages),
      frames: this.#frames,
      chunks: this.#chunks.length,
      skipped_topics: skipped,
      missing_topics: [
        ...(['image', 'instruction', 'state', 'reference'] as const)
          .filter((role) => !this.#messages.has(this.#topics[role]))
          .map((role) => ({ role, topic: this.#topics[role] })),
        ...this.#cameras
          .slice(1)
          .filter((c) => !this.#messages.has(c.topic))
          .map((c) => ({ role: `camera ${c.name}`, topic: c.topic })),
      ],
      warnings: Object.fromEntries(this.#warnings),
      latency_ms: this.#latency.summary(),
      action_error:
        this.#errChunks === 0
          ? null
          : {
              chunks: this.#errChunks,
              mean_abs: Array.from({ length: a }, (_, d) =>
                micro((this.#errSum[d] as number) / Math.max(1, this.#errCount)),
              ),
              max_abs: Array.from(this.#errMax, micro),
            },
      rate: this.#rate,
      wall_s: micro(wall),
      frames_per_s: wall > 0 ? Math.round((this.#frames / wall) * 100) / 100 : 0,
      out: this.#options.out ?? null,
    };
  }
}

/** The frame of an Image or CompressedImage message, or why it has none. */
function frameOf(msg: unknown, compressed: boolean): Frame | string {
  return compressed
    ? frameFromCompressed(msg as CompressedImageMsg)
    : frameOfImage(msg as ImageMsg);
}
