/**
 * The launch files: they parse (with python3 when present), their parameter-like arguments are
 * keys of the parameter schema and their remappings target the node's private topics.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configKeys, loadConfig } from '../../../src/config/index.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
import { cameraTopicRemaps, rosCommand, rosConfig } from '../../../src/cli/start.js';
import { ConfigError } from '../../../src/errors.js';
import { createRosDouble } from './double.js';
import { FakePipeline } from './support.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PY = `${root}launch/vla_node.launch.py`;
const XML = `${root}launch/vla_node.launch.xml`;
const PYTHON = '/usr/bin/python3';
const hasPython = existsSync(PYTHON);
if (!hasPython)
  console.log(`launch.test: ${PYTHON} is absent; the Python and XML parse checks are skipped`);

/** Launch arguments that set a vla-node parameter (through a command-line flag) → schema key. */
const PARAMETER_ARGUMENTS: Readonly<Record<string, string>> = {
  image_transport: 'ros.image_transport',
  joint_names: 'ros.joint_names',
  state_joint_names: 'ros.state_joint_names',
  auto_activate: 'ros.auto_activate',
  model: 'model.path',
  precision: 'model.precision',
};
/** Launch arguments that are not parameters: names, files, topics, the executable. */
const LAUNCH_ONLY = new Set([
  'use_sim_time',
  'node_name',
  'namespace',
  'params_file',
  'image_topic',
  'camera_topics',
  'instruction_topic',
  'joint_states_topic',
  'action_topic',
  'command_topic',
  'action_raw_topic',
  'node_executable',
]);

function pythonArguments(text: string): string[] {
  return [...text.matchAll(/^\s*\(\s*'([a-z_]+)',/gm)].map((m) => m[1] ?? '');
}
function xmlArguments(text: string): string[] {
  return [...text.matchAll(/<arg name="([a-z_]+)"/g)].map((m) => m[1] ?? '');
}
/** The `from` side of each `-r from:=to`, with `{image_in}` / `$(var image_in)` expanded. */
function remapSources(text: string, imageIn: readonly string[]): string[] {
  const froms = [
    ...[...text.matchAll(/'-r', f"([^:"]+):=/g)].map((m) => m[1] ?? ''),
    ...[...text.matchAll(/-r (\$\(var [a-z_]+\)|[^\s:"]+):=/g)].map((m) => m[1] ?? ''),
  ];
  return froms.flatMap((f) => (f === '{image_in}' || f === '$(var image_in)' ? imageIn : [f]));
}

async function privateTopics(): Promise<Set<string>> {
  const topics = new Set<string>();
  for (const imageTransport of ['raw', 'compressed'] as const) {
    const { api, nodes } = createRosDouble();
    const config = await loadConfig();
    const vla = new VlaRosNode({
      ros: api,
      config,
      options: { imageTransport },
      createPipeline: () => Promise.resolve(new FakePipeline()),
    });
    const node = nodes[0];
    if (node === undefined) throw new Error('no node created');
    node.configure();
    await vla.whenLoaded();
    for (const s of node.subscriptions) topics.add(s.topic);
    for (const p of node.publishers) topics.add(p.topic);
  }
  return new Set([...topics].filter((t) => t.startsWith('~/')));
}

describe('launch files', () => {
  const py = readFileSync(PY, 'utf8');
  const xml = readFileSync(XML, 'utf8');

  it.skipIf(!hasPython)('vla_node.launch.py compiles as Python', () => {
    expect(() =>
      execFileSync(PYTHON, ['-c', 'import ast,sys; ast.parse(open(sys.argv[1]).read())', PY]),
    ).not.toThrow();
  });

  it.skipIf(!hasPython)('vla_node.launch.xml is well-formed XML with a <launch> root', () => {
    const out = execFileSync(PYTHON, [
      '-c',
      'import sys, xml.dom.minidom as m; print(m.parse(sys.argv[1]).documentElement.tagName)',
      XML,
    ]);
    expect(out.toString().trim()).toBe('launch');
  });

  it('declares arguments that are launch-only or map to parameter schema keys', () => {
    const keys = new Set(configKeys());
    for (const key of Object.values(PARAMETER_ARGUMENTS)) expect(keys).toContain(key);
    const args = pythonArguments(py);
    expect(args.length).toBeGreaterThan(5);
    for (const arg of args) {
      expect(LAUNCH_ONLY.has(arg) || arg in PARAMETER_ARGUMENTS, `argument ${arg}`).toBe(true);
    }
    const xmlArgs = xmlArguments(xml);
    expect(xmlArgs.length).toBeGreaterThan(5);
    for (const arg of xmlArgs) expect(args, `XML argument ${arg}`).toContain(arg);
  });

  it('remaps only the node name, namespace and private topics of the node', async () => {
    const topics = await privateTopics();
    expect(topics).toContain('~/in/image/compressed');
    const allowed = new Set([...topics, '__node', '__ns']);
    const imageIn = ['~/in/image', '~/in/image/compressed'];
    for (const [name, text] of [
      ['launch.py', py],
      ['launch.xml', xml],
    ] as const) {
      const froms = remapSources(text, imageIn);
      expect(froms.length, name).toBeGreaterThanOrEqual(7);
      for (const from of froms) expect(allowed.has(from), `${name} remaps ${from}`).toBe(true);
      for (const topic of ['~/in/instruction', '~/in/joint_states', '~/out/action_chunk'])
        expect(froms, name).toContain(topic);
    }
  });

  it('launch/README.md has a table row for every ros.* parameter of the schema', () => {
    const readme = readFileSync(`${root}launch/README.md`, 'utf8');
    const rows = new Set([...readme.matchAll(/^\| `(ros\.[a-z_.]+)` \|/gm)].map((m) => m[1] ?? ''));
    const keys = configKeys().filter((k) => k.startsWith('ros.'));
    expect(keys.length).toBeGreaterThan(0);
    expect([...rows].sort()).toEqual([...keys].sort());
  });
});

/** The environment of a shell where ROS 2 is not sourced (so `vla-node ros` stops at loading rclnodejs). */
function unsourced(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.ROS_DISTRO;
  delete env.AMENT_PREFIX_PATH;
  return env;
}

/**
 * The argv of launch's `<executable cmd=...>` (launch/actions/execute_process.py
 * `_parse_cmdline`): text is split on spaces, a substitution's value never is.
 */
function xmlArgv(cmd: string, vars: Readonly<Record<string, string>>): string[] {
  const argv: string[] = [];
  let current: string | undefined;
  for (const part of cmd.split(/(\$\([a-z]+(?: [a-z_]+)?\))/)) {
    const sub = /^\$\(([a-z]+)(?: ([a-z_]+))?\)$/.exec(part);
    if (sub !== null) {
      const value = sub[1] === 'dirname' ? `${root}launch` : (vars[sub[2] ?? ''] ?? '');
      current = (current ?? '') + value;
      continue;
    }
    const tokens = part.split(/\s+/);
    tokens.forEach((token, i) => {
      if (i > 0 && current !== undefined) {
        argv.push(current);
        current = undefined;
      }
      if (token !== '') current = (current ?? '') + token;
    });
  }
  if (current !== undefined) argv.push(current);
  return argv;
}

describe('launch files start `vla-node ros` with arguments it accepts', () => {
  it.skipIf(!hasPython)(
    'vla_node.launch.py: the command for its defaults and for every argument set',
    () => {
      const script = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location('l', sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
value = {name: default for name, default, _ in m.ARGUMENTS}
every = dict(value, model='models/tiny-vla', precision='fp32', joint_names='x,y',
             state_joint_names='arm_x,arm_y', auto_activate='true', image_transport='compressed',
             camera_topics='table=/table_cam/image_raw,wrist=/wrist_cam/image_raw')
print(json.dumps([m.command_line(value), m.command_line(every)]))`;
      const [defaults, every] = JSON.parse(
        execFileSync(PYTHON, ['-c', script, PY]).toString(),
      ) as string[][];
      for (const argv of [defaults ?? [], every ?? []]) {
        expect(argv.slice(0, 3)).toEqual(['node', `${root}bin/vla-node.js`, 'ros']);
        const run = spawnSync(process.execPath, argv.slice(1), { env: unsourced(), cwd: root });
        // 1 with the ROS 2 message, not 2 for an option `vla-node ros` does not know
        expect(run.stderr.toString()).toMatch(
          /^vla-node ros: RosUnavailableError \[ROS_UNAVAILABLE\]: .*ROS 2 is not sourced/m,
        );
        expect(run.status).toBe(1);
      }
      expect(every).toContain('--auto-activate');
      expect(every).toContain('~/in/image/compressed:=/camera/image_raw');
      const pair = (flag: string): string[] => {
        const at = (every ?? []).indexOf(flag);
        return (every ?? []).slice(at, at + 2);
      };
      expect(pair('--camera-topics')).toEqual([
        '--camera-topics',
        'table=/table_cam/image_raw,wrist=/wrist_cam/image_raw',
      ]);
      expect(pair('--state-joint-names')).toEqual(['--state-joint-names', 'arm_x,arm_y']);
      expect(pair('--joint-names')).toEqual(['--joint-names', 'x,y']);
      // an empty argument leaves the parameter file's value: no flag at all
      expect(defaults).not.toContain('--state-joint-names');
    },
  );

  it('vla_node.launch.xml: each cmd is split into separate argv items that the wrapper runs', () => {
    const xml = readFileSync(XML, 'utf8');
    const cmds = [...xml.matchAll(/<executable cmd="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(cmds).toHaveLength(2);
    const defaults = Object.fromEntries(
      [...xml.matchAll(/<arg name="([a-z_]+)" default="([^"]*)"/g)].map((m) => [
        m[1] ?? '',
        (m[2] ?? '').replace('$(dirname)', `${root}launch`),
      ]),
    );
    for (const cmd of cmds) {
      const argv = xmlArgv(cmd, { ...defaults, image_in: '~/in/image' });
      expect(argv[0]).toBe(`${root}launch/../scripts/vla_node`);
      expect(argv).toContain('--ros-args');
      expect(argv).toContain('__node:=vla_node');
      expect(argv).toContain('~/in/image:=/camera/image_raw');
      // an empty argument is one empty argv item after its flag, which the node ignores
      for (const flag of ['--camera-topics', '--joint-names', '--state-joint-names']) {
        expect(argv.slice(argv.indexOf(flag), argv.indexOf(flag) + 2)).toEqual([flag, '']);
      }
      const run = spawnSync('bash', argv, { env: unsourced(), cwd: root });
      expect(run.stderr.toString()).toContain('ROS 2 is not sourced');
      expect(run.status).toBe(1);
    }
  });
});

describe('--joint-names and --state-joint-names (launch arguments joint_names, state_joint_names)', () => {
  it('set ros.joint_names and ros.state_joint_names; empty leaves the parameter file', async () => {
    const set = await rosConfig(
      { 'joint-names': 'arm_x, arm_y', 'state-joint-names': 'shoulder_pan_joint,elbow_joint' },
      false,
    );
    expect(set.ros.joint_names).toEqual(['arm_x', 'arm_y']);
    expect(set.ros.state_joint_names).toEqual(['shoulder_pan_joint', 'elbow_joint']);
    const file = await loadConfig();
    const empty = await rosConfig({ 'joint-names': '', 'state-joint-names': ' ' }, false);
    expect(empty.ros.joint_names).toEqual(file.ros.joint_names);
    expect(empty.ros.state_joint_names).toEqual(file.ros.state_joint_names);
  });
});

describe('--camera-topics (launch argument camera_topics)', () => {
  it("remaps each camera's private topic, raw or compressed, in a --ros-args section of its own", () => {
    expect(
      cameraTopicRemaps('table=/table_cam/image_raw, wrist=/wrist_cam/image_raw', 'raw'),
    ).toEqual([
      '--ros-args',
      '-r',
      '~/in/table:=/table_cam/image_raw',
      '-r',
      '~/in/wrist:=/wrist_cam/image_raw',
      '--',
    ]);
    expect(cameraTopicRemaps('wrist=/w/image_raw/compressed', 'compressed')).toEqual([
      '--ros-args',
      '-r',
      '~/in/wrist/compressed:=/w/image_raw/compressed',
      '--',
    ]);
    expect(cameraTopicRemaps('', 'raw')).toEqual([]);
    expect(cameraTopicRemaps(undefined, 'raw')).toEqual([]);
  });

  it('refuses an item that is not CAMERA=TOPIC, naming the flag', () => {
    for (const bad of ['table', 'table=', '=/t', 'table=/a b']) {
      let error: unknown;
      try {
        cameraTopicRemaps(bad, 'raw');
      } catch (e) {
        error = e;
      }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe('--camera-topics');
      expect((error as ConfigError).message).toContain('Expected CAMERA=TOPIC items');
    }
  });
});

describe('vla-node ros with a flow package', () => {
  const io = { json: true, progress: () => undefined, result: () => undefined };
  it('refuses the live view before loading ROS 2 or the model', async () => {
    await expect(
      rosCommand.run({ model: 'models/tiny-vla-flow', foxglove: '0' }, io, []),
    ).rejects.toMatchObject({ name: 'ConfigError', field: 'foxglove.enabled' });
  });
  it('refuses a malformed --camera-topics before loading ROS 2', async () => {
    await expect(
      rosCommand.run({ model: 'models/tiny-vla-flow', 'camera-topics': 'wrist' }, io, []),
    ).rejects.toMatchObject({ name: 'ConfigError', field: '--camera-topics' });
  });
});
