import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capability, curveKeyPair } from 'zeromq';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import { BridgeServer } from '../../../src/transports/zmq/index.js';
import { ROOT, testPipelineOptions, TINY_VLA } from '../../helpers.js';

const PYTHON = '/usr/bin/python3';
const CLIENT = join(ROOT, 'examples/python/client.py');

function pythonReason(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import zmq, msgpack'], { encoding: 'utf8' });
  if (probe.error !== undefined) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) {
    return `${PYTHON} cannot import zmq and msgpack (apt-get install -y python3-zmq python3-msgpack): ${probe.stderr.trim().split('\n').pop() ?? ''}`;
  }
  return undefined;
}

const reason = pythonReason();
if (reason !== undefined) console.warn(`skipping the Python client test: ${reason}`);

interface PythonResult {
  readonly server: {
    readonly model: string;
    readonly chunk_length: number;
    readonly protocol: number;
  };
  readonly dtype: string;
  readonly shape: number[];
  readonly actions: number[][];
  readonly source_stamp: number;
  readonly sequence: number;
}

describe.skipIf(reason !== undefined)('Python client (examples/python/client.py)', () => {
  let pipeline: VlaPipeline;
  let server: BridgeServer;
  let dir: string;

  beforeAll(async () => {
    pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
    // Python's start-up on a loaded machine can take longer than the default request age.
    server = await BridgeServer.start(pipeline, {
      bind: 'tcp://127.0.0.1:*',
      maxRequestAgeMs: 60_000,
    });
    dir = await mkdtemp(join(tmpdir(), 'vla-python-'));
  });
  afterAll(async () => {
    await server.close();
    await pipeline.release();
    await rm(dir, { recursive: true, force: true });
  });

  it('gets the chunk the in-process pipeline computes for the same frame', async () => {
    const o = new TabletopSim({ seed: 5 }).observe();
    const state = Array.from(o.state);
    await writeFile(join(dir, 'frame.rgb'), o.image.data);
    const stamp = Date.now();
    await writeFile(
      join(dir, 'obs.json'),
      JSON.stringify({
        instruction: o.instruction,
        state,
        stamp,
        image: {
          encoding: 'rgb8',
          width: o.image.width,
          height: o.image.height,
          file: 'frame.rgb',
        },
      }),
    );
    const expected = await pipeline.infer({
      frame: { ...o.image, data: o.image.data.slice() },
      instruction: o.instruction,
      state,
    });
    const { stdout } = await promisify(execFile)(
      PYTHON,
      [
        CLIENT,
        '--endpoint',
        server.endpoint,
        '--observation',
        join(dir, 'obs.json'),
        '--timeout-ms',
        '10000',
      ],
      { timeout: 30_000 },
    );
    const result = JSON.parse(stdout) as PythonResult;
    const m = pipeline.model.manifest;
    expect(result.server).toMatchObject({
      model: m.name,
      chunk_length: m.chunk.horizon,
      protocol: 1,
    });
    expect(result.dtype).toBe('float32');
    expect(result.shape).toEqual([m.chunk.horizon, m.chunk.action_dim]);
    expect(result.source_stamp).toBe(stamp);
    expect(result.sequence).toBe(expected.sequence + 1);
    const flat = result.actions.flat();
    expect(flat).toHaveLength(expected.actions.length);
    for (const [i, v] of expected.actions.entries()) {
      expect(Math.abs((flat[i] ?? NaN) - v)).toBeLessThan(1e-5);
    }
  });

  it('works with a synthesised frame', async () => {
    const { stdout } = await promisify(execFile)(
      PYTHON,
      [CLIENT, '--endpoint', server.endpoint, '--synthetic'],
      { timeout: 30_000 },
    );
    const result = JSON.parse(stdout) as PythonResult;
    expect(result.actions).toHaveLength(pipeline.model.manifest.chunk.horizon);
  });

  it.skipIf(capability.curve !== true)(
    'is served by a CURVE server with its key allow-listed, and refused without it',
    async () => {
      const serverKeys = curveKeyPair();
      const listed = curveKeyPair();
      const curve = await BridgeServer.start(pipeline, {
        bind: 'tcp://127.0.0.1:*',
        maxRequestAgeMs: 60_000,
        curveSecretKey: serverKeys.secretKey,
        curveClientKeys: [listed.publicKey],
      });
      try {
        const secretFile = join(dir, 'client.key');
        await writeFile(secretFile, `${listed.secretKey}\n`);
        const base = [CLIENT, '--endpoint', curve.endpoint, '--synthetic'];
        // `--option=KEY`: a Z85 key may start with '-', which argparse would take for an option.
        const withKey = [
          ...base,
          `--server-public-key=${serverKeys.publicKey}`,
          `--client-public-key=${listed.publicKey}`,
          '--client-secret-key-file',
          secretFile,
        ];
        const { stdout } = await promisify(execFile)(PYTHON, withKey, { timeout: 30_000 });
        const result = JSON.parse(stdout) as PythonResult;
        expect(result.actions).toHaveLength(pipeline.model.manifest.chunk.horizon);
        // A fresh key pair (not listed) gets no reply: the client times out and exits non-zero.
        const refused = promisify(execFile)(
          PYTHON,
          [...base, `--server-public-key=${serverKeys.publicKey}`, '--timeout-ms', '1500'],
          { timeout: 30_000 },
        );
        await expect(refused).rejects.toMatchObject({
          stderr: expect.stringMatching(/TimeoutError: no reply to hello/) as string,
        });
      } finally {
        await curve.close();
      }
    },
  );
});
