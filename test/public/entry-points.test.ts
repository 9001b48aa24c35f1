import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as bridge from '../../src/bridge.js';
import * as core from '../../src/core.js';
import * as root from '../../src/index.js';
import * as replayEntry from '../../src/replay.js';
import * as ros from '../../src/ros.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Specifiers a module loads when it is imported: static imports and re-exports, not types. */
function loadedSpecifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  const statement = /^(?:import|export)\s+(?!type\b)(?:[^;]*?\sfrom\s+)?'([^']+)'/gms;
  for (const match of text.matchAll(statement)) out.push(match[1] ?? '');
  return out;
}

/** Every module and package `entry` loads at import, following relative imports through src/. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const specifier of loadedSpecifiers(file)) {
      if (specifier.startsWith('.')) {
        visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      } else if (!specifier.startsWith('node:')) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? ''));
      }
    }
  };
  visit(resolve(ROOT, entry));
  return { files, packages };
}

interface PackageJson {
  readonly exports: Record<string, string | { types: string; default: string }>;
}

describe('public entry points', () => {
  it.each(['src/index.ts', 'src/core.ts'])(
    '%s loads no ZeroMQ, MCAP, ROS 2 or Foxglove module',
    (entry) => {
      const { files, packages } = importGraph(entry);
      expect(files.size).toBeGreaterThan(10);
      const transports = [...files].filter((f) => f.includes('/src/transports/'));
      expect(transports).toEqual([]);
      const cli = [...files].filter((f) => f.includes('/src/cli/'));
      expect(cli).toEqual([]);
      for (const pkg of ['zeromq', '@mcap/core', 'rclnodejs', 'ws', '@foxglove/ws-protocol']) {
        expect(packages, `${entry} loads ${pkg}`).not.toContain(pkg);
      }
    },
  );

  it('the transports are loaded by their own entry points', () => {
    expect(importGraph('src/bridge.ts').packages).toContain('zeromq');
    expect(importGraph('src/replay.ts').packages).toContain('@mcap/core');
  });

  it('package.json exports a subpath for the root, core, bridge, replay and ros', () => {
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as PackageJson;
    for (const name of ['index', 'core', 'bridge', 'replay', 'ros']) {
      const key = name === 'index' ? '.' : `./${name}`;
      expect(pkg.exports[key]).toEqual({
        types: `./dist/${name}.d.ts`,
        default: `./dist/${name}.js`,
      });
      expect(existsSync(resolve(ROOT, `src/${name}.ts`)), `src/${name}.ts`).toBe(true);
    }
  });

  it('exports every public error from the one VlaError family', () => {
    const errors = [
      core.InputError,
      core.ModelError,
      core.ConfigError,
      core.BackendError,
      core.UnsafeActionError,
      bridge.BridgeError,
      replayEntry.BagError,
      ros.RosUnavailableError,
    ];
    for (const ErrorClass of errors) {
      expect(ErrorClass.prototype, ErrorClass.name).toBeInstanceOf(core.VlaError);
    }
    const busy = new bridge.BridgeError('busy', 'Expected a free slot but received a full queue', {
      field: 'queue',
    });
    expect(busy).toBeInstanceOf(root.VlaError);
    expect(busy).toMatchObject({ name: 'BridgeError', code: 'busy', field: 'queue' });
  });

  it('keeps bag replay callable from the root without loading MCAP at import', async () => {
    expect(typeof root.replay).toBe('function');
    const events = root.readBag(resolve(ROOT, 'no-such-bag.mcap'));
    await expect(events.next()).rejects.toBeInstanceOf(replayEntry.BagError);
  });
});
