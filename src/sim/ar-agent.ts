/**
 * A simulator agent over a pipeline that keeps state per camera stream (an autoregressive
 * package's speculative drafts, stateful pruners): each episode is its own stream, and each
 * frame is stamped with its control step's time, so the pipeline can tell how many steps of the
 * previous chunk were executed before it.
 */
import type { Agent, ChunkSource } from './runner.js';

/** What {@link streamAgent} needs of the pipeline: {@link ChunkSource} with stamps and streams. */
export interface StreamChunkSource {
  infer(
    obs: Parameters<ChunkSource['infer']>[0] & {
      readonly stamp: number;
      readonly stream: string;
    },
  ): Promise<{ readonly actions: Float32Array }>;
  readonly pruner: { reset(stream?: string): void };
  /** The control rate the source counts the steps between two stamps in. */
  readonly controlRateHz: number;
}

/**
 * An agent feeding `source` the camera frame, instruction and state, stamped `step / rate` seconds
 * (in ms) into the episode at the rate the source counts stamps in (so the steps it counts between
 * two frames are the steps the simulator took), on stream `episode-N`; the stream of an episode
 * that ended is reset.
 */
export function streamAgent(source: StreamChunkSource): Agent {
  let episode = -1;
  let requests = 0;
  return {
    name: 'model',
    act: async (obs) => {
      if (obs.step === 0 && requests > 0) {
        source.pruner.reset(`episode-${episode}`);
        requests = 0;
      }
      if (requests === 0) episode++;
      requests++;
      const chunk = await source.infer({
        frame: obs.image,
        instruction: obs.instruction,
        state: obs.state,
        stamp: (obs.step * 1000) / source.controlRateHz,
        stream: `episode-${episode}`,
      });
      return chunk.actions;
    },
  };
}
