import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServe } from '../../../src/cli/serve.js';
import { ConfigError } from '../../../src/errors.js';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import { curveKeyPair } from 'zeromq';
import { parseClientKeys, readClientKeys } from '../../../src/transports/zmq/zap.js';
import {
  BridgeServer,
  checkBind,
  encodeMessage,
  type ErrorReply,
} from '../../../src/transports/zmq/index.js';
import { testPipelineOptions, ROOT, TINY_VLA } from '../../helpers.js';
import { inferRequest, RawPeer } from './support.js';

let pipeline: VlaPipeline;
let server: BridgeServer;
const log: string[] = [];

beforeAll(async () => {
  pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  server = await BridgeServer.start(pipeline, {
    bind: 'tcp://127.0.0.1:*',
    log: (line) => log.push(line),
  });
});
afterAll(async () => {
  await server.close();
  await pipeline.release();
});

async function noise(format: 'jpeg' | 'png'): Promise<Buffer> {
  const data = Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 251);
  const img = sharp(data, { raw: { width: 64, height: 64, channels: 3 } });
  return format === 'jpeg' ? img.jpeg().toBuffer() : img.png().toBuffer();
}

function float64State(values: readonly number[]) {
  const a = Float64Array.from(values);
  return { dtype: 'float64', shape: [a.length], data: new Uint8Array(a.buffer) };
}

async function exchange(message: Record<string, unknown>): Promise<ErrorReply> {
  const peer = new RawPeer(server.endpoint);
  try {
    const reply = await peer.exchange(encodeMessage(message as never));
    expect(reply.type).toBe('error');
    return reply as ErrorReply;
  } finally {
    peer.socket.close();
  }
}

describe('bridge hardening', () => {
  it.each(['jpeg', 'png'] as const)(
    'answers a truncated %s whose header is readable with invalid at images[0].data',
    async (format) => {
      const whole = await noise(format);
      const data = whole.subarray(0, Math.floor(whole.length * 0.6));
      const reply = await exchange({ ...inferRequest(3, 1), images: [{ encoding: format, data }] });
      expect(reply.code).toBe('invalid');
      expect(reply.field).toBe('images[0].data');
    },
  );

  it.each([3e37, -1e38, 1e300])(
    'answers a finite but absurd state value %s as the client’s error, not internal',
    async (v) => {
      const reply = await exchange({ ...inferRequest(3, 2), state: float64State([v, 0.5]) });
      expect(reply.code).toBe('invalid');
      expect(reply.field).toBe('state[0]');
    },
  );

  it('writes a hello’s client name into the log as one escaped line', async () => {
    const name = 'arm\n[bridge] hello from 00 (admin)\r\x1b[2J\x1b[31mred\u202e';
    const peer = new RawPeer(server.endpoint);
    try {
      const reply = await peer.exchange(
        encodeMessage({ v: 1, id: 1, type: 'hello', client: name } as never),
      );
      expect(reply.type).toBe('welcome');
    } finally {
      peer.socket.close();
    }
    const line = log.find((l) => l.includes('hello from') && l.includes('arm'));
    expect(line).toBeDefined();
    // eslint-disable-next-line no-control-regex
    expect(line).not.toMatch(/[\n\r\x1b\u202e]/);
    expect(line).toContain('arm\\n[bridge] hello from 00 (admin)\\r\\x1b[2J\\x1b[31mred\\u202e');
  });

  it('reads a client-keys file only when it is a regular file of at most 1 MiB (a FIFO would block)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vla-keys-'));
    try {
      const good = join(dir, 'clients.txt');
      writeFileSync(good, `${curveKeyPair().publicKey} robot-1\n`);
      await expect(readClientKeys(good)).resolves.toHaveLength(1);
      const fifo = join(dir, 'fifo');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const big = join(dir, 'big.txt');
      writeFileSync(big, `${curveKeyPair().publicKey}\n`.repeat(30_000));
      for (const [file, what] of [
        [fifo, 'is not a regular file'],
        [dir, 'is not a regular file'],
        [big, 'has 1230000 bytes'],
        [join(dir, 'missing.txt'), 'cannot be opened'],
      ] as const) {
        await expect(readClientKeys(file)).rejects.toMatchObject({
          name: 'ConfigError',
          field: 'serve.curve_client_keys_file',
          message: expect.stringContaining(what) as string,
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never echoes a token of a client-keys file that is not a key file', () => {
    const secret = 'hunter2-correct-horse-battery-staple';
    let error: unknown;
    try {
      parseClientKeys(`${secret} root\n`, '/etc/shadow-like');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('serve.curve_client_keys_file');
    expect((error as ConfigError).message).not.toContain('hunter2');
    expect((error as ConfigError).message).toContain(`${secret.length}-character token`);
  });
});

describe('serve bind checks', () => {
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => taken.close(resolve));
  });

  it.each([
    'tcp://127.0.0.1:5555;tcp://10.0.0.1:5555',
    'tcp://127.0.0.1:55 55',
    'tcp://127.0.0.1:99999',
    'tcp://127.0.0.1:0x10',
    'tcp://127.0.0.1',
    'ipc:///tmp/a;b',
    'inproc://a\nb',
  ])('refuses the bind string %j with a ConfigError naming bind', (bind) => {
    expect(() => {
      checkBind(bind, undefined);
    }).toThrow(ConfigError);
    try {
      checkBind(bind, undefined);
    } catch (e) {
      expect((e as ConfigError).field).toBe('bind');
      expect((e as ConfigError).message).not.toMatch(/\n/);
    }
  });

  it('refuses a port in use before loading the model', async () => {
    const progress: string[] = [];
    const io = { json: false, progress: (m: string) => progress.push(m), result: () => undefined };
    const error: unknown = await runServe({ bind: `tcp://127.0.0.1:${port}` }, io).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('bind');
    expect((error as ConfigError).message).toContain('in use');
    expect(progress.join('\n')).not.toContain('loading');
  });

  it('reports a port taken between the check and the bind as a ConfigError too', async () => {
    const error: unknown = await BridgeServer.start(pipeline, {
      bind: `tcp://127.0.0.1:${port}`,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('bind');
  });

  it('exits with a one-line typed error, no stack, from the CLI', () => {
    for (const bind of [`tcp://127.0.0.1:${port}`, 'tcp://127.0.0.1:5555;x']) {
      const r = spawnSync(process.execPath, [`${ROOT}bin/vla-node.js`, 'serve', '--bind', bind], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('ConfigError [INVALID_CONFIG]');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toContain('loading');
    }
  });
});
