/**
 * The bridge in front of a pipeline that batches continuously (an autoregressive package with
 * `continuous`): each request is handed over as soon as it is dequeued, up to `maxBatch` in
 * flight, so that it joins the batch decoding inside the pipeline. Real fixture ONNX graphs, real
 * sockets on 127.0.0.1; the pipeline's own counters tell what happened, never the clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawFrame } from '../../../src/ingest/index.js';
import { ArPipeline } from '../../../src/policy/autoregressive/pipeline.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import {
  BridgeClient,
  BridgeServer,
  type ClientObservation,
} from '../../../src/transports/zmq/index.js';
import {
  arPipelineOptions,
  makeArPackage,
  removeArPackages,
} from '../../policy/autoregressive/ar-package.js';

const LOOPBACK = 'tcp://127.0.0.1:*';
let pkg: string;
const open: ArPipeline[] = [];

beforeAll(async () => {
  pkg = await makeArPackage();
});

afterAll(async () => {
  await Promise.all(open.map((p) => p.release()));
  await removeArPackages();
});

async function pipeline(continuous: boolean, maxBatch: number): Promise<ArPipeline> {
  const p = await ArPipeline.create(pkg, arPipelineOptions('greedy', { maxBatch, continuous }));
  open.push(p);
  return p;
}

function observation(seed: number): ClientObservation {
  const o = new TabletopSim({ seed }).observe();
  const frame: RawFrame = { ...o.image, data: Uint8Array.from(o.image.data) };
  return { frame, instruction: o.instruction, state: Array.from(o.state) };
}

/** Until `done()` holds, checked once per turn of the event loop. */
async function until(done: () => boolean): Promise<void> {
  for (let turns = 0; !done(); turns++) {
    if (turns > 1_000_000) throw new Error('the condition never held');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('the bridge with a continuously batching pipeline', () => {
  it('hands over up to max_batch requests at once, each answered with its own chunk', async () => {
    const alone = await pipeline(false, 1);
    const p = await pipeline(true, 2);
    const server = await BridgeServer.start(p, { bind: LOOPBACK, maxBatch: 4 });
    const clients = [0, 1, 2, 3].map(() =>
      BridgeClient.connect(server.endpoint, { timeoutMs: 20_000 }),
    );
    try {
      // Capped by the pipeline's active set.
      expect(server.maxBatch).toBe(2);
      expect(server.continuous).toBe(true);
      const sent = clients.map((_, i) => observation(20 + i));
      const got = await Promise.all(clients.map((c, i) => c.infer(sent[i] as ClientObservation)));
      for (const [i, chunk] of got.entries()) {
        const o = sent[i] as ClientObservation;
        const mine = await alone.infer({
          frame: o.frame as RawFrame,
          instruction: o.instruction,
          state: o.state,
        });
        expect(Array.from(chunk.actions)).toEqual(Array.from(mine.actions));
      }
      const batching = p.batching;
      expect(batching?.admitted).toBe(4);
      expect(batching?.max_active).toBeLessThanOrEqual(2);
      // No batch of the batch-at-once worker ran.
      expect(server.stats().batches.count).toBe(0);
      expect(server.stats().replies.actions).toBe(4);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  });

  it('answers the requests in flight when it closes, and a stale request with stale', async () => {
    const p = await pipeline(true, 4);
    const server = await BridgeServer.start(p, { bind: LOOPBACK, maxRequestAgeMs: 1000 });
    const clients = [0, 1].map(() => BridgeClient.connect(server.endpoint, { timeoutMs: 20_000 }));
    try {
      const old = await clients[0]?.infer({ ...observation(30), stamp: Date.now() - 60_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(old).toMatchObject({ code: 'stale', field: 'stamp' });
      const replies = clients.map((c, i) => c.infer(observation(31 + i)));
      await until(() => (p.batching?.steps ?? 0) >= 1);
      await server.close();
      const chunks = await Promise.all(replies);
      expect(chunks.map((c) => c.actions.length)).toEqual([16, 16]);
      expect(p.batching?.admitted).toBe(2);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  });

  it('runs batches to the end when the pipeline batches at once (continuous off)', async () => {
    const p = await pipeline(false, 4);
    const server = await BridgeServer.start(p, { bind: LOOPBACK, maxBatch: 4, maxWaitMs: 200 });
    const clients = [0, 1, 2].map(() =>
      BridgeClient.connect(server.endpoint, { timeoutMs: 20_000 }),
    );
    try {
      expect(server.continuous).toBe(false);
      await Promise.all(clients.map((c, i) => c.infer(observation(40 + i))));
      expect(server.stats().batches.mean_size).toBeGreaterThan(1);
      expect(p.batching).toBeUndefined();
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  });
});
