/**
 * The launch files: they parse (with python3 when present), their parameter-like arguments are
 * keys of the parameter schema and their remappings target the node's private topics.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configKeys, loadConfig } from '../../../src/config/index.js';
import { VlaRosNode } from '../../../src/transports/ros/node.js';
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
  'instruction_topic',
  'joint_states_topic',
  'action_topic',
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
