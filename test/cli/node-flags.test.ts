import { describe, expect, it } from 'vitest';
import { missingNodeFlags, SERVER_NODE_FLAGS, watchParent } from '../../src/cli/node-flags.js';

describe('missingNodeFlags', () => {
  it('asks for the server flags for serve and bench serve only', () => {
    expect(missingNodeFlags(['serve', '--bind', 'tcp://127.0.0.1:5555'], [], undefined)).toEqual([
      ...SERVER_NODE_FLAGS,
    ]);
    expect(missingNodeFlags(['bench', 'serve', '--clients', '4'], [], undefined)).toEqual([
      ...SERVER_NODE_FLAGS,
    ]);
    for (const argv of [['sim'], ['bench', 'kernels'], ['ros'], [], ['--bind', 'serve']]) {
      expect(missingNodeFlags(argv, [], undefined)).toEqual([]);
    }
  });

  it('asks for nothing once the process has the flags (no relaunch loop)', () => {
    expect(missingNodeFlags(['serve'], [...SERVER_NODE_FLAGS], undefined)).toEqual([]);
  });

  it("keeps the user's own value, on the command line or in NODE_OPTIONS, in either spelling", () => {
    expect(missingNodeFlags(['serve'], ['--max-semi-space-size=16'], undefined)).toEqual([]);
    expect(missingNodeFlags(['serve'], ['--max_semi_space_size=8'], undefined)).toEqual([]);
    expect(
      missingNodeFlags(['serve'], [], '--enable-source-maps  --max-semi-space-size=4'),
    ).toEqual([]);
    // Unrelated flags do not count.
    expect(
      missingNodeFlags(['serve'], ['--enable-source-maps'], '--max-old-space-size=4096'),
    ).toEqual([...SERVER_NODE_FLAGS]);
  });

  it('asks for nothing under a debugger, so the debugged process is the server', () => {
    expect(missingNodeFlags(['serve'], ['--inspect'], undefined)).toEqual([]);
    expect(missingNodeFlags(['bench', 'serve'], ['--inspect-brk=9230'], undefined)).toEqual([]);
    expect(missingNodeFlags(['serve'], [], '--inspect')).toEqual([]);
  });
});

describe('watchParent', () => {
  it('leaves a process alone that vla-node did not relaunch, even with an IPC channel', () => {
    // vitest's forks pool gives this process an IPC channel of its own, as PM2 would.
    expect(process.channel).toBeDefined();
    const before = process.listenerCount('disconnect');
    watchParent();
    expect(process.listenerCount('disconnect')).toBe(before);
  });
});
