import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectRos, loadRos, RosUnavailableError } from '../../../src/transports/ros/load.js';
import { createRosDouble } from './double.js';

const SOURCED = { ROS_DISTRO: 'jazzy', AMENT_PREFIX_PATH: '/opt/ros/jazzy' };

describe('loadRos', () => {
  it('says ROS 2 must be sourced, and how, when it is not (without importing rclnodejs)', async () => {
    let imported = false;
    const error = await loadRos({
      env: {},
      importer: () => {
        imported = true;
        return Promise.resolve({});
      },
    }).catch((e: unknown) => e);
    expect(imported).toBe(false);
    expect(error).toBeInstanceOf(RosUnavailableError);
    expect((error as Error).message).toContain('source /opt/ros/<distro>/setup.bash');
    expect((error as Error).message).toContain('npx node-gyp rebuild');
  });

  it('without a sourced ROS 2, rclnodejs is not loaded and the message says why', async () => {
    const error = await loadRos({ env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RosUnavailableError);
    expect((error as Error).message).toMatch(/^The ROS 2 node needs rclnodejs/);
  });

  it('reports an import failure with ROS 2 sourced as one clear message with the cause', async () => {
    const cause = new Error('librcl.so: cannot open shared object file\nstack...');
    const error = await loadRos({ env: SOURCED, importer: () => Promise.reject(cause) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RosUnavailableError);
    expect((error as RosUnavailableError).cause).toBe(cause);
    expect((error as Error).message).toBe(
      'The ROS 2 node needs rclnodejs, which did not load with ROS 2 jazzy (librcl.so: cannot open shared object file): source ROS 2 first (`source /opt/ros/<distro>/setup.bash`), then build rclnodejs against it in this checkout: `(cd node_modules/rclnodejs && npx node-gyp rebuild -j max && node scripts/generate_messages.cjs)` (see README, "On a robot with ROS 2")',
    );
  });

  it('returns the module (or its default export) as the RosApi', async () => {
    const { api } = createRosDouble();
    await expect(loadRos({ env: SOURCED, importer: () => Promise.resolve(api) })).resolves.toBe(
      api,
    );
    await expect(
      loadRos({ env: SOURCED, importer: () => Promise.resolve({ default: api }) }),
    ).resolves.toBe(api);
  });

  it('detectRos reads ROS_DISTRO and AMENT_PREFIX_PATH', () => {
    expect(detectRos(SOURCED)).toMatchObject({ sourced: true, distro: 'jazzy' });
    expect(detectRos({ ROS_DISTRO: 'jazzy' }).sourced).toBe(false);
  });
});

describe('missingNativeBuild', () => {
  it('says there is no native build here instead of letting rclnodejs compile itself', async () => {
    const { missingNativeBuild } = await import('../../../src/transports/ros/load.js');
    // an rclnodejs install whose native part was never built (npm 11 skipped its script)
    const root = mkdtempSync(join(tmpdir(), 'vla-rclnodejs-'));
    writeFileSync(join(root, 'package.json'), '{"name":"rclnodejs"}');
    expect(missingNativeBuild(SOURCED, root)).toMatch(/^rclnodejs has no native build here/);
    const error = await loadRos({ env: SOURCED, rclnodejsRoot: root }).catch((e: unknown) => e);
    rmSync(root, { recursive: true });
    expect((error as Error).message).toMatch(
      /^ROS 2 jazzy is sourced, but rclnodejs has no native build here .*npx node-gyp rebuild/,
    );
  });

  it('refuses a native build that does not load, which rclnodejs would delete and rebuild', async () => {
    // Found by the live-graph work: ROS_DISTRO set without setup.bash (librcl not found) made
    // rclnodejs run `npm run clean && node-gyp rebuild`, deleting the checkout's working build.
    const { missingNativeBuild } = await import('../../../src/transports/ros/load.js');
    const root = mkdtempSync(join(tmpdir(), 'vla-rclnodejs-'));
    writeFileSync(join(root, 'package.json'), '{"name":"rclnodejs"}');
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, 'build', 'Release', 'rclnodejs.node'), 'not a shared object');
    // Checked before loadRos: on a loader that lets it through, rclnodejs would be imported and
    // would rebuild the checkout's own build.
    expect(missingNativeBuild(SOURCED, root)).toMatch(
      /^rclnodejs's native build \(build\/Release\/rclnodejs\.node\) does not load/,
    );
    const error = await loadRos({ env: SOURCED, rclnodejsRoot: root }).catch((e: unknown) => e);
    rmSync(root, { recursive: true });
    expect((error as Error).message).toMatch(/does not load .*source ROS 2's setup\.bash/);
  });
});
