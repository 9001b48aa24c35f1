import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import sharp from 'sharp';
import { capability, curveKeyPair, Request as ReqSocket } from 'zeromq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServe } from '../../../src/cli/serve.js';
import type { CommandIo } from '../../../src/cli/command.js';
import { ConfigError } from '../../../src/errors.js';
import { loadModelPackage, type ModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import {
  BridgeClient,
  BridgeError,
  BridgeServer,
  encodeMessage,
  parseReply,
  type ActionsReply,
  parseClientKeys,
  z85Decode,
  z85Encode,
  type BridgePipeline,
  type ErrorReply,
} from '../../../src/transports/zmq/index.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { copyWithManifest, removeCopies } from '../../model/package.js';
import { inferRequest, RawPeer, simObservation, slowPipeline } from './support.js';

const LOOPBACK = 'tcp://127.0.0.1:*';

let model: ModelPackage;
let pipeline: VlaPipeline;
let server: BridgeServer;
let client: BridgeClient;

beforeAll(async () => {
  model = await loadModelPackage(TINY_VLA);
  pipeline = await VlaPipeline.create(model, testPipelineOptions());
  server = await BridgeServer.start(pipeline, { bind: LOOPBACK });
  client = BridgeClient.connect(server.endpoint, { timeoutMs: 10_000 });
});
afterAll(async () => {
  await removeCopies();
  await client.close();
  await server.close();
  await pipeline.release();
});

function close(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  for (const [i, v] of expected.entries())
    expect(Math.abs((actual[i] ?? NaN) - v)).toBeLessThan(1e-5);
}

describe('BridgeServer', () => {
  it('says hello with the manifest’s metadata', async () => {
    const m = model.manifest;
    const welcome = await client.hello();
    expect(welcome).toMatchObject({
      v: 1,
      type: 'welcome',
      protocol: 1,
      supported_versions: [1],
      server: 'vla-node',
      model: {
        name: m.name,
        image: { width: m.image.width, height: m.image.height, resize: m.image.resize },
        cameras: 1,
        action_dim: m.chunk.action_dim,
        chunk_length: m.chunk.horizon,
        control_rate_hz: m.control_rate_hz,
        action_names: m.action.names,
        state_names: m.state.names,
        visual_tokens: 144,
      },
      limits: { max_queue: 8, max_image_width: 4096, max_image_bytes: 32 * 1024 * 1024 },
    });
    expect(welcome.client_id).toMatch(/^[0-9a-f]+$/);
    expect(welcome.encodings).toEqual(expect.arrayContaining(['rgb8', 'bgr8', 'jpeg', 'png']));
  });

  it('answers ping', async () => {
    const pong = await client.ping();
    expect(pong.type).toBe('pong');
    expect(Math.abs(pong.server_time - Date.now())).toBeLessThan(5000);
  });

  it('returns the chunk the in-process pipeline computes, with its metadata and timing', async () => {
    const { obs } = simObservation(3);
    const expected = await pipeline.infer(obs);
    const got = await client.infer({ ...obs, stamp: obs.stamp ?? 0 });
    close(got.actions, expected.actions);
    expect(got.horizon).toBe(model.manifest.chunk.horizon);
    expect(got.actionDim).toBe(model.manifest.chunk.action_dim);
    expect(got.dt).toBeCloseTo(1 / model.manifest.control_rate_hz, 9);
    expect(got.sourceStamp).toBe(obs.stamp);
    expect(got.sequence).toBe(expected.sequence + 1);
    expect(got.tokens).toEqual({ total: 144, kept: 144 });
    expect(got.latencyMs).toBeGreaterThan(0);
    const t = got.serverTiming;
    expect(t.pipeline_ms).toBeCloseTo(got.latencyMs, 6);
    expect(t.total_ms).toBeGreaterThanOrEqual(t.pipeline_ms);
    for (const key of [
      'queue_ms',
      'preprocess_ms',
      'encode_ms',
      'prune_ms',
      'policy_ms',
    ] as const) {
      expect(t[key]).toBeGreaterThanOrEqual(0);
    }
  });

  it('accepts JPEG bytes', async () => {
    const { obs } = simObservation(4);
    const frame = obs.frame as { width: number; height: number; data: Uint8Array };
    const jpeg = await sharp(frame.data, {
      raw: { width: frame.width, height: frame.height, channels: 3 },
    })
      .jpeg({ quality: 95 })
      .toBuffer();
    const encoded = { ...obs, frame: { kind: 'encoded', data: jpeg } as const };
    const expected = await pipeline.infer(encoded);
    const got = await client.infer({ ...encoded, stamp: Date.now() });
    close(got.actions, expected.actions);
  });

  it('speaks to REQ sockets (empty delimiter frame)', async () => {
    const req = new ReqSocket({ linger: 0, receiveTimeout: 5000 });
    try {
      req.connect(server.endpoint);
      await req.send(encodeMessage({ v: 1, id: 'r', type: 'ping' }));
      const [frame] = await req.receive();
      expect(parseReply(frame as Buffer)).toMatchObject({ type: 'pong', id: 'r' });
    } finally {
      req.close();
    }
  });

  describe('errors', () => {
    let peer: RawPeer;
    beforeAll(() => {
      peer = new RawPeer(server.endpoint);
    });
    afterAll(() => {
      peer.close();
    });

    const infer = (patch: Record<string, unknown>) => pack({ ...inferRequest(3, 'e'), ...patch });
    it.each<[string, () => Uint8Array | Uint8Array[], ErrorReply['code'], string | undefined]>([
      [
        'an extension type',
        () => pack({ v: 1, id: 'e', type: 'ping', at: new Date() }),
        'invalid',
        'message',
      ],
      ['version 2', () => pack({ v: 2, id: 'e', type: 'ping' }), 'incompatible', 'v'],
      ['an unknown type', () => pack({ v: 1, id: 'e', type: 'shutdown' }), 'invalid', 'type'],
      ['the wrong state length', () => infer({ state: [0.5, 0.5, 0.5] }), 'invalid', 'state'],
      [
        'two images for a one-camera model',
        () => {
          const r = inferRequest(3, 'e');
          return encodeMessage({ ...r, images: [...r.images, ...r.images] });
        },
        'invalid',
        'images',
      ],
      [
        'keep_count above the token count',
        () => infer({ keep_count: 145 }),
        'invalid',
        'keep_count',
      ],
      ['an old stamp', () => infer({ stamp: Date.now() - 60_000 }), 'stale', 'stamp'],
      ['random bytes', () => Uint8Array.from([0x13, 0x37, 0xff]), 'invalid', 'message'],
      [
        'three frames',
        () => [pack({ v: 1, type: 'ping' }), Uint8Array.of(1), Uint8Array.of(2)],
        'invalid',
        'message',
      ],
      [
        'PNG bytes that do not decode',
        () => {
          const png = Uint8Array.from([
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0,
            0, 0, 8, 0, 0, 0, 8, 0, 0,
          ]);
          return infer({ images: [{ encoding: 'png', data: png }] });
        },
        'invalid',
        // The request path the protocol documents, not the pipeline's name for its one frame.
        'images[0].data',
      ],
    ])('answers %s', async (_name, make, code, field) => {
      const reply = await peer.exchange(make());
      expect(reply.type).toBe('error');
      const e = reply as ErrorReply;
      expect(e.code).toBe(code);
      if (field !== undefined) expect(e.field).toBe(field);
      expect(e.message).toMatch(/Expected|could not/);
    });

    it('echoes the request id in errors and keeps serving', async () => {
      const reply = await peer.request({ v: 1, id: 99, type: 'infer', instruction: 3 });
      expect(reply).toMatchObject({ type: 'error', id: 99, code: 'invalid', field: 'instruction' });
      const ok = (await peer.request(inferRequest(5, 100))) as ActionsReply;
      expect(ok.type).toBe('actions');
      expect(ok.id).toBe(100);
      expect(ok.actions.shape).toEqual([
        model.manifest.chunk.horizon,
        model.manifest.chunk.action_dim,
      ]);
    });

    it('throws the server’s code from the client', async () => {
      const { obs } = simObservation(3);
      await expect(client.infer({ ...obs, state: [1, 2, 3] })).rejects.toMatchObject({
        name: 'BridgeError',
        code: 'invalid',
        field: 'state',
      });
    });
  });
});

describe('queueing and shutdown (slow pipeline double)', () => {
  it('answers busy when the queue is full instead of growing it', async () => {
    const slow = await BridgeServer.start(slowPipeline(pipeline, 150), {
      bind: LOOPBACK,
      maxQueue: 1,
    });
    const c = BridgeClient.connect(slow.endpoint);
    try {
      const results = await Promise.allSettled(
        [3, 4, 5, 6].map((seed) => c.infer({ ...simObservation(seed).obs, stamp: Date.now() })),
      );
      const codes = results.map((r) =>
        r.status === 'fulfilled' ? 'ok' : (r.reason as BridgeError).code,
      );
      // One runs, one waits in the single queue place, the other two are refused.
      expect(codes.filter((x) => x === 'ok')).toHaveLength(2);
      expect(codes.filter((x) => x === 'busy')).toHaveLength(2);
      expect(slow.stats().errors.busy).toBe(2);
    } finally {
      await c.close();
      await slow.close();
    }
  });

  it('answers stale when a request grew too old while it waited', async () => {
    const slow = await BridgeServer.start(slowPipeline(pipeline, 200), {
      bind: LOOPBACK,
      maxRequestAgeMs: 100,
    });
    const c = BridgeClient.connect(slow.endpoint);
    try {
      const first = c.infer({ ...simObservation(3).obs, stamp: Date.now() });
      const second = c.infer({ ...simObservation(4).obs, stamp: Date.now() });
      await expect(first).resolves.toMatchObject({ horizon: 8 });
      await expect(second).rejects.toMatchObject({ code: 'stale', field: 'stamp' });
    } finally {
      await c.close();
      await slow.close();
    }
  });

  it('answers every request in flight on close: the running one with its chunk, the queued ones with internal', async () => {
    const slow = await BridgeServer.start(slowPipeline(pipeline, 300), {
      bind: LOOPBACK,
      maxQueue: 4,
    });
    const c = BridgeClient.connect(slow.endpoint, { timeoutMs: 5000 });
    try {
      await c.ping();
      const inflight = [3, 4, 5].map((seed) =>
        c.infer({ ...simObservation(seed).obs, stamp: Date.now() }),
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(slow.queued).toBe(2);
      const closing = slow.close();
      const results = await Promise.allSettled(inflight);
      await closing;
      expect(results[0]?.status).toBe('fulfilled');
      for (const r of results.slice(1)) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({
          code: 'internal',
          message: 'server shutting down',
        });
      }
      expect(slow.closed).toBe(true);
    } finally {
      await c.close();
      await slow.close();
    }
  });
});

describe('per-client state', () => {
  it('keeps temporal pruning state per client and clears it on reset', async () => {
    const temporal = await VlaPipeline.create(
      model,
      testPipelineOptions({
        pruning: {
          strategy: 'temporal',
          keepRatio: 0.25,
          keepCount: 0,
          seed: 0,
          minKeepRatio: 0.1,
        },
      }),
    );
    const resets: (string | undefined)[] = [];
    const spy: BridgePipeline = {
      model: temporal.model,
      totalTokens: temporal.totalTokens,
      tokenBudget: temporal.tokenBudget,
      pruner: {
        reset: (stream?: string) => {
          resets.push(stream);
          temporal.pruner.reset(stream);
        },
      },
      infer: (obs) => temporal.infer(obs),
    };
    const s = await BridgeServer.start(spy, { bind: LOOPBACK });
    const a = BridgeClient.connect(s.endpoint);
    const b = BridgeClient.connect(s.endpoint);
    try {
      const idA = (await a.hello()).client_id;
      const idB = (await b.hello()).client_id;
      expect(idA).not.toBe(idB);
      const f1 = simObservation(3).obs;
      const f2 = simObservation(11).obs;
      await a.infer({ ...f1, stamp: Date.now() });
      await a.infer({ ...f2, stamp: Date.now() });
      await a.reset();
      expect(resets).toEqual([idA]);
      const afterReset = await a.infer({ ...f2, stamp: Date.now() });
      const fresh = await b.infer({ ...f2, stamp: Date.now() });
      expect(afterReset.tokens.kept).toBe(36);
      // After the reset, A's next frame is pruned as the first frame of a stream, like B's first.
      expect(Array.from(afterReset.actions)).toEqual(Array.from(fresh.actions));
      // Per-request keep_count overrides the budget for that request only.
      const few = await b.infer({ ...f1, stamp: Date.now(), keepCount: 10 });
      expect(few.tokens.kept).toBe(10);
      expect((await b.infer({ ...f1, stamp: Date.now() })).tokens.kept).toBe(36);
    } finally {
      await a.close();
      await b.close();
      await s.close();
      await temporal.release();
    }
  });
});

describe('bind policy', () => {
  it('refuses a non-loopback bind without CURVE keys', async () => {
    await expect(BridgeServer.start(pipeline, { bind: 'tcp://0.0.0.0:0' })).rejects.toBeInstanceOf(
      ConfigError,
    );
    await expect(BridgeServer.start(pipeline, { bind: 'tcp://*:5555' })).rejects.toMatchObject({
      field: 'bind',
    });
  });

  it('`vla-node serve` refuses it before loading the model', async () => {
    const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
    await expect(
      runServe({ bind: 'tcp://0.0.0.0:5555' }, io, Promise.resolve()),
    ).rejects.toMatchObject({ name: 'ConfigError', code: 'INVALID_CONFIG', field: 'bind' });
  });
});

describe.skipIf(capability.curve !== true)('CURVE', () => {
  it('serves clients that know the server key and nobody else', async () => {
    const keys = curveKeyPair();
    const s = await BridgeServer.start(pipeline, {
      bind: LOOPBACK,
      curveSecretKey: keys.secretKey,
    });
    const good = BridgeClient.connect(s.endpoint, { curveServerKey: keys.publicKey });
    const plain = BridgeClient.connect(s.endpoint, { timeoutMs: 300 });
    try {
      expect((await good.ping()).type).toBe('pong');
      await expect(plain.ping()).rejects.toMatchObject({ code: 'timeout' });
    } finally {
      await good.close();
      await plain.close();
      await s.close();
    }
  });
});

describe.skipIf(capability.curve !== true)('CURVE client allow-list', () => {
  it('serves the listed clients, refuses the others and keeps serving', async () => {
    const server = curveKeyPair();
    const listed = curveKeyPair();
    const other = curveKeyPair();
    const lines: string[] = [];
    const s = await BridgeServer.start(pipeline, {
      bind: LOOPBACK,
      curveSecretKey: server.secretKey,
      curveClientKeys: [listed.publicKey],
      log: (line) => lines.push(line),
    });
    const connect = (pair: typeof listed, timeoutMs: number): BridgeClient =>
      BridgeClient.connect(s.endpoint, {
        curveServerKey: server.publicKey,
        curveKeyPair: pair,
        timeoutMs,
      });
    const good = connect(listed, 5000);
    const refused = connect(other, 300);
    // A client that does not even present a key pair of its own (fresh keys) is refused too.
    const fresh = BridgeClient.connect(s.endpoint, {
      curveServerKey: server.publicKey,
      timeoutMs: 300,
    });
    try {
      expect((await good.ping()).type).toBe('pong');
      await expect(refused.ping()).rejects.toMatchObject({ code: 'timeout' });
      await expect(fresh.ping()).rejects.toMatchObject({ code: 'timeout' });
      const chunk = await good.infer({ ...simObservation(3).obs, stamp: Date.now() });
      expect(chunk.horizon).toBe(8);
      // A second connection with the listed key is admitted as well.
      const again = connect(listed, 5000);
      try {
        expect((await again.ping()).type).toBe('pong');
      } finally {
        await again.close();
      }
      const zap = s.stats().curve_clients;
      expect(zap?.admitted).toBeGreaterThanOrEqual(2);
      expect(zap?.refused).toBeGreaterThanOrEqual(2);
      expect(lines.some((l) => l.includes(`refused CURVE client ${other.publicKey}`))).toBe(true);
      expect(s.stats().requests).toBe(3); // nothing of the refused clients reached the server
    } finally {
      await good.close();
      await refused.close();
      await fresh.close();
      await s.close();
    }
  });

  it('lets two servers in one process keep allow-lists of their own', async () => {
    const keys = curveKeyPair();
    const a = curveKeyPair();
    const b = curveKeyPair();
    const sa = await BridgeServer.start(pipeline, {
      bind: LOOPBACK,
      curveSecretKey: keys.secretKey,
      curveClientKeys: [a.publicKey],
    });
    const sb = await BridgeServer.start(pipeline, {
      bind: LOOPBACK,
      curveSecretKey: keys.secretKey,
      curveClientKeys: [b.publicKey],
    });
    const open = (endpoint: string, pair: typeof a, timeoutMs = 5000): BridgeClient =>
      BridgeClient.connect(endpoint, {
        curveServerKey: keys.publicKey,
        curveKeyPair: pair,
        timeoutMs,
      });
    const clients = [
      open(sa.endpoint, a),
      open(sb.endpoint, b),
      open(sa.endpoint, b, 300),
      open(sb.endpoint, a, 300),
    ] as const;
    try {
      expect((await clients[0].ping()).type).toBe('pong');
      expect((await clients[1].ping()).type).toBe('pong');
      await expect(clients[2].ping()).rejects.toMatchObject({ code: 'timeout' });
      await expect(clients[3].ping()).rejects.toMatchObject({ code: 'timeout' });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await sa.close();
      await sb.close();
    }
  });

  it('replaces the allow-list for new connections; a bad list changes nothing', async () => {
    const keys = curveKeyPair();
    const a = curveKeyPair();
    const b = curveKeyPair();
    const s = await BridgeServer.start(pipeline, {
      bind: LOOPBACK,
      curveSecretKey: keys.secretKey,
      curveClientKeys: [a.publicKey],
    });
    const open = (pair: typeof a, timeoutMs = 5000): BridgeClient =>
      BridgeClient.connect(s.endpoint, {
        curveServerKey: keys.publicKey,
        curveKeyPair: pair,
        timeoutMs,
      });
    const clients = [open(a), open(b, 300)];
    try {
      expect((await clients[0]?.ping())?.type).toBe('pong');
      await expect(clients[1]?.ping()).rejects.toMatchObject({ code: 'timeout' });
      s.replaceClientKeys([b.publicKey]);
      clients.push(open(b), open(a, 300));
      expect((await clients[2]?.ping())?.type).toBe('pong');
      await expect(clients[3]?.ping()).rejects.toMatchObject({ code: 'timeout' });
      // Connected before the change: a stays until it reconnects.
      expect((await clients[0]?.ping())?.type).toBe('pong');
      expect(() => {
        s.replaceClientKeys([]);
      }).toThrow(ConfigError);
      expect(() => {
        s.replaceClientKeys(['short']);
      }).toThrow(/client key 0/);
      clients.push(open(b));
      expect((await clients[4]?.ping())?.type).toBe('pong');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await s.close();
    }
    const plain = await BridgeServer.start(pipeline, { bind: LOOPBACK });
    try {
      expect(() => {
        plain.replaceClientKeys([a.publicKey]);
      }).toThrow(/started with a CURVE client allow-list/);
    } finally {
      await plain.close();
    }
  });

  it('needs a CURVE key', async () => {
    await expect(
      BridgeServer.start(pipeline, { bind: LOOPBACK, curveClientKeys: [curveKeyPair().publicKey] }),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'serve.curve_client_keys_file' });
  });

  it('`vla-node serve` reads the keys file and refuses it without a CURVE key before loading the model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vla-keys-'));
    try {
      const file = join(dir, 'clients.txt');
      await writeFile(file, `${curveKeyPair().publicKey} robot-1\n`);
      const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
      await expect(
        runServe({ 'curve-client-keys-file': file }, io, Promise.resolve()),
      ).rejects.toMatchObject({ name: 'ConfigError', field: 'serve.curve_client_keys_file' });
      await writeFile(file, 'not a key\n');
      await expect(
        runServe(
          { 'curve-client-keys-file': file, 'curve-secret-key': curveKeyPair().secretKey },
          io,
          Promise.resolve(),
        ),
      ).rejects.toThrow(/line 1/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(capability.curve !== true)('`vla-node serve`', () => {
  it('serves batches to the listed clients only, and reports them on exit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vla-serve-'));
    const model = await copyWithManifest((m) => {
      const graphs = m.graphs as Record<string, Record<string, { shape: unknown[] }[]>>;
      for (const graph of Object.values(graphs)) {
        for (const tensors of Object.values(graph)) for (const t of tensors) t.shape[0] = 'batch';
      }
    });
    const server = curveKeyPair();
    const listed = curveKeyPair();
    const keysFile = join(dir, 'clients.txt');
    await writeFile(keysFile, `# the test client\n${listed.publicKey} test\n`);
    const lines: string[] = [];
    let endpoint: (value: string) => void = () => undefined;
    const bound = new Promise<string>((resolve) => {
      endpoint = resolve;
    });
    let stop: () => void = () => undefined;
    const until = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const results: unknown[] = [];
    const io: CommandIo = {
      json: true,
      progress: (line) => {
        lines.push(line);
        const match = /serving \S+ on (tcp:\/\/\S+) /.exec(line);
        if (match?.[1] !== undefined) endpoint(match[1]);
      },
      result: (value) => results.push(value),
    };
    const serving = runServe(
      {
        bind: 'tcp://127.0.0.1:*',
        model,
        'curve-secret-key': server.secretKey,
        'curve-client-keys-file': keysFile,
        'max-batch': '3',
        set: ['backend.warmup_runs=1'],
      },
      io,
      until,
    );
    const at = await Promise.race([bound, serving.then(() => '')]);
    const clients = [listed, listed, curveKeyPair()].map((pair, i) =>
      BridgeClient.connect(at, {
        curveServerKey: server.publicKey,
        curveKeyPair: pair,
        timeoutMs: i === 2 ? 300 : 10_000,
      }),
    );
    try {
      const chunks = await Promise.all(
        clients
          .slice(0, 2)
          .map((c, i) => c.infer({ ...simObservation(3 + i).obs, stamp: Date.now() })),
      );
      expect(chunks.map((c) => c.horizon)).toEqual([8, 8]);
      await expect(clients[2]?.ping()).rejects.toMatchObject({ code: 'timeout' });

      // SIGHUP re-reads the keys file: a key added to it gets in on a new connection.
      const late = curveKeyPair();
      await writeFile(keysFile, `${listed.publicKey} test\n${late.publicKey} late\n`);
      const hangup = async (expected: RegExp): Promise<void> => {
        const seen = lines.length;
        process.kill(process.pid, 'SIGHUP');
        for (let waited = 0; !lines.slice(seen).some((l) => expected.test(l)); waited += 20) {
          if (waited > 5000) throw new Error(`no ${String(expected)} in:\n${lines.join('\n')}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await hangup(/SIGHUP: 2 client keys allowed from .*clients\.txt/);
      const admitted = BridgeClient.connect(at, {
        curveServerKey: server.publicKey,
        curveKeyPair: late,
        timeoutMs: 10_000,
      });
      clients.push(admitted);
      expect((await admitted.ping()).type).toBe('pong');
      // A broken file is reported and the current list stays.
      await writeFile(keysFile, 'not a key\n');
      await hangup(/SIGHUP: kept the current client allow-list: .*line 1/);
      const again = BridgeClient.connect(at, {
        curveServerKey: server.publicKey,
        curveKeyPair: late,
        timeoutMs: 10_000,
      });
      clients.push(again);
      expect((await again.ping()).type).toBe('pong');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      stop();
    }
    expect(await serving).toBe(0);
    expect(lines.join('\n')).toMatch(/CURVE, 1 client key allowed\): .*batches of up to 3/);
    expect(results[0]).toMatchObject({
      max_batch: 3,
      stats: { replies: { actions: 2 }, curve_clients: { admitted: 4 } },
    });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('client key files and Z85', () => {
  it('round-trips CURVE keys through Z85', () => {
    const { publicKey } = curveKeyPair();
    const bytes = z85Decode(publicKey);
    expect(bytes).toHaveLength(32);
    expect(z85Encode(bytes)).toBe(publicKey);
    // RFC 32's test vector.
    expect(z85Encode(Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe(
      'HelloWorld',
    );
  });

  it('reads one key per line with labels, comments and blank lines, without duplicates', () => {
    const [a, b] = [curveKeyPair().publicKey, curveKeyPair().publicKey];
    const text = `# robots of lab 2\n\n${a} arm-left\n${b}\t arm-right\n${a}\n`;
    expect(parseClientKeys(text, 'clients.txt')).toEqual([a, b]);
  });

  it.each([
    // The bad token's length only: a wrong file (a private key) must not be echoed.
    ['a short key', 'abc', /line 1 of clients.txt but received a 3-character token/],
    ['a key of the wrong alphabet', '~'.repeat(40), /line 1/],
    ['a key whose groups overflow 32 bits', '%'.repeat(40), /line 1/],
    ['no key at all', '# nobody\n\n', /lists none/],
  ])('refuses %s', (_name, text, message) => {
    expect(() => parseClientKeys(text, 'clients.txt')).toThrow(ConfigError);
    expect(() => parseClientKeys(text, 'clients.txt')).toThrow(message);
  });
});

describe('BridgeClient', () => {
  it('times out when nothing answers and rejects what is in flight when closed', async () => {
    const lonely = BridgeClient.connect('tcp://127.0.0.1:1', { timeoutMs: 100 });
    await expect(lonely.ping()).rejects.toMatchObject({ code: 'timeout' });
    const pending = lonely.ping();
    await lonely.close();
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
    await expect(lonely.ping()).rejects.toMatchObject({ code: 'closed' });
  });
});
