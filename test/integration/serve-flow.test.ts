/**
 * `vla-node serve --model models/tiny-vla-flow` as a user runs it (the built CLI, a real process on
 * 127.0.0.1), driven by the real BridgeClient: two cameras per request, seeded noise, typed errors
 * for requests whose cameras do not fit, and the server serving on after them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServe } from '../../src/cli/serve.js';
import type { RawFrame } from '../../src/ingest/index.js';
import { loadFlowPackage, type FlowManifest } from '../../src/model/flow-manifest.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import {
  BridgeClient,
  BridgeError,
  type ClientObservation,
} from '../../src/transports/zmq/index.js';
import { FLOW_DIR } from '../flow/package.js';
import { ROOT } from '../helpers.js';

const CLI = `${ROOT}bin/vla-node.js`;

let server: ChildProcess;
let stderr = '';
let stdout = '';
let endpoint: string;
let client: BridgeClient;
let manifest: FlowManifest;

beforeAll(async () => {
  manifest = (await loadFlowPackage(FLOW_DIR)).manifest;
  server = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--model',
      FLOW_DIR,
      '--bind',
      'tcp://127.0.0.1:*',
      '--set',
      'backend.intra_op_threads=1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  server.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  for (let waited = 0; !stderr.includes('Ctrl-C stops'); waited += 20) {
    if (waited > 60_000 || server.exitCode !== null)
      throw new Error(`serve did not start:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const found = /serving \S+ on (tcp:\/\/\S+) /.exec(stderr)?.[1];
  if (found === undefined) throw new Error(`no endpoint in:\n${stderr}`);
  endpoint = found;
  client = BridgeClient.connect(endpoint, { timeoutMs: 20_000 });
}, 90_000);

afterAll(async () => {
  await client.close();
  if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
});

/** One scene of the simulator seen by both of its cameras (named). */
function observation(seed: number, extra: Partial<ClientObservation> = {}): ClientObservation {
  const sim = new TabletopSim({ seed });
  const o = sim.observe();
  const copy = (f: RawFrame): RawFrame => ({ ...f, data: Uint8Array.from(f.data) });
  return {
    cameras: [
      { camera: 'table', frame: copy(o.image) },
      { camera: 'wrist', frame: copy(sim.wristImage()) },
    ],
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

describe('vla-node serve with a flow package', () => {
  it('announces the cameras in its welcome', async () => {
    const welcome = await client.hello('flow-test');
    expect(welcome.model.name).toBe(manifest.name);
    expect(welcome.model.cameras).toBe(2);
    expect(welcome.model.camera_names).toEqual(manifest.cameras.map((c) => c.name));
    expect(welcome.model.chunk_length).toBe(manifest.chunk.horizon);
    expect(welcome.model.action_dim).toBe(manifest.chunk.action_dim);
    expect(stderr).toContain('cameras table + wrist');
    expect(stderr).toContain('its pipeline runs no batches): serving one request at a time');
  });

  it('answers two cameras in one request with a horizon × action_dim chunk of finite values within the limits', async () => {
    const chunk = await client.infer(observation(4, { seed: 11 }));
    const { horizon, action_dim: A } = manifest.chunk;
    expect(chunk.horizon).toBe(horizon);
    expect(chunk.actionDim).toBe(A);
    expect(chunk.actions.length).toBe(horizon * A);
    chunk.actions.forEach((v, i) => {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(manifest.action.min[i % A] as number);
      expect(v).toBeLessThanOrEqual(manifest.action.max[i % A] as number);
    });
    expect(chunk.tokens.total).toBe(
      manifest.cameras.reduce((n, c) => n + c.patch_grid.width * c.patch_grid.height, 0),
    );
  });

  it('gives identical actions for the same seed twice, and others for another seed', async () => {
    const first = await client.infer(observation(4, { seed: 1234 }));
    const again = await client.infer(observation(4, { seed: 1234 }));
    expect(Array.from(again.actions)).toEqual(Array.from(first.actions));
    const other = await client.infer(observation(4, { seed: 1235 }));
    expect(Array.from(other.actions)).not.toEqual(Array.from(first.actions));
  });

  it('derives the seed of a request without one from its stamp', async () => {
    // Within serve.max_request_age_ms of now, or the request is stale.
    const stamp = Date.now();
    const a = await client.infer(observation(4, { stamp }));
    const b = await client.infer(observation(4, { stamp }));
    expect(Array.from(b.actions)).toEqual(Array.from(a.actions));
    const c = await client.infer(observation(4, { stamp: stamp + 1 }));
    expect(Array.from(c.actions)).not.toEqual(Array.from(a.actions));
  });

  it('refuses a request without the wrist camera with a typed error, then serves the next one', async () => {
    const full = observation(6, { seed: 5 });
    const tableOnly = { ...full, cameras: full.cameras?.slice(0, 1) ?? [] };
    const error = await bridgeError(client.infer(tableOnly));
    expect(error.code).toBe('invalid');
    expect(error.field).toBe('images');
    expect(error.message).toContain('"wrist"');
    const chunk = await client.infer(full);
    expect(chunk.actions.length).toBe(manifest.chunk.horizon * manifest.chunk.action_dim);
  });

  it('refuses an unknown camera and a bad seed naming the field', async () => {
    const full = observation(6);
    const cameras = [...(full.cameras ?? [])];
    const table = cameras[0];
    if (table === undefined) throw new Error('expected the table camera');
    const extra = { camera: 'depth', frame: table.frame as RawFrame };
    const unknown = await bridgeError(client.infer({ ...full, cameras: [...cameras, extra] }));
    expect(unknown.code).toBe('invalid');
    expect(unknown.field).toBe('images[2].camera');
    const seed = await bridgeError(client.infer({ ...full, seed: -3 }));
    expect(seed.field).toBe('seed');
    const frame = await bridgeError(
      client.infer({
        ...full,
        cameras: [table, { camera: 'wrist', frame: { ...extra.frame, data: new Uint8Array(10) } }],
      }),
    );
    expect(frame.code).toBe('invalid');
    expect(frame.field).toMatch(/^images\[1\]/);
    expect((await client.infer(full)).actions.length).toBeGreaterThan(0);
  });

  it('refuses the live view with a flow package before loading it', async () => {
    const io = { json: true, progress: () => undefined, result: () => undefined };
    await expect(
      runServe({ model: FLOW_DIR, bind: 'tcp://127.0.0.1:*', foxglove: '0' }, io),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'foxglove.enabled' });
  });

  it('stops on SIGTERM and reports what it served', async () => {
    const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/served \d+ requests \(\d+ chunks, \d+ errors: invalid [1-9]/);
  });
});
