import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { runRosNode } from '../../../src/transports/ros/run.js';
import { createRosDouble } from './double.js';
import { FakePipeline } from './support.js';

/** runRosNode on the double, with signals from an emitter instead of the process. */
async function start(
  overrides: Record<string, string> = {},
  argv: string[] = [],
): Promise<{
  readonly exit: Promise<number>;
  readonly signals: EventEmitter;
  readonly pipeline: FakePipeline;
  readonly lines: string[];
  readonly double: ReturnType<typeof createRosDouble>;
}> {
  const signals = new EventEmitter();
  const double = createRosDouble(overrides, signals);
  const pipeline = new FakePipeline();
  const lines: string[] = [];
  const exit = runRosNode({
    ros: double.api,
    argv,
    config: await loadConfig({}),
    createPipeline: () => Promise.resolve(pipeline),
    log: (line) => lines.push(line),
    signals: signals as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
  });
  await new Promise((r) => setTimeout(r, 20));
  return { exit, signals, pipeline, lines, double };
}

describe('runRosNode shutdown', () => {
  it.each(['SIGINT', 'SIGTERM'])(
    'on %s shuts the lifecycle down while the node lives, releases the model and exits 0',
    async (signal) => {
      const s = await start({ 'ros.auto_activate': 'true' });
      const node = s.double.nodes[0];
      await new Promise((r) => setTimeout(r, 20));
      expect(node?.currentState.label).toBe('active');
      s.signals.emit(signal);
      expect(await s.exit).toBe(0);
      // rclnodejs's own SIGINT handler (which destroys the node first) was removed
      expect(s.double.signalHandlersRemoved()).toBe(true);
      expect(node?.destroyed).toBe(true);
      expect(s.pipeline.released).toBe(true);
      expect(s.double.api.isShutdown()).toBe(true);
      expect(s.lines.filter((l) => l.includes('shutdown:'))).toEqual([]);
      expect(s.signals.listenerCount('SIGINT') + s.signals.listenerCount('SIGTERM')).toBe(0);
    },
  );

  it('names the node as ros2 lifecycle does, after the namespace and name remaps', async () => {
    const plain = await start();
    expect(plain.lines[0]).toBe(
      'vla_node: unconfigured; `ros2 lifecycle set /vla_node configure`, then `activate`',
    );
    plain.signals.emit('SIGINT');
    expect(await plain.exit).toBe(0);
    const remapped = await start({}, ['--ros-args', '-r', '__ns:=/robot', '-r', '__node:=arm']);
    expect(remapped.lines[0]).toBe(
      'vla_node: unconfigured; `ros2 lifecycle set /robot/arm configure`, then `activate`',
    );
    remapped.signals.emit('SIGINT');
    expect(await remapped.exit).toBe(0);
  });

  it('a lifecycle shutdown from unconfigured ends the process with 0', async () => {
    const s = await start();
    const node = s.double.nodes[0];
    expect(node?.currentState.label).toBe('unconfigured');
    node?.shutdown();
    expect(await s.exit).toBe(0);
    expect(node?.destroyed).toBe(true);
  });

  it('a lifecycle shutdown from active releases the model', async () => {
    const s = await start({ 'ros.auto_activate': 'true' });
    await new Promise((r) => setTimeout(r, 20));
    s.double.nodes[0]?.shutdown();
    expect(await s.exit).toBe(0);
    expect(s.pipeline.released).toBe(true);
  });
});
