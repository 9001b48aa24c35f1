import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, TINY_VLA } from '../helpers.js';

// ONNX Runtime 1.29+ on Linux: 1DS telemetry on by default (upstream PRs 27379 and 29843). These
// tests run real sessions in child processes with a fresh TMPDIR and HOME and look at what they
// leave behind and, under strace, at every socket they open and file they read.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function works(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}
const HAS_STRACE = works('strace', ['-qq', '-e', 'trace=none', 'true']);
// A user and network namespace: a child that opts in can write its files but reach nothing.
const HAS_NETNS = works('unshare', ['-rn', 'true']);
if (!HAS_STRACE)
  console.warn('telemetry test: strace is not installed; checking files only, not sockets');
if (!HAS_NETNS)
  console.warn('telemetry test: unshare -rn is not permitted; skipping the opt-in control run');

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

interface ChildRun {
  readonly status: number | null;
  readonly stderr: string;
  /** Files left in the child's TMPDIR and HOME. */
  readonly left: string[];
  /** strace lines (socket, connect, openat), or undefined without strace. */
  readonly trace: string[] | undefined;
}

/** Variables a child must not inherit: our opt-out, and those by which ONNX Runtime spots CI. */
const HIDDEN_ENV = new Set([
  'ORT_DISABLE_TELEMETRY',
  'CI',
  'TF_BUILD',
  'GITHUB_ACTIONS',
  'CONTINUOUS_INTEGRATION',
  'BUILD_ID',
]);

function runChild(command: string[], options: { netns?: boolean } = {}): ChildRun {
  const root = mkdtempSync(join(tmpdir(), 'vla-telemetry-'));
  dirs.push(root);
  const tmp = join(root, 'tmp');
  const home = join(root, 'home');
  mkdirSync(tmp);
  mkdirSync(home);
  // ONNX Runtime's telemetry also stays off on CI machines (it reads CI, TF_BUILD and
  // GITHUB_ACTIONS, among others): the child runs without them, as on a robot, so that the control
  // run that opts in can show that the check sees the files.
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !HIDDEN_ENV.has(name))),
    TMPDIR: tmp,
    HOME: home,
  };
  const traceFile = join(root, 'strace.txt');
  const traced = HAS_STRACE
    ? ['strace', '-f', '-qq', '-e', 'trace=socket,connect,openat', '-o', traceFile, ...command]
    : command;
  const full = options.netns === true ? ['unshare', '-rn', ...traced] : traced;
  const r = spawnSync(full[0] as string, full.slice(1), {
    env,
    encoding: 'utf8',
    timeout: 120_000,
    cwd: ROOT,
  });
  const trace = HAS_STRACE ? readFileSync(traceFile, 'utf8').split('\n') : undefined;
  return { status: r.status, stderr: r.stderr, left: [...files(tmp), ...files(home)], trace };
}

/** A child that creates the pipeline through the library (dist/index.js) and runs warm-up. */
function libraryChild(telemetry: boolean | undefined): string[] {
  const backend = {
    executionProviders: ['cpu'],
    intraOpThreads: 1,
    interOpThreads: 1,
    graphOptimization: 'all',
    tensorrtCachePath: '',
    ...(telemetry === undefined ? {} : { telemetry }),
  };
  const options = {
    precision: 'fp32',
    backend,
    pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0, minKeepRatio: 0.1 },
    latencyBudgetMs: 0,
    limits: { min: [], max: [], maxDeltaPerStep: 0 },
    warmupRuns: 2,
  };
  const script = `
    import { VlaPipeline, loadModelPackage } from ${JSON.stringify(`${ROOT}dist/index.js`)};
    const p = await VlaPipeline.create(await loadModelPackage(${JSON.stringify(TINY_VLA)}), ${JSON.stringify(options)});
    await p.release();
    console.log('ran');`;
  return [process.execPath, '--input-type=module', '-e', script];
}

function network(trace: readonly string[]): string[] {
  return trace.filter((l) => /socket\(AF_INET6?,|connect\(/.test(l));
}

function telemetryReads(trace: readonly string[]): string[] {
  return trace.filter((l) => /machine-id|\.ses"|mat-debug|\.onnxruntime/.test(l));
}

describe('ONNX Runtime telemetry', () => {
  it('is off by default in the library: no device id, no debug log, no machine id, no socket', () => {
    const r = runChild(libraryChild(undefined));
    expect(r.status, r.stderr).toBe(0);
    expect(r.left).toEqual([]);
    if (r.trace !== undefined) {
      expect(r.trace.length).toBeGreaterThan(10); // strace saw the process
      expect(telemetryReads(r.trace)).toEqual([]);
      expect(network(r.trace)).toEqual([]);
    }
  });

  it('is off by default in the CLI (a sim run with backend.telemetry=false)', () => {
    const r = runChild([process.execPath, `${ROOT}bin/vla-node.js`, 'sim', '--episodes', '1']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.left).toEqual([]);
    if (r.trace !== undefined) {
      expect(telemetryReads(r.trace)).toEqual([]);
      expect(network(r.trace)).toEqual([]);
    }
  });

  it.skipIf(!HAS_NETNS)(
    'control: opted in (backend.telemetry: true) inside a network-less namespace, ONNX Runtime writes its files',
    () => {
      const r = runChild(libraryChild(true), { netns: true });
      expect(r.status, r.stderr).toBe(0);
      // The checks above would see these: they are not vacuous.
      expect(r.left.some((f) => /^mat-debug-\d+\.log$/.test(f))).toBe(true);
      expect(r.left).toContain('.ses');
    },
  );
});
