/**
 * Live ROS 2 graph: vla_node serving the shipped autoregressive package (models/tiny-vla-ar, one
 * camera `table`, action tokens decoded with speculative decoding), started by
 * `ros2 launch ./launch/vla_node.launch.py model:=... camera_topics:=table=... params_file:=...`
 * from the checkout, fed a real photograph by the rclpy probe: it names the family, camera and
 * decoding when it loads, publishes chunks of horizon × action_dim finite values within the
 * manifest's limits with the decoding in its diagnostics, drops bad frames (counted for the
 * camera) while it keeps serving, and ends on Ctrl-C.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  announce,
  Cleanup,
  crashIn,
  LIVE_REASON,
  liveSession,
  LiveProcess,
  Probe,
  type PhotoFiles,
  launchPy,
} from './support.js';

announce('ar.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 67;
const MODEL = 'models/tiny-vla-ar';
const T = {
  table: '/ar/table_cam/image_raw',
  instruction: '/ar/instruction',
  joints: '/ar/joint_states',
  trajectory: '/ar/action_chunk',
  command: '/ar/command',
  raw: '/ar/action_chunk_raw',
  diagnostics: '/diagnostics',
} as const;

interface Shipped {
  readonly horizon: number;
  readonly actionDim: number;
  readonly min: readonly number[];
  readonly max: readonly number[];
}

async function shipped(): Promise<Shipped> {
  const m = JSON.parse(await readFile(join(MODEL, 'manifest.json'), 'utf8')) as {
    chunk: { horizon: number; action_dim: number };
    action: { min: number[]; max: number[] };
  };
  return {
    horizon: m.chunk.horizon,
    actionDim: m.chunk.action_dim,
    min: m.action.min,
    max: m.action.max,
  };
}

/** Each value finite and within [min, max] of its dimension (value i is dimension i % dim). */
function expectWithin(values: readonly number[], s: Shipped, dimOf: (i: number) => number): void {
  values.forEach((v, i) => {
    const d = dimOf(i);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThanOrEqual(s.min[d] ?? Number.NaN);
    expect(v).toBeLessThanOrEqual(s.max[d] ?? Number.NaN);
  });
}

describe.skipIf(LIVE_REASON !== undefined)(
  'live ROS 2: an autoregressive package, action tokens decoded in the node',
  () => {
    let env: NodeJS.ProcessEnv;
    let photo: PhotoFiles;
    let probe: Probe;
    let launch: LiveProcess;
    let model: Shipped;
    const cleanup = new Cleanup();

    const camera = (id: string, extra: Record<string, unknown> = {}) => ({
      op: 'image',
      id,
      topic: T.table,
      file: photo.bgr,
      encoding: 'bgr8',
      width: photo.width,
      height: photo.height,
      reliability: 'best_effort',
      rate_hz: 10,
      frame_id: 'table_cam',
      ...extra,
    });

    beforeAll(async () => {
      model = await shipped();
      let logDir: string;
      ({ env, photo, probe, logDir } = await liveSession(DOMAIN, cleanup));
      // A user's parameter file: the shipped one with speculative decoding (the launch file's
      // params_file argument), so the draft-from-stamps path runs on the live graph.
      const defaults = await readFile('config/vla_node.param.yaml', 'utf8');
      const params = defaults.replace(/^(\s+decoding:) greedy$/m, '$1 speculative');
      expect(params).not.toBe(defaults);
      const paramsFile = join(logDir, 'ar.param.yaml');
      await writeFile(paramsFile, params);
      launch = launchPy(
        T,
        [
          `model:=${MODEL}`,
          `params_file:=${paramsFile}`,
          `camera_topics:=table=${T.table}`,
          'auto_activate:=true',
        ],
        env,
        cleanup,
      );
      await probe.ready();
      await probe.subscribe([
        [T.trajectory, 'trajectory'],
        [T.raw, 'raw'],
        [T.diagnostics, 'diagnostics'],
      ]);
    });

    afterAll(() => cleanup.run());

    it('loads the package and names its family, camera and decoding', async () => {
      await launch.waitOutput(
        /autoregressive package tiny-vla-ar: camera table, decoding speculative \(window the whole chunk\)/,
      );
      await launch.waitOutput(/ready: model warmed up on cpu/);
      const s = await probe.status((x) => x.values.decoding !== undefined);
      expect(s.values.decoding).toBe('speculative');
      expect(s.values.cameras).toBe('table (trigger)');
    });

    it('publishes chunks of horizon x action_dim finite values within the limits', async () => {
      await probe.send({
        op: 'instruction',
        id: 'task',
        topic: T.instruction,
        data: 'move to the red block',
      });
      await probe.send({
        op: 'joint_states',
        id: 'joints',
        topic: T.joints,
        names: ['x', 'y'],
        positions: [0.5, 0.5],
        rate_hz: 20,
      });
      await probe.send(camera('table'));
      const trajectory = await probe.next(T.trajectory);
      expect(trajectory.joint_names).toEqual(['x', 'y']);
      expect((trajectory.header as { frame_id: string }).frame_id).toBe('table_cam');
      const points = trajectory.points as { positions: number[] }[];
      expect(points.length).toBeGreaterThan(0);
      expect(points.length).toBeLessThanOrEqual(model.horizon);
      for (const p of points) {
        expect(p.positions).toHaveLength(model.actionDim);
        expectWithin(p.positions, model, (d) => d);
      }
      const raw = await probe.next(T.raw);
      const values = raw.data as number[];
      expect(values).toHaveLength(model.horizon * model.actionDim);
      expectWithin(values, model, (i) => i % model.actionDim);
      // later chunks of the same stream are drafted from the previous one; the diagnostics say
      // how many sequential decoder calls a chunk took (a chunk has horizon x action_dim tokens)
      const s = await probe.status((x) => Number(x.values['chunks decoded']) >= 2);
      expect(s.values.decoding).toBe('speculative');
      const calls = Number(s.values['decoder calls per chunk']);
      expect(calls).toBeGreaterThanOrEqual(1);
      expect(calls).toBeLessThan(Number(s.values['action tokens per chunk']));
      expect(s.values['inference errors']).toBe('0');
    });

    it('drops bad frames, counts them for the camera, and keeps serving', async () => {
      // a second publisher on the camera topic whose frames claim one pixel more per row than they carry
      await probe.send(camera('table-bad', { width: photo.width + 1, step: photo.width * 3 + 3 }));
      const s = await probe.status(
        (x) => Number(x.values['camera table frames dropped (bad)']) > 0,
      );
      expect(Number(s.values['dropped image size'])).toBeGreaterThan(0);
      await probe.send({ op: 'stop', id: 'table-bad' });
      const chunks = Number(s.values['chunks published']);
      const before = probe.on(T.trajectory).length;
      await probe.next(T.trajectory, () => true, 90_000, before);
      const after = await probe.status((x) => Number(x.values['chunks published']) > chunks);
      expect(after.values['lifecycle state']).toBe('active');
      expect(after.values['inference errors']).toBe('0');
      expect(launch.output).toMatch(/dropped frame on ~\/in\/table: image size/);
      const raw = probe.on(T.raw).at(-1);
      expectWithin((raw?.data as number[] | undefined) ?? [], model, (i) => i % model.actionDim);
    });

    it('Ctrl-C ends it cleanly', async () => {
      launch.signal('SIGINT');
      const exit = await launch.exited;
      expect(crashIn(launch.output)).toBeUndefined();
      expect(launch.output).toMatch(/vla_node: stopping/);
      expect(exit.code).toBe(0);
    });
  },
);
