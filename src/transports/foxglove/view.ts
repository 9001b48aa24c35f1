/**
 * The live view: a {@link RunObserver} that publishes what a run sees and does on a
 * {@link LiveServer}, one channel per kind of message (docs/foxglove.md lists them).
 */

import * as foxglove from '@foxglove/schemas/jsonschema.js';
import type { Frame } from '../../ingest/index.js';
import type {
  CommandSource,
  ObservedChunk,
  ObservedScene,
  ObservedSelection,
  ObserverLogLevel,
  RunObserver,
} from '../../pipeline/observer.js';
import { keptOverlay } from '../../pruning/overlay.js';
import {
  compressedImage,
  keptTokenAnnotations,
  logMessage,
  rawImage,
  sceneUpdate,
  timeOf,
  VLA_SCHEMAS,
  type OverlayGeometry,
} from './messages.js';
import { wallClockNs, type LiveServer } from './server.js';

/** The topics of the live view. */
export const LIVE_TOPICS = {
  image: '/vla/camera/image',
  compressed: '/vla/camera/compressed',
  keptTokens: '/vla/kept_tokens',
  modelInput: '/vla/model_input',
  instruction: '/vla/instruction',
  chunk: '/vla/action_chunk',
  sent: '/vla/action_sent',
  scene: '/vla/scene',
  stats: '/vla/stats',
  log: '/vla/log',
} as const;

type TopicKey = keyof typeof LIVE_TOPICS;

const CHANNELS: Readonly<Record<TopicKey, { readonly name: string; readonly schema: object }>> = {
  image: { name: 'foxglove.RawImage', schema: foxglove.RawImage },
  compressed: { name: 'foxglove.CompressedImage', schema: foxglove.CompressedImage },
  keptTokens: { name: 'foxglove.ImageAnnotations', schema: foxglove.ImageAnnotations },
  modelInput: { name: 'foxglove.RawImage', schema: foxglove.RawImage },
  instruction: { name: 'vla.Instruction', schema: VLA_SCHEMAS['vla.Instruction'] },
  chunk: { name: 'vla.ActionChunk', schema: VLA_SCHEMAS['vla.ActionChunk'] },
  sent: { name: 'vla.ActionSent', schema: VLA_SCHEMAS['vla.ActionSent'] },
  scene: { name: 'foxglove.SceneUpdate', schema: foxglove.SceneUpdate },
  stats: { name: 'vla.Stats', schema: VLA_SCHEMAS['vla.Stats'] },
  log: { name: 'foxglove.Log', schema: foxglove.Log },
};

const LOG_LEVELS = { info: 2, warn: 3, error: 4 } as const;

export interface FoxgloveViewOptions {
  /** Names of the action dimensions (the manifest's `action.names`). */
  readonly actionNames: readonly string[];
  /** The model's input geometry; absent: no kept-token overlay (agents without a pipeline). */
  readonly overlay?: OverlayGeometry;
  /** frame_id of the camera images. */
  readonly cameraFrame?: string;
  /** frame_id of the scene (the 3D panel's display frame). */
  readonly sceneFrame?: string;
}

/**
 * Publishes a run on a {@link LiveServer}. Each hook returns at once when nobody subscribes to
 * the channels it feeds.
 *
 * @example
 * const view = FoxgloveView.create(server, { actionNames: ['x', 'y'] });
 * await runEpisodes(agent, { ...options, observer: view });
 */
export class FoxgloveView implements RunObserver {
  readonly #server: LiveServer;
  readonly #ids: Readonly<Record<TopicKey, number>>;
  readonly #options: FoxgloveViewOptions;
  readonly #cameraFrame: string;
  readonly #sceneFrame: string;
  /** Stamps of frames published, so the overlay of a chunk lands on its frame. */
  readonly #frameStamps = new WeakMap<Frame, bigint>();
  #chunks = 0;
  #commands = 0;
  #safe = 0;

  private constructor(server: LiveServer, options: FoxgloveViewOptions) {
    this.#server = server;
    this.#options = options;
    this.#cameraFrame = options.cameraFrame ?? 'camera';
    this.#sceneFrame = options.sceneFrame ?? 'table';
    const ids: Partial<Record<TopicKey, number>> = {};
    for (const key of Object.keys(LIVE_TOPICS) as TopicKey[]) {
      ids[key] = server.addChannel(LIVE_TOPICS[key], CHANNELS[key].name, CHANNELS[key].schema);
    }
    this.#ids = ids as Record<TopicKey, number>;
  }

  /** Advertise the view's channels on `server`. */
  static create(server: LiveServer, options: FoxgloveViewOptions): FoxgloveView {
    return new FoxgloveView(server, options);
  }

  get server(): LiveServer {
    return this.#server;
  }

  onFrame(frame: Frame, instruction: string, stream: string): void {
    const s = this.#server;
    const ids = this.#ids;
    const image = frame.kind === 'raw' ? ids.image : ids.compressed;
    const wantImage = s.subscribed(image);
    const wantOverlay = s.subscribed(ids.keptTokens);
    if (!wantImage && !wantOverlay && !s.subscribed(ids.instruction)) return;
    const ns = wallClockNs();
    if (wantOverlay || wantImage) this.#frameStamps.set(frame, ns);
    const stamp = timeOf(ns);
    s.publish(image, ns, () =>
      frame.kind === 'raw'
        ? rawImage(frame, stamp, this.#cameraFrame)
        : compressedImage(frame, stamp, this.#cameraFrame),
    );
    s.publish(ids.instruction, ns, () => ({ text: instruction, stream }));
  }

  onChunk(chunk: ObservedChunk, frame: Frame | undefined, selection?: ObservedSelection): void {
    this.#chunks++;
    const s = this.#server;
    const ids = this.#ids;
    const ns = wallClockNs();
    const names = this.#names(chunk.actionDim);
    s.publish(ids.chunk, ns, () => chunkMessage(chunk, names));
    s.publish(ids.stats, ns, () => this.#stats(chunk));
    const geometry = this.#options.overlay;
    if (selection === undefined || geometry === undefined) return;
    const count = selection.positions.length;
    if (frame?.kind === 'raw') {
      const frameNs = this.#frameStamps.get(frame) ?? ns;
      s.publish(ids.keptTokens, frameNs, () =>
        keptTokenAnnotations(
          selection.positions,
          count,
          geometry,
          frame.width,
          frame.height,
          timeOf(frameNs),
        ),
      );
    }
    s.publish(ids.modelInput, ns, () => {
      const { modelWidth: w, modelHeight: h } = geometry;
      const data = keptOverlay(selection.rgb, w, h, geometry.grid, selection.positions, count);
      return rawImage(
        { kind: 'raw', width: w, height: h, encoding: 'rgb8', data },
        timeOf(ns),
        'model_input',
      );
    });
  }

  onCommand(action: ArrayLike<number>, source: CommandSource): void {
    const period = this.#commands++;
    if (source === 'safe') this.#safe++;
    this.#server.publish(this.#ids.sent, wallClockNs(), () => ({
      period,
      source,
      values: Array.from(action),
      names: this.#names(action.length),
    }));
  }

  onScene(scene: ObservedScene): void {
    const ns = wallClockNs();
    this.#server.publish(this.#ids.scene, ns, () =>
      sceneUpdate(scene, timeOf(ns), this.#sceneFrame),
    );
  }

  onLog(level: ObserverLogLevel, text: string): void {
    const ns = wallClockNs();
    this.#server.publish(this.#ids.log, ns, () => logMessage(LOG_LEVELS[level], text, timeOf(ns)));
  }

  #names(dim: number): string[] {
    const names = this.#options.actionNames;
    return Array.from({ length: dim }, (_, d) => names[d] ?? `a${d}`);
  }

  #stats(chunk: ObservedChunk): object {
    const tokens = chunk.tokens;
    return {
      sequence: chunk.sequence ?? this.#chunks - 1,
      ...(chunk.latencyMs === undefined ? {} : { latency_ms: chunk.latencyMs }),
      ...(chunk.stages === undefined ? {} : { stages_ms: chunk.stages }),
      ...(tokens === undefined
        ? {}
        : {
            tokens_kept: tokens.kept,
            tokens_total: tokens.total,
            keep_ratio: tokens.total === 0 ? 1 : tokens.kept / tokens.total,
          }),
      chunks: this.#chunks,
      commands: this.#commands,
      safe_commands: this.#safe,
      viewer_dropped: this.#server.stats().dropped,
    };
  }
}

/** vla.ActionChunk of a chunk. */
function chunkMessage(chunk: ObservedChunk, names: readonly string[]): object {
  const { horizon, actionDim: dim, actions } = chunk;
  const steps = Array.from({ length: horizon }, (_, k) => ({
    step: k,
    values: Array.from(actions.subarray(k * dim, (k + 1) * dim)),
  }));
  const dims = names.map((name, d) => ({
    name,
    values: Array.from({ length: horizon }, (_, k) => actions[k * dim + d] as number),
  }));
  return {
    sequence: chunk.sequence ?? 0,
    horizon,
    action_dim: dim,
    names,
    steps,
    dims,
    first: steps[0]?.values ?? [],
  };
}
