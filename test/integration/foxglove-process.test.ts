import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { LIVE_TOPICS } from '../../src/transports/foxglove/index.js';
import { BridgeClient } from '../../src/transports/zmq/index.js';
import { TestViewer } from '../transports/foxglove/client.js';
import { ROOT } from '../helpers.js';

const CLI = `${ROOT}bin/vla-node.js`;
const started: ChildProcess[] = [];

afterEach(() => {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

interface Running {
  readonly process: ChildProcess;
  readonly url: string;
  stderr(): string;
  stdout(): string;
  readonly exited: Promise<number | null>;
}

/** `vla-node ARGS` as a user runs it, once its live view listens. */
async function start(args: readonly string[]): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.push(child);
  let err = '';
  let out = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      resolve(code);
    });
  });
  let url: string | undefined;
  for (let waited = 0; url === undefined; waited += 10) {
    if (waited > 60_000 || child.exitCode !== null) throw new Error(`no live view:\n${err}`);
    url = /Foxglove live view on (ws:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1];
    await new Promise((r) => setTimeout(r, 10));
  }
  return { process: child, url, stderr: () => err, stdout: () => out, exited };
}

describe('--foxglove on the commands (real processes, loopback)', () => {
  it('vla-node sim --foxglove 0 shows a paced run live and still reports its result', async () => {
    const sim = await start(['sim', '--episodes', '1', '--foxglove', '0', '--json']);
    const viewer = await TestViewer.connect(sim.url, Object.keys(LIVE_TOPICS).length);
    try {
      viewer.subscribe(LIVE_TOPICS.sent, LIVE_TOPICS.chunk, LIVE_TOPICS.scene, LIVE_TOPICS.log);
      // Paced at the model's 10 Hz: the run is still going when the viewer has subscribed.
      await viewer.until(
        () => viewer.on(LIVE_TOPICS.sent).length >= 3 && viewer.on(LIVE_TOPICS.chunk).length >= 1,
      );
      expect(await sim.exited).toBe(0);
      const report = JSON.parse(sim.stdout()) as { episodes: number; agent: string };
      expect(report).toMatchObject({ episodes: 1, agent: 'model' });
      const logs = viewer.on(LIVE_TOPICS.log).map((m) => m.message as string);
      expect(logs.some((l) => l.startsWith('episode 1/1'))).toBe(true);
    } finally {
      await viewer.close();
    }
  });

  it('vla-node serve --foxglove 0 shows each request’s frame and the chunk it was answered with', async () => {
    const served = await start(['serve', '--bind', 'tcp://127.0.0.1:*', '--foxglove', '0']);
    for (let waited = 0; !served.stderr().includes('Ctrl-C stops'); waited += 10) {
      if (waited > 60_000) throw new Error(`serve did not start:\n${served.stderr()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const endpoint = /serving \S+ on (tcp:\/\/\S+) /.exec(served.stderr())?.[1] ?? '';
    const viewer = await TestViewer.connect(served.url, Object.keys(LIVE_TOPICS).length);
    const client = BridgeClient.connect(endpoint, { timeoutMs: 10_000 });
    try {
      viewer.subscribe(LIVE_TOPICS.image, LIVE_TOPICS.chunk, LIVE_TOPICS.keptTokens);
      // The subscription is in once the server answers a later request on the same connection.
      const before = viewer.statuses.length;
      viewer.client.subscribe(999_999);
      await viewer.until(() => viewer.statuses.length > before);
      const obs = new TabletopSim({ seed: 3 }).observe();
      const chunk = await client.infer({
        frame: obs.image,
        instruction: obs.instruction,
        state: obs.state,
      });
      await viewer.until(() => viewer.on(LIVE_TOPICS.chunk).length === 1);
      const image = viewer.on(LIVE_TOPICS.image)[0];
      expect(image).toMatchObject({ width: 128, height: 128, encoding: 'rgb8' });
      expect(Buffer.from(image?.data as string, 'base64').equals(Buffer.from(obs.image.data))).toBe(
        true,
      );
      const shown = viewer.on(LIVE_TOPICS.chunk)[0] as { steps: { values: number[] }[] };
      expect(shown.steps.flatMap((s) => s.values)).toEqual(Array.from(chunk.actions));
      await viewer.until(() => viewer.on(LIVE_TOPICS.keptTokens).length === 1);
    } finally {
      await client.close();
      await viewer.close();
    }
    process.kill(-(served.process.pid ?? 0), 'SIGINT');
    expect(await served.exited).toBe(0);
  });

  it('vla-node replay BAG --rate 1 --foxglove 0 shows the bag’s frames and the chunks computed from them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vla-foxglove-'));
    try {
      const bag = join(dir, 'bag');
      await promisify(execFile)(process.execPath, [
        CLI,
        'record-sim',
        '--out',
        bag,
        '--episodes',
        '1',
      ]);
      // At the bag's own clock (10 Hz) the replay lasts long enough to subscribe.
      const replayed = await start(['replay', bag, '--rate', '1', '--foxglove', '0', '--json']);
      const viewer = await TestViewer.connect(replayed.url, Object.keys(LIVE_TOPICS).length);
      try {
        viewer.subscribe(LIVE_TOPICS.image, LIVE_TOPICS.chunk, LIVE_TOPICS.instruction);
        await viewer.until(() => viewer.on(LIVE_TOPICS.chunk).length >= 2);
        expect(await replayed.exited).toBe(0);
        const report = JSON.parse(replayed.stdout()) as { chunks: number };
        const shown = viewer.on(LIVE_TOPICS.chunk).length;
        expect(shown).toBeGreaterThanOrEqual(2);
        expect(shown).toBeLessThanOrEqual(report.chunks);
        expect(viewer.on(LIVE_TOPICS.image)[0]).toMatchObject({
          encoding: expect.any(String) as unknown,
        });
        expect(viewer.on(LIVE_TOPICS.instruction)[0]?.text).toMatch(/^move to /);
      } finally {
        await viewer.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('vla-node bench foxglove --json reports each scenario, nothing built without a viewer', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      CLI,
      'bench',
      'foxglove',
      '--episodes',
      '1',
      '--repeats',
      '1',
      '--json',
    ]);
    type Scenario = {
      encoded: number;
      sent: number;
      steps: number;
      viewer_messages: number | null;
    };
    const report = JSON.parse(stdout) as { scenarios: Record<string, Scenario> };
    expect(Object.keys(report.scenarios)).toEqual([
      'off',
      'no_viewer',
      'fast_viewer',
      'stalled_viewer',
    ]);
    const s = report.scenarios;
    expect(s.off?.encoded).toBe(0);
    expect(s.no_viewer?.encoded).toBe(0);
    expect(s.fast_viewer?.sent).toBeGreaterThan(0);
    // The viewer is stopped when the run ends: what was still in flight may not be counted.
    expect(s.fast_viewer?.viewer_messages).toBeGreaterThan(0);
    expect(s.fast_viewer?.viewer_messages).toBeLessThanOrEqual(s.fast_viewer?.sent ?? 0);
  });
});
