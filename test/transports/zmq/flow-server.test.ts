/**
 * The library's BridgeServer serving a FlowPipeline (models/tiny-vla-flow) on 127.0.0.1 to real
 * BridgeClients: what a program embedding the bridge gets, beside `vla-node serve`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowPipeline } from '../../../src/flow/pipeline.js';
import type { RawFrame } from '../../../src/ingest/index.js';
import { loadFlowPackage, type FlowPackage } from '../../../src/model/flow-manifest.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import {
  BridgeClient,
  BridgeError,
  BridgeServer,
  type ClientObservation,
} from '../../../src/transports/zmq/index.js';
import { FLOW_DIR, NO_CACHES } from '../../flow/package.js';

let pkg: FlowPackage;
let pipeline: FlowPipeline;
let server: BridgeServer;
const clients: BridgeClient[] = [];

function connect(): BridgeClient {
  const c = BridgeClient.connect(server.endpoint, { timeoutMs: 20_000 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  pkg = await loadFlowPackage(FLOW_DIR);
  pipeline = await FlowPipeline.create(pkg, {
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
    caches: NO_CACHES,
    limits: { min: [], max: [], maxDeltaPerStep: 0 },
    intraOpThreads: 1,
  });
  server = await BridgeServer.start(pipeline, { bind: 'tcp://127.0.0.1:*', maxBatch: 4 });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  await pipeline.release();
});

/** Both cameras of one scene, unnamed (in the manifest's order: table, wrist). */
function unnamed(seed: number, extra: Partial<ClientObservation> = {}): ClientObservation {
  const sim = new TabletopSim({ seed });
  const o = sim.observe();
  const copy = (f: RawFrame): RawFrame => ({ ...f, data: Uint8Array.from(f.data) });
  return {
    cameras: [{ frame: copy(o.image) }, { frame: copy(sim.wristImage()) }],
    instruction: o.instruction,
    state: o.state,
    ...extra,
  };
}

async function bridgeError(p: Promise<unknown>): Promise<BridgeError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BridgeError);
  return error as BridgeError;
}

describe('BridgeServer with a FlowPipeline', () => {
  it('serves one request at a time and describes both cameras', () => {
    expect(server.maxBatch).toBe(1);
    const meta = server.metadata();
    expect(meta.model.cameras).toBe(pkg.manifest.cameras.length);
    expect(meta.model.camera_names).toEqual(pkg.manifest.cameras.map((c) => c.name));
    expect(meta.model.visual_tokens).toBe(pipeline.totalTokens);
    expect(meta.model.keep_count).toBe(pipeline.tokenBudget);
  });

  it('takes unnamed images in the manifest order, the same chunk as named ones', async () => {
    const client = connect();
    const obs = unnamed(9, { seed: 21 });
    const byOrder = await client.infer(obs);
    const [table, wrist] = obs.cameras ?? [];
    if (table === undefined || wrist === undefined) throw new Error('two cameras expected');
    const byName = await client.infer({
      ...obs,
      cameras: [
        { camera: 'wrist', frame: wrist.frame },
        { camera: 'table', frame: table.frame },
      ],
    });
    expect(Array.from(byName.actions)).toEqual(Array.from(byOrder.actions));
  });

  it('answers clients whose requests overlap, each its own chunk', async () => {
    const a = connect();
    const b = connect();
    const [ra, rb] = await Promise.all([
      a.infer(unnamed(2, { seed: 1 })),
      b.infer(unnamed(3, { seed: 1 })),
    ]);
    const alone = await connect().infer(unnamed(3, { seed: 1 }));
    expect(Array.from(rb.actions)).toEqual(Array.from(alone.actions));
    expect(Array.from(ra.actions)).not.toEqual(Array.from(rb.actions));
  });

  it('refuses the wrong number of unnamed images and a keep_count, then serves on', async () => {
    const client = connect();
    const obs = unnamed(4);
    const three = await bridgeError(
      client.infer({ ...obs, cameras: [...(obs.cameras ?? []), ...(obs.cameras ?? []).slice(1)] }),
    );
    expect(three.code).toBe('invalid');
    expect(three.field).toBe('images');
    const keep = await bridgeError(client.infer({ ...obs, keepCount: 10 }));
    expect(keep.field).toBe('keep_count');
    await client.reset();
    expect((await client.infer(obs)).actions.length).toBe(
      pkg.manifest.chunk.horizon * pkg.manifest.chunk.action_dim,
    );
  });
});
