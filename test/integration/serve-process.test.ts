import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capability, curveKeyPair, Router } from 'zeromq';
import { afterEach, describe, expect, it } from 'vitest';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { BridgeClient } from '../../src/transports/zmq/index.js';
import { ROOT } from '../helpers.js';

const CLI = `${ROOT}bin/vla-node.js`;

interface Served {
  readonly launcher: ChildProcess;
  readonly endpoint: string;
  /** The launcher's stderr so far (its child shares it). */
  stderr(): string;
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcess[] = [];

afterEach(() => {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

/**
 * `vla-node serve` as a user starts it (in a process group of its own), once it serves;
 * `onLoading` runs when it starts loading the model.
 */
async function serve(
  args: readonly string[] = [],
  onLoading?: (launcher: ChildProcess) => void,
): Promise<Served> {
  const launcher = spawn(process.execPath, [CLI, 'serve', '--bind', 'tcp://127.0.0.1:*', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.push(launcher);
  let err = '';
  let out = '';
  launcher.stderr.on('data', (d: Buffer) => (err += d.toString()));
  launcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    launcher.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  let loading = false;
  for (let waited = 0; !err.includes('Ctrl-C stops'); waited += 10) {
    if (waited > 60_000 || launcher.exitCode !== null) {
      throw new Error(`serve did not start:\n${err}`);
    }
    if (!loading && err.includes('loading ')) {
      loading = true;
      onLoading?.(launcher);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const endpoint = /serving \S+ on (tcp:\/\/\S+) /.exec(err)?.[1];
  if (endpoint === undefined) throw new Error(`no endpoint in:\n${err}`);
  return { launcher, endpoint, stderr: () => err, stdout: () => out, exited };
}

async function oneChunk(endpoint: string): Promise<Float32Array> {
  const client = BridgeClient.connect(endpoint, { timeoutMs: 10_000 });
  try {
    const obs = new TabletopSim({ seed: 3 }).observe();
    const chunk = await client.infer({
      frame: obs.image,
      instruction: obs.instruction,
      state: obs.state,
    });
    return chunk.actions;
  } finally {
    await client.close();
  }
}

/** Whether a fresh socket can bind `endpoint` (the server that held it has gone). */
async function canBind(endpoint: string): Promise<boolean> {
  const socket = new Router();
  try {
    await socket.bind(endpoint);
    return true;
  } catch {
    return false;
  } finally {
    socket.close();
  }
}

describe('vla-node serve as a process', () => {
  it('runs with the server V8 flags and stops gracefully on SIGTERM to the launcher', async () => {
    const s = await serve();
    expect(s.stderr()).toContain('node --max-semi-space-size=1');
    expect((await oneChunk(s.endpoint)).length).toBe(16);
    s.launcher.kill('SIGTERM');
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.stderr()).toContain('SIGTERM: shutting down');
    expect(s.stdout()).toMatch(/served 1 requests \(1 chunks/);
    expect(await canBind(s.endpoint)).toBe(true);
  });

  it('stops once on Ctrl-C, which reaches the launcher and the server', async () => {
    const s = await serve();
    const pid = s.launcher.pid;
    if (pid === undefined) throw new Error('no pid');
    process.kill(-pid, 'SIGINT'); // the whole process group, as a terminal does
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.stderr().match(/shutting down/g)).toHaveLength(1);
    expect(s.stdout()).toContain('served 0 requests');
  });

  it.skipIf(capability.curve !== true)(
    'takes a SIGHUP while the model loads as a reload once it serves, and keeps serving',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'vla-hup-'));
      try {
        const keys = join(dir, 'clients.txt');
        await writeFile(keys, `${curveKeyPair().publicKey} robot\n`);
        const server = curveKeyPair();
        let sent = false;
        const s = await serve(
          ['--curve-secret-key', server.secretKey, '--curve-client-keys-file', keys],
          (launcher) => {
            sent = launcher.kill('SIGHUP');
          },
        );
        expect(sent).toBe(true);
        for (let waited = 0; !s.stderr().includes('SIGHUP: 1 client key allowed'); waited += 20) {
          if (waited > 10_000) throw new Error(`no reload in:\n${s.stderr()}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        s.launcher.kill('SIGTERM');
        expect(await s.exited).toEqual({ code: 0, signal: null });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it('does not outlive a launcher killed with SIGKILL', async () => {
    const s = await serve();
    s.launcher.kill('SIGKILL');
    expect((await s.exited).signal).toBe('SIGKILL');
    // The server notices its parent's IPC channel close and shuts down, releasing its port.
    let free = false;
    for (let waited = 0; !free && waited < 20_000; waited += 100) {
      free = await canBind(s.endpoint);
      if (!free) await new Promise((r) => setTimeout(r, 100));
    }
    expect(free).toBe(true);
  });
});
