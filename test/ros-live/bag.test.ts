/**
 * Live ROS 2 graph: a bag written by `vla-node record-sim` drives the node through
 * `ros2 bag play` with no QoS override file (the README's "Replaying a simulated run into the
 * node" steps): the player offers the recorded QoS, transient local for the instruction, which the
 * node's subscription requires.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ROOT } from '../helpers.js';
import {
  announce,
  Cleanup,
  crashIn,
  LIVE_REASON,
  liveEnv,
  LiveProcess,
  Probe,
  removeDir,
  ros2,
} from './support.js';

announce('bag.test.ts');
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const DOMAIN = 64;

describe.skipIf(LIVE_REASON !== undefined)('live ROS 2: ros2 bag play of a record-sim bag', () => {
  let env: NodeJS.ProcessEnv;
  let bag: string;
  let probe: Probe;
  let launch: LiveProcess;
  const cleanup = new Cleanup();

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vla-live-bag-'));
    cleanup.add(() => removeDir(dir));
    env = liveEnv(DOMAIN, dir);
    bag = join(dir, 'sim-bag');
    await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'bin/vla-node.js'), 'record-sim', '--out', bag, '--episodes', '2'],
      { cwd: ROOT, env },
    );
    probe = new Probe(env);
    cleanup.add(() => probe.close());
    // As the README has it (launch file defaults for the outputs).
    launch = new LiveProcess(
      'ros2',
      [
        'launch',
        './launch/vla_node.launch.py',
        'auto_activate:=true',
        'image_topic:=/camera/image_raw',
        'instruction_topic:=/instruction',
        'joint_states_topic:=/joint_states',
      ],
      env,
    );
    cleanup.add(() => launch.kill());
    await probe.ready();
    await probe.send({ op: 'subscribe', topic: '/vla/action_chunk', type: 'trajectory' });
    await probe.send({ op: 'subscribe', topic: '/vla/command', type: 'command' });
  });

  afterAll(() => cleanup.run());

  it('ros2 bag info reads the bag: Jazzy metadata, the four topics', async () => {
    const r = await ros2(env, ['bag', 'info', bag]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ROS Distro:\s+jazzy/);
    for (const topic of ['/camera/image_raw', '/joint_states', '/instruction', '/expert/actions']) {
      expect(r.out).toContain(`Topic: ${topic} `);
    }
  });

  it('ros2 bag play drives the running node: its instruction arrives, chunks come out', async () => {
    await launch.waitOutput(/ready: model warmed up/);
    const play = new LiveProcess('ros2', ['bag', 'play', bag, '--loop'], env);
    cleanup.add(() => play.kill());
    await launch.waitOutput(/instruction: /);
    expect(play.output).not.toMatch(/incompatible QoS/i);
    expect(launch.output).not.toMatch(/incompatible QoS/i);
    const trajectory = await probe.next('/vla/action_chunk');
    expect((trajectory.points as unknown[]).length).toBeGreaterThan(0);
    // Stamped from the bag's frames (record-sim's timeline starts at 1.7e9 s), not wall time.
    const stamp = (trajectory.header as { stamp: { sec: number } }).stamp.sec;
    expect(stamp).toBeGreaterThanOrEqual(1_700_000_000);
    expect(stamp).toBeLessThan(1_700_001_000);
    await probe.next('/vla/command');
    play.signal('SIGINT');
    await play.exited;
  });

  it('Ctrl-C ends the node with exit 0', async () => {
    launch.signal('SIGINT');
    const exit = await launch.exited;
    expect(crashIn(launch.output)).toBeUndefined();
    expect(exit.code).toBe(0);
  });
});
