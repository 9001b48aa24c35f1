/**
 * Live ROS 2 graph: vla_node serving the shipped flow package (models/tiny-vla-flow, cameras
 * `table` and `wrist`), started by `ros2 launch ./launch/vla_node.launch.py model:=... camera_topics:=...`
 * from the checkout, fed a real photograph on each camera's topic by the rclpy probe: it holds
 * while the wrist camera is silent, publishes a chunk once both cameras send frames, drops bad
 * wrist frames (counted for the wrist) while it keeps serving, and ends on Ctrl-C.
 */
import { readFile } from 'node:fs/promises';
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

announce('flow.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 66;
const T = {
  table: '/flow/table_cam/image_raw',
  wrist: '/flow/wrist_cam/image_raw',
  instruction: '/flow/instruction',
  joints: '/flow/joint_states',
  trajectory: '/flow/action_chunk',
  command: '/flow/command',
  raw: '/flow/action_chunk_raw',
  diagnostics: '/diagnostics',
} as const;

describe.skipIf(LIVE_REASON !== undefined)(
  'live ROS 2: a flow package, one image topic per camera',
  () => {
    let env: NodeJS.ProcessEnv;
    let photo: PhotoFiles;
    let probe: Probe;
    let launch: LiveProcess;
    const cleanup = new Cleanup();

    const camera = (id: string, topic: string, extra: Record<string, unknown> = {}) => ({
      op: 'image',
      id,
      topic,
      file: photo.bgr,
      encoding: 'bgr8',
      width: photo.width,
      height: photo.height,
      reliability: 'best_effort',
      rate_hz: 10,
      ...extra,
    });

    beforeAll(async () => {
      ({ env, photo, probe } = await liveSession(DOMAIN, cleanup));
      launch = launchPy(
        T,
        [
          'model:=models/tiny-vla-flow',
          `camera_topics:=table=${T.table},wrist=${T.wrist}`,
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

    it('loads the flow package and holds while the wrist camera has sent nothing', async () => {
      await launch.waitOutput(/flow package tiny-vla-flow: cameras table \+ wrist/);
      await launch.waitOutput(/ready: model warmed up on cpu/);
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
      await probe.send(camera('table', T.table, { frame_id: 'table_cam' }));
      // a WARN at first, the safe-hold ERROR once no chunk has come for a while: both name the camera
      const held = await probe.status((s) =>
        s.message.includes('holding inference: camera wrist has sent no frame yet'),
      );
      expect(held.level).toBeGreaterThanOrEqual(1);
      expect(held.values.cameras).toBe('table (trigger), wrist');
      expect(Number(held.values['camera wrist inferences held (no frame)'])).toBeGreaterThan(0);
      expect(Number(held.values['camera table frames received'])).toBeGreaterThan(0);
      expect(probe.on(T.trajectory)).toHaveLength(0);
    });

    it('publishes a chunk once both camera topics carry frames', async () => {
      await probe.send(camera('wrist', T.wrist, { frame_id: 'wrist_cam' }));
      const trajectory = await probe.next(T.trajectory);
      const { action } = JSON.parse(
        await readFile('models/tiny-vla-flow/manifest.json', 'utf8'),
      ) as { action: { min: number[]; max: number[] } };
      expect(trajectory.joint_names).toEqual(['x', 'y']);
      expect((trajectory.header as { frame_id: string }).frame_id).toBe('table_cam');
      const points = trajectory.points as { positions: number[] }[];
      expect(points.length).toBeGreaterThan(0);
      for (const p of points) {
        p.positions.forEach((v, d) => {
          expect(Number.isFinite(v)).toBe(true);
          expect(v).toBeGreaterThanOrEqual(action.min[d] ?? Number.NaN);
          expect(v).toBeLessThanOrEqual(action.max[d] ?? Number.NaN);
        });
      }
      const raw = await probe.next(T.raw);
      expect(raw.data as number[]).toHaveLength(16 * 2);
    });

    it('drops bad wrist frames, counts them for the wrist, and keeps serving', async () => {
      // a second wrist publisher whose frames claim one pixel more per row than they carry
      await probe.send(
        camera('wrist-bad', T.wrist, { width: photo.width + 1, step: photo.width * 3 + 3 }),
      );
      const s = await probe.status(
        (x) => Number(x.values['camera wrist frames dropped (bad)']) > 0,
      );
      expect(Number(s.values['dropped image size'])).toBeGreaterThan(0);
      expect(s.values['camera table frames dropped (bad)']).toBe('0');
      await probe.send({ op: 'stop', id: 'wrist-bad' });
      const before = probe.on(T.trajectory).length;
      await probe.next(T.trajectory, () => true, 90_000, before);
      const after = await probe.status((x) => Number(x.values['chunks published']) > 1);
      expect(after.values['lifecycle state']).toBe('active');
      expect(after.message).not.toContain('holding');
      expect(launch.output).toMatch(/dropped frame on ~\/in\/wrist: image size/);
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
