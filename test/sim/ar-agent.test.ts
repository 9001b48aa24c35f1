import { describe, expect, it } from 'vitest';
import { streamAgent, type StreamChunkSource } from '../../src/sim/ar-agent.js';
import { runEpisodes } from '../../src/sim/runner.js';

/** A source at `rateHz` that records each request's stamp and stream and holds the arm still. */
function recordingSource(rateHz: number) {
  const requests: { stamp: number; stream: string }[] = [];
  const resets: (string | undefined)[] = [];
  const source: StreamChunkSource = {
    controlRateHz: rateHz,
    infer: (obs) => {
      requests.push({ stamp: obs.stamp, stream: obs.stream });
      const actions = new Float32Array(8 * 2);
      for (let i = 0; i < 8; i++) actions.set(obs.state, i * 2);
      return Promise.resolve({ actions });
    },
    pruner: { reset: (stream) => resets.push(stream) },
  };
  return { source, requests, resets };
}

describe('streamAgent', () => {
  it("stamps frames so that the steps the source counts between two of them, at the source's rate, are the steps the simulator took", async () => {
    // Each request comes after executeSteps actions; a source counting the stamps' difference at
    // its own rate must find exactly that many, whatever the rate (a source at another rate than
    // the stamps' would count twice or half the steps taken).
    for (const rateHz of [10, 25, 50]) {
      const { source, requests, resets } = recordingSource(rateHz);
      await runEpisodes(streamAgent(source), {
        episodes: 2,
        seed: 7,
        executeSteps: 3,
        maxSteps: 12,
        cameraWidth: 32,
        cameraHeight: 32,
      });
      // 12 steps, a request every 3 steps: 4 per episode, each episode on its own stream.
      expect(requests.map((r) => r.stream)).toEqual([
        ...Array<string>(4).fill('episode-0'),
        ...Array<string>(4).fill('episode-1'),
      ]);
      for (let i = 1; i < requests.length; i++) {
        const [a, b] = [requests[i - 1], requests[i]];
        if (a === undefined || b === undefined || a.stream !== b.stream) continue;
        expect(Math.round(((b.stamp - a.stamp) * source.controlRateHz) / 1000)).toBe(3);
      }
      expect(requests[4]?.stamp).toBe(0);
      // The ended episode's stream is forgotten when the next one starts.
      expect(resets).toEqual(['episode-0']);
    }
  });
});
