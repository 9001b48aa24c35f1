/**
 * The colcon (ament_cmake) packaging: package.xml, CMakeLists.txt and the scripts/vla_node
 * wrapper. colcon and ROS 2 are not installed here, so `colcon build` itself is not run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = '/usr/bin/python3';
const hasPython = existsSync(PYTHON);
const hasBash = existsSync('/bin/bash') || existsSync('/usr/bin/bash');
if (!hasPython) console.log(`package.test: ${PYTHON} is absent; the XML parse check is skipped`);

const packageJson = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
  name: string;
  version: string;
};
const packageXml = readFileSync(`${root}package.xml`, 'utf8');
const cmake = readFileSync(`${root}CMakeLists.txt`, 'utf8');

function tag(name: string): string[] {
  return [...packageXml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map(
    (m) => m[1] ?? '',
  );
}

describe('colcon packaging', () => {
  it.skipIf(!hasPython)('package.xml is well-formed XML with a <package format="3"> root', () => {
    const out = execFileSync(PYTHON, [
      '-c',
      'import sys, xml.dom.minidom as m; e = m.parse(sys.argv[1]).documentElement; print(e.tagName, e.getAttribute("format"))',
      `${root}package.xml`,
    ]);
    expect(out.toString().trim()).toBe('package 3');
  });

  it("name and version follow package.json (npm's vla-node is ROS's vla_node)", () => {
    expect(tag('name')).toEqual([packageJson.name.replaceAll('-', '_')]);
    expect(tag('version')).toEqual([packageJson.version]);
    expect(tag('buildtool_depend')).toEqual(['ament_cmake']);
    expect(tag('build_type')).toEqual(['ament_cmake']);
    expect(tag('exec_depend')).toEqual(
      expect.arrayContaining([
        'launch',
        'launch_ros',
        'sensor_msgs',
        'std_msgs',
        'trajectory_msgs',
        'diagnostic_msgs',
      ]),
    );
    expect(tag('exec_depend')).not.toContain('rclcpp');
  });

  it('CMakeLists.txt installs the launch, data and JavaScript directories and the wrapper', () => {
    expect(cmake).toContain('project(vla_node NONE)');
    expect(cmake).toMatch(/install\(\s*DIRECTORY launch config schema models bin\s/);
    expect(cmake).toContain('install(DIRECTORY dist DESTINATION share/${PROJECT_NAME})');
    expect(cmake).toContain('DESTINATION lib/${PROJECT_NAME})');
    // vla_node.launch.xml runs ../scripts/vla_node relative to itself, also when installed
    expect(cmake).toContain('DESTINATION share/${PROJECT_NAME}/scripts)');
    expect(cmake).not.toMatch(/DIRECTORY[^)]*node_modules/);
    expect(cmake).toContain('ament_package()');
  });

  it.skipIf(!hasBash)(
    'scripts/vla_node runs `vla-node ros` with its flags before -- and the ROS arguments after',
    () => {
      const run = (args: string[]): string =>
        execFileSync(`${root}scripts/vla_node`, args, {
          env: { ...process.env, VLA_NODE_EXECUTABLE: 'echo', VLA_NODE_ROOT: root },
        })
          .toString()
          .trim();
      const js = `${root}bin/vla-node.js`;
      expect(run(['--auto-activate', '--ros-args', '-r', '__ns:=/robot'])).toBe(
        `${js} ros --auto-activate -- --ros-args -r __ns:=/robot`,
      );
      expect(run([])).toBe(`${js} ros --`);
      // as vla_node.launch.xml calls it
      expect(
        run(['--params', 'p.yaml', '--image-transport', 'raw', '--', '--ros-args', '-r', 'a:=b']),
      ).toBe(`${js} ros --params p.yaml --image-transport raw -- --ros-args -r a:=b`);
    },
  );

  it('the launch files run the wrapper or bin/vla-node.js, which exist in the checkout', () => {
    const xml = readFileSync(`${root}launch/vla_node.launch.xml`, 'utf8');
    expect(xml).toContain('cmd="$(dirname)/../scripts/vla_node --params');
    expect(xml).toContain('<env name="VLA_NODE_EXECUTABLE" value="$(var node_executable)"/>');
    const py = readFileSync(`${root}launch/vla_node.launch.py`, 'utf8');
    expect(py).toContain("'lib', 'vla_node', 'vla_node'");
    expect(py).toContain("os.path.join(PACKAGE_ROOT, 'bin', 'vla-node.js'), 'ros'");
    expect(statSync(`${root}scripts/vla_node`).mode & 0o111).not.toBe(0);
    expect(existsSync(`${root}bin/vla-node.js`)).toBe(true);
  });
});
