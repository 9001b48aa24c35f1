/**
 * Live ROS 2 graph: the package built by colcon and started from the install space with
 * `ros2 launch vla_node vla_node.launch.py`, here with `use_sim_time:=true` and a /clock
 * publisher: the node's timers run on /clock and what it stamps follows /clock.
 */
import { symlinkSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ROOT } from '../helpers.js';
import {
  announce,
  Cleanup,
  crashIn,
  LIVE_REASON,
  liveEnv,
  LiveProcess,
  nodeStatus,
  photoFiles,
  Probe,
  removeDir,
  type PhotoFiles,
} from './support.js';

announce('colcon.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const DOMAIN = 65;
/** The simulated clock starts here (s), far from wall time, and runs at half speed. */
const SIM_START = 5000;

describe.skipIf(LIVE_REASON !== undefined)(
  'live ROS 2: colcon install, ros2 launch vla_node',
  () => {
    let env: NodeJS.ProcessEnv;
    let ws: string;
    let photo: PhotoFiles;
    let probe: Probe;
    let launch: LiveProcess;
    const cleanup = new Cleanup();

    beforeAll(async () => {
      ws = await mkdtemp(join(tmpdir(), 'vla-live-ws-'));
      cleanup.add(() => removeDir(ws));
      env = liveEnv(DOMAIN, ws);
      photo = await photoFiles();
      cleanup.add(() => removeDir(photo.dir));
      probe = new Probe(env);
      cleanup.add(() => probe.close());
      await probe.ready();
      await probe.send({ op: 'subscribe', topic: '/vla/action_chunk', type: 'trajectory' });
      await probe.send({ op: 'subscribe', topic: '/diagnostics', type: 'diagnostics' });
    });

    afterAll(() => cleanup.run());

    it('colcon build installs the package', async () => {
      await mkdir(join(ws, 'src'));
      symlinkSync(ROOT, join(ws, 'src', 'vla-node'));
      const build = new LiveProcess('colcon', ['build', '--packages-select', 'vla_node'], env, ws);
      cleanup.add(() => build.kill());
      const exit = await build.exited;
      expect(exit.code, build.tail()).toBe(0);
    });

    it('ros2 launch vla_node vla_node.launch.py with use_sim_time: stamps follow /clock', async () => {
      await probe.send({
        op: 'clock',
        id: 'clock',
        start_sec: SIM_START,
        step_ns: 10_000_000,
        rate_hz: 50,
      });
      launch = new LiveProcess(
        'bash',
        [
          '-c',
          'source install/setup.bash && exec ros2 launch vla_node vla_node.launch.py "$@"',
          'launch',
          'use_sim_time:=true',
          'auto_activate:=true',
          'image_topic:=/sim/camera',
          'instruction_topic:=/sim/instruction',
          'joint_states_topic:=/sim/joint_states',
        ],
        env,
        ws,
      );
      cleanup.add(() => launch.kill());
      await launch.waitOutput(/ready: model warmed up/);
      // Installed: the launch file ran the lib/vla_node/vla_node wrapper, not the checkout's bin.
      expect(launch.output).toMatch(/install\/vla_node\/lib\/vla_node\/vla_node|vla_node-1/);
      await probe.send({
        op: 'joint_states',
        id: 'joints',
        topic: '/sim/joint_states',
        names: ['x', 'y'],
        positions: [0.5, 0.5],
        rate_hz: 10,
      });
      await probe.send({
        op: 'image',
        id: 'camera',
        topic: '/sim/camera',
        file: photo.rgb,
        encoding: 'rgb8',
        width: photo.width,
        height: photo.height,
        reliability: 'best_effort',
        rate_hz: 10,
      });
      await probe.send({
        op: 'instruction',
        id: 'task',
        topic: '/sim/instruction',
        data: 'reach the red block',
      });
      const trajectory = await probe.next('/vla/action_chunk');
      const stamp = (trajectory.header as { stamp: { sec: number } }).stamp.sec;
      expect(stamp).toBeGreaterThanOrEqual(SIM_START);
      expect(stamp).toBeLessThan(SIM_START + 600);
      const d = await probe.next(
        '/diagnostics',
        (m) => nodeStatus(m)?.values['chunks published'] !== '0',
      );
      const sec = (d.header as { stamp: { sec: number } }).stamp.sec;
      expect(sec).toBeGreaterThanOrEqual(SIM_START);
      expect(sec).toBeLessThan(SIM_START + 600);
    });

    it('Ctrl-C ends it with exit 0', async () => {
      launch.signal('SIGINT');
      const exit = await launch.exited;
      expect(crashIn(launch.output)).toBeUndefined();
      expect(exit.code).toBe(0);
    });
  },
);
