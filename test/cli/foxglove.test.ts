import { describe, expect, it } from 'vitest';
import { bareFoxgloveFlag, withFoxgloveFlag } from '../../src/cli/foxglove.js';
import { configFromArgs } from '../../src/cli/setup.js';
import { ConfigError } from '../../src/errors.js';

describe('--foxglove [PORT]', () => {
  it.each([
    [
      ['sim', '--foxglove'],
      ['sim', '--foxglove='],
    ],
    [
      ['sim', '--foxglove', '9000'],
      ['sim', '--foxglove', '9000'],
    ],
    [
      ['sim', '--foxglove', '--episodes', '2'],
      ['sim', '--foxglove=', '--episodes', '2'],
    ],
    [
      ['replay', '--foxglove', 'bag.mcap'],
      ['replay', '--foxglove=', 'bag.mcap'],
    ],
    [
      ['sim', '--foxglove=8000'],
      ['sim', '--foxglove=8000'],
    ],
    [
      ['ros', '--', '--foxglove'],
      ['ros', '--', '--foxglove'],
    ],
  ])('%j is parsed as %j', (argv, expected) => {
    expect(bareFoxgloveFlag(argv)).toEqual(expected);
  });

  it('sets foxglove.enabled, and foxglove.port when a port is given', async () => {
    expect((await configFromArgs(withFoxgloveFlag({}))).foxglove.enabled).toBe(false);
    const bare = await configFromArgs(withFoxgloveFlag({ foxglove: '' }));
    expect(bare.foxglove).toMatchObject({ enabled: true, port: 8765, host: '127.0.0.1' });
    const port = await configFromArgs(withFoxgloveFlag({ foxglove: '9000', set: ['sim.seed=3'] }));
    expect(port.foxglove.port).toBe(9000);
    expect(port.sim.seed).toBe(3);
  });

  it('rejects a port out of range with the parameter named', async () => {
    const error = await configFromArgs(withFoxgloveFlag({ foxglove: '70000' })).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('foxglove.port');
  });
});
