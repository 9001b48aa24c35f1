/**
 * The live-graph tests' tools: whether a live ROS 2 graph can run here (and why not), the
 * loopback-only DDS environment of every process they start, the node started as a user starts
 * it (real processes), the `ros2` command line, and the rclpy probe (probe.py) that publishes
 * camera frames, instructions, joint states and /clock and reports what the node publishes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { FIXTURES, HAS_FIXTURES, ROOT } from '../helpers.js';
import { RCLNODEJS_BUILD } from '../../src/transports/ros/load.js';

export const PYTHON = '/usr/bin/python3';
const PROBE = join(ROOT, 'test/ros-live/probe.py');
const RCLNODEJS_BINARY = join(ROOT, 'node_modules/rclnodejs/build/Release/rclnodejs.node');

/** Why the live-graph tests cannot run here, or undefined when they can. */
function liveReason(): string | undefined {
  if ((process.env.ROS_DISTRO ?? '') === '') {
    return 'ROS 2 is not sourced (no ROS_DISTRO): `source /opt/ros/<distro>/setup.bash` to run them';
  }
  if (!existsSync(RCLNODEJS_BINARY)) {
    return `rclnodejs is not built (no node_modules/rclnodejs/build/Release/rclnodejs.node): \`${RCLNODEJS_BUILD}\` with ROS 2 sourced`;
  }
  if (!HAS_FIXTURES) return `the real photographs of ${FIXTURES} are missing`;
  const python = spawnSync(PYTHON, ['-c', 'import rclpy, launch_ros'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
  });
  if (python.status !== 0) {
    return `${PYTHON} cannot import rclpy and launch_ros: ${(python.stderr || String(python.error)).trim().split('\n').pop() ?? ''}`;
  }
  const ros2 = spawnSync('ros2', ['--help'], { encoding: 'utf8' });
  if (ros2.status !== 0) return 'the ros2 command is not on the PATH';
  return undefined;
}

/** Why the suite is skipped; printed once per file by {@link announce}. */
export const LIVE_REASON = liveReason();

/** Print why a live-graph file is skipped (the project's rule: no silent skip). */
export function announce(file: string): void {
  if (LIVE_REASON !== undefined)
    console.warn(`skipping the live ROS 2 tests of ${file}: ${LIVE_REASON}`);
}

/**
 * The environment of every process of one test file: its own ROS domain (so test files running
 * side by side never see each other), and DDS on loopback only: Cyclone DDS on `lo` with
 * multicast off and 127.0.0.1 as its only peer, discovery limited to this host.
 */
export function liveEnv(domainId: number, logDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // ROS 2's Python tools run with the python3 it was built for.
    PATH: `/usr/bin:${process.env.PATH ?? ''}`,
    ROS_DOMAIN_ID: String(domainId),
    RMW_IMPLEMENTATION: 'rmw_cyclonedds_cpp',
    ROS_AUTOMATIC_DISCOVERY_RANGE: 'LOCALHOST',
    CYCLONEDDS_URI: `file://${join(ROOT, 'test/ros-live/cyclonedds-loopback.xml')}`,
    ROS_LOG_DIR: logDir,
    PYTHONUNBUFFERED: '1',
    RCUTILS_COLORIZED_OUTPUT: '0',
  };
}

/** Poll `check` every 100 ms until it returns a value (not undefined/false) or `ms` pass. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 60_000,
  describe?: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${describe ? `\n${describe()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A process the tests started, with its output collected. */
export class LiveProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd = ROOT) {
    // Its own process group: `ros2 launch` starts the node as a child, and cleanup ends both.
    this.child = spawn(command, args, {
      cwd,
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const collect = (b: Buffer): void => {
      this.output += b.toString('utf8');
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Wait until the output matches `pattern`. */
  async waitOutput(pattern: RegExp, ms = 120_000): Promise<void> {
    await waitFor(
      `output ${String(pattern)}`,
      () => pattern.test(this.output),
      ms,
      () => this.tail(),
    );
  }

  /** Send a signal to the process itself (as a terminal's Ctrl-C reaches `ros2 launch`). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** End the whole process group (cleanup after a failed test). */
  async kill(): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.exited;
  }

  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }
}

/** Run a `ros2` command to its end; `--no-daemon` commands leave no daemon behind. */
export async function ros2(
  env: NodeJS.ProcessEnv,
  args: readonly string[],
  ms = 60_000,
): Promise<{ code: number | null; out: string }> {
  const p = new LiveProcess('ros2', args, env);
  const timer = setTimeout(() => {
    void p.kill();
  }, ms);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, out: p.output };
}

/**
 * `ros2 lifecycle set` (or `ros2 param set`) until the node is found: discovery on a loaded
 * machine can outlast the CLI's spin time, in which case it prints "Node not found".
 */
export async function ros2Node(
  env: NodeJS.ProcessEnv,
  args: readonly string[],
  ms = 90_000,
): Promise<{ code: number | null; out: string }> {
  const withOptions = [...args.slice(0, 2), '--no-daemon', '--spin-time', '1', ...args.slice(2)];
  return waitFor(
    `ros2 ${args.join(' ')}`,
    async () => {
      const r = await ros2(env, withOptions);
      return /Node not found|not available|Waiting for service/i.test(r.out) && r.code !== 0
        ? undefined
        : r;
    },
    ms,
  );
}

/** The robot-side topics a launch test wires the node to. */
export interface NodeTopics {
  readonly instruction: string;
  readonly joints: string;
  readonly trajectory: string;
  readonly command: string;
  readonly raw: string;
}

/**
 * `ros2 launch` arguments for the package's Python launch file with the node's instruction, joint
 * state and action topics remapped to `topics`, then `extra` (model, cameras, parameters).
 */
export function launchPyArgs(topics: NodeTopics, extra: readonly string[]): string[] {
  return [
    'launch',
    './launch/vla_node.launch.py',
    ...extra,
    `instruction_topic:=${topics.instruction}`,
    `joint_states_topic:=${topics.joints}`,
    `action_topic:=${topics.trajectory}`,
    `command_topic:=${topics.command}`,
    `action_raw_topic:=${topics.raw}`,
  ];
}

/**
 * `ros2 launch` of the package's Python launch file ({@link launchPyArgs}), killed by `cleanup`.
 */
export function launchPy(
  topics: NodeTopics,
  extra: readonly string[],
  env: NodeJS.ProcessEnv,
  cleanup: Cleanup,
): LiveProcess {
  const launch = new LiveProcess('ros2', launchPyArgs(topics, extra), env);
  cleanup.add(() => launch.kill());
  return launch;
}

/** A message the probe received from the node. */
export interface ProbeMessage {
  readonly event: 'message';
  readonly topic: string;
  readonly [field: string]: unknown;
}

interface ProbeEvent {
  readonly event: string;
  readonly op?: string;
  readonly id?: string;
  readonly error?: string;
  readonly topic?: string;
}

/** The rclpy probe (probe.py): publishes what a robot would, records what the node publishes. */
export class Probe {
  readonly process: LiveProcess;
  readonly messages: ProbeMessage[] = [];
  readonly errors: string[] = [];
  #acks = 0;
  #buffer = '';

  constructor(env: NodeJS.ProcessEnv) {
    this.process = new LiveProcess(PYTHON, [PROBE], env);
    this.process.child.stdout?.on('data', (b: Buffer) => {
      this.#buffer += b.toString('utf8');
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const e = JSON.parse(line) as ProbeEvent;
        if (e.event === 'message') this.messages.push(e as unknown as ProbeMessage);
        else if (e.event === 'ok' || e.event === 'ready') this.#acks++;
        else if (e.event === 'error') this.errors.push(e.error ?? '');
      }
    });
  }

  /** Wait until rclpy is up. */
  async ready(): Promise<void> {
    await waitFor('the rclpy probe', () => this.#acks > 0 || !this.process.running, 60_000);
    if (!this.process.running) throw new Error(`the probe ended:\n${this.process.tail()}`);
  }

  /** Send one command and wait for its acknowledgement. */
  /** Records each of `subscriptions` ([topic, message type]), in order. */
  async subscribe(subscriptions: readonly (readonly [string, string])[]): Promise<void> {
    for (const [topic, type] of subscriptions) await this.send({ op: 'subscribe', topic, type });
  }

  async send(cmd: Record<string, unknown>): Promise<void> {
    const want = this.#acks + 1;
    this.process.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
    await waitFor(`the probe to do ${JSON.stringify(cmd)}`, () => {
      if (this.errors.length > 0) throw new Error(`probe: ${this.errors.join('; ')}`);
      return this.#acks >= want;
    });
  }

  /** The messages received on `topic` so far. */
  on(topic: string): ProbeMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Wait for a message on `topic` (received after index `after`) that satisfies `test`. */
  async next(
    topic: string,
    test: (m: ProbeMessage) => boolean = () => true,
    ms = 90_000,
    after = 0,
  ): Promise<ProbeMessage> {
    return waitFor(
      `a message on ${topic}`,
      () => this.on(topic).slice(after).find(test),
      ms,
      () => {
        const last = this.on(topic).at(-1);
        return `last on ${topic}: ${last === undefined ? 'none' : JSON.stringify(last).slice(0, 600)}`;
      },
    );
  }

  /** Wait for a status of node `name` on /diagnostics that satisfies `test`. */
  async status(test: (s: NodeStatus) => boolean, name = 'vla_node'): Promise<NodeStatus> {
    const m = await this.next('/diagnostics', (x) => {
      const s = nodeStatus(x, name);
      return s !== undefined && test(s);
    });
    return nodeStatus(m, name) as NodeStatus;
  }

  async close(): Promise<void> {
    this.process.child.stdin?.end();
    const ended = await Promise.race([
      this.process.exited.then(() => true),
      new Promise<boolean>((r) => {
        setTimeout(() => {
          r(false);
        }, 10_000);
      }),
    ]);
    if (!ended) await this.process.kill();
  }
}

/** The diagnostics status of vla_node in a /diagnostics message. */
export interface NodeStatus {
  readonly level: number;
  readonly name: string;
  readonly message: string;
  readonly hardware_id: string;
  readonly values: Record<string, string>;
}

export function nodeStatus(m: ProbeMessage, name = 'vla_node'): NodeStatus | undefined {
  const status = m.status as NodeStatus[] | undefined;
  return status?.find((s) => s.name === `${name}: policy`);
}

/** The camera frames: a real photograph at 640x480 as rgb8 and bgr8 bytes and as a JPEG. */
export interface PhotoFiles {
  readonly dir: string;
  readonly rgb: string;
  readonly bgr: string;
  readonly jpeg: string;
  readonly width: 640;
  readonly height: 480;
}

export async function photoFiles(): Promise<PhotoFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'vla-live-'));
  const source = join(FIXTURES, 'real-images/Landscape_5.jpg');
  const { data } = await sharp(source)
    .rotate()
    .resize(640, 480, { fit: 'cover' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const bgr = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i += 3) {
    bgr[i] = data[i + 2] as number;
    bgr[i + 1] = data[i + 1] as number;
    bgr[i + 2] = data[i] as number;
  }
  const files = {
    dir,
    rgb: join(dir, 'photo.rgb'),
    bgr: join(dir, 'photo.bgr'),
    jpeg: join(dir, 'photo.jpg'),
    width: 640,
    height: 480,
  } as const;
  await writeFile(files.rgb, data);
  await writeFile(files.bgr, bgr);
  await writeFile(
    files.jpeg,
    await sharp(data, { raw: { width: 640, height: 480, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  return files;
}

/**
 * What a test file started, ended in reverse order by {@link Cleanup.run} (in afterAll), also
 * when its beforeAll failed half-way.
 */
export class Cleanup {
  readonly #steps: (() => Promise<void>)[] = [];
  add(step: () => Promise<void>): void {
    this.#steps.push(step);
  }
  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step();
  }
}

/**
 * A live test file's surroundings: its own ROS log folder and DDS settings (loopback, the file's
 * domain), the photograph's frames and a probe, each released by `cleanup`.
 */
export async function liveSession(
  domainId: number,
  cleanup: Cleanup,
): Promise<{ logDir: string; env: NodeJS.ProcessEnv; photo: PhotoFiles; probe: Probe }> {
  const logDir = await mkdtemp(join(tmpdir(), 'vla-live-log-'));
  cleanup.add(() => removeDir(logDir));
  const env = liveEnv(domainId, logDir);
  const photo = await photoFiles();
  cleanup.add(() => removeDir(photo.dir));
  const probe = new Probe(env);
  cleanup.add(() => probe.close());
  return { logDir, env, photo, probe };
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

/** The node's exit as the tests check it: status 0 and no native crash in its output. */
export function crashIn(output: string): string | undefined {
  const m = /Segmentation fault|SIGSEGV|core dumped|Aborted|terminate called|FATAL ERROR/i.exec(
    output,
  );
  return m?.[0];
}
