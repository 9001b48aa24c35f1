/**
 * The run observer: one transport-neutral hook through which the runners (simulator, bridge
 * server, bag replay, ROS node) show what the pipeline sees and does, for a live view or a
 * recorder. The core knows only this interface; implementations live with the transports.
 *
 * Calls are synchronous and on the control path: an implementation must return at once and do no
 * work for what nobody consumes. Arguments are views that may be reused after the call returns
 * (the simulator's camera buffer, the pipeline's kept-token positions): copy what you keep.
 */

import type { Frame } from '../ingest/index.js';
import type { ActionChunk, Observation, PreparedObservation } from './pipeline.js';

/** A chunk as it arrived: what every agent gives; the pipeline's chunks carry the rest. */
export interface ObservedChunk {
  readonly actions: Float32Array;
  readonly horizon: number;
  readonly actionDim: number;
  /** Frame in → chunk out, ms (pipeline chunks). */
  readonly latencyMs?: number;
  readonly stages?: ActionChunk['stages'];
  readonly tokens?: ActionChunk['tokens'];
  readonly sequence?: number;
}

/** The frame as the encoder saw it (RGB8 at the model's size) and the kept tokens' grid positions. */
export interface ObservedSelection {
  readonly rgb: Uint8Array;
  readonly positions: Int32Array;
}

/** A top-down 2D scene (the simulator's tabletop), positions in table units. */
export interface ObservedScene {
  readonly effector: { readonly x: number; readonly y: number };
  readonly target: { readonly x: number; readonly y: number };
  readonly blocks: readonly {
    readonly colour: string;
    readonly rgb: readonly [number, number, number];
    readonly centre: { readonly x: number; readonly y: number };
  }[];
  /** Half the side of a block, table units. */
  readonly blockHalfSize: number;
  readonly effectorRadius: number;
}

/** Where a command came from: the current plan, or the watchdog's safe action. */
export type CommandSource = 'plan' | 'safe';

export type ObserverLogLevel = 'info' | 'warn' | 'error';

/** Hooks a runner calls; every one is optional. */
export interface RunObserver {
  /** A camera frame entered the pipeline (or an agent), with the instruction it ran under. */
  onFrame?(frame: Frame, instruction: string, stream: string): void;
  /**
   * A chunk arrived. `frame` is the frame it was computed from (as passed to {@link onFrame});
   * `selection` is what the pruner kept for it, when known.
   */
  onChunk?(chunk: ObservedChunk, frame: Frame | undefined, selection?: ObservedSelection): void;
  /** The action sent to the robot this control period. */
  onCommand?(action: ArrayLike<number>, source: CommandSource): void;
  /** The world after a control step (simulators). */
  onScene?(scene: ObservedScene): void;
  /** A diagnostic line of the runner. */
  onLog?(level: ObserverLogLevel, text: string): void;
}

/** What {@link observeInference} needs of a pipeline ({@link VlaPipeline} is one). */
export interface ObservablePipeline {
  infer(obs: Observation): Promise<ActionChunk>;
  inferBatch?(
    batch: readonly (Observation | PreparedObservation)[],
  ): Promise<PromiseSettledResult<ActionChunk>[]>;
  readonly lastSelection: ObservedSelection | undefined;
}

/** Functions (not methods: they may be passed around alone) that run and report inferences. */
export interface ObservedInference {
  readonly infer: (obs: Observation) => Promise<ActionChunk>;
  readonly inferBatch: (
    batch: readonly (Observation | PreparedObservation)[],
  ) => Promise<PromiseSettledResult<ActionChunk>[]>;
}

/**
 * `infer` and `inferBatch` of `pipeline` that report each observation's frame and each chunk to
 * `observer`. In a batch, the pipeline keeps the selection of its last observation only, so only
 * the last chunk comes with its kept tokens.
 *
 * @example
 * const server = await BridgeServer.start({ ...bridgeView(pipeline), ...observeInference(pipeline, view) }, options);
 */
export function observeInference(
  pipeline: ObservablePipeline,
  observer: RunObserver,
): ObservedInference {
  const frameOf = (o: Observation | PreparedObservation): Observation =>
    'observation' in o ? o.observation : o;
  return {
    infer: async (obs) => {
      observer.onFrame?.(obs.frame, obs.instruction, obs.stream ?? 'camera');
      const chunk = await pipeline.infer(obs);
      observer.onChunk?.(chunk, obs.frame, pipeline.lastSelection);
      return chunk;
    },
    inferBatch: async (batch) => {
      if (pipeline.inferBatch === undefined) throw new Error('the pipeline takes no batches');
      for (const item of batch) {
        const o = frameOf(item);
        observer.onFrame?.(o.frame, o.instruction, o.stream ?? 'camera');
      }
      const results = await pipeline.inferBatch(batch);
      let last = -1;
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') last = i;
      });
      results.forEach((r, i) => {
        const item = batch[i];
        if (r.status !== 'fulfilled' || item === undefined) return;
        observer.onChunk?.(
          r.value,
          frameOf(item).frame,
          i === last ? pipeline.lastSelection : undefined,
        );
      });
      return results;
    },
  };
}
