import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../../../src/cli/command.js';
import { recordSimCommand } from '../../../src/cli/record-sim.js';
import { replayCommand } from '../../../src/cli/replay.js';
import { TINY_VLA } from '../../helpers.js';

function capture(): { io: CommandIo; results: object[]; progress: string[] } {
  const results: object[] = [];
  const progress: string[] = [];
  return {
    results,
    progress,
    io: {
      json: true,
      progress: (m) => progress.push(m),
      result: (v) => results.push(v),
    },
  };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vla-mcap-cli-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('record-sim and replay commands', () => {
  it('records a bag and replays it with a JSON summary', async () => {
    const bag = join(dir, 'bag');
    const rec = capture();
    const set = ['sim.max_steps=20', 'backend.intra_op_threads=1', 'backend.warmup_runs=1'];
    expect(
      await recordSimCommand.run(
        { out: bag, episodes: '2', seed: '3', model: TINY_VLA, set },
        rec.io,
        [],
      ),
    ).toBe(0);
    expect(rec.results[0]).toMatchObject({ episodes: 2, control_rate_hz: 10 });
    const play = capture();
    const out = join(dir, 'out.mcap');
    const values = {
      out,
      rate: 'max',
      model: TINY_VLA,
      precision: 'fp32',
      providers: '[cpu]',
      strategy: 'none',
      set,
    };
    expect(await replayCommand.run(values, play.io, [bag])).toBe(0);
    const summary = play.results[0] as {
      frames: number;
      chunks: number;
      messages: Record<string, number>;
      action_error: { mean_abs: number[] } | null;
      latency_ms: { p50: number };
      out: string;
    };
    const frames = (rec.results[0] as { frames: number }).frames;
    expect(summary.frames).toBe(frames);
    expect(summary.chunks).toBe(frames);
    expect(summary.messages['/camera/image_raw']).toBe(frames);
    expect(summary.action_error?.mean_abs).toHaveLength(2);
    expect(summary.latency_ms.p50).toBeGreaterThan(0);
    expect(summary.out).toBe(out);
  });

  it('rejects a bad --rate and a missing BAG', async () => {
    const { io } = capture();
    await expect(replayCommand.run({ rate: 'fast' }, io, ['x.mcap'])).rejects.toMatchObject({
      name: 'ConfigError',
      field: 'rate',
    });
    await expect(replayCommand.run({}, io, [])).rejects.toMatchObject({ field: 'BAG' });
    await expect(recordSimCommand.run({}, io, [])).rejects.toMatchObject({ field: 'out' });
  });
});
