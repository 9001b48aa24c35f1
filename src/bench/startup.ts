import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../config/config.js';

export type StartupResult =
  | {
      readonly available: true;
      /** Spawn of a fresh `node` process → its first action chunk, measured by the parent. */
      readonly process_start_to_first_chunk_ms: number;
      /** Inside the child, from its time origin: modules imported, pipeline ready (model loaded,
       * sessions created, warmed up), first chunk. */
      readonly phases_ms: {
        readonly imported: number;
        readonly ready: number;
        readonly first_chunk: number;
      };
      /** Peak resident set size of the child after `inferences` frames. */
      readonly peak_rss_mib: number;
      readonly inferences: number;
    }
  | { readonly available: false; readonly reason: string };

/** The child: import the built library, load the package, run frames from the simulator camera. */
const CHILD = `
const t0 = performance.now();
const lib = await import(process.env.VLA_LIB);
const imported = performance.now();
const config = await lib.loadConfig({ overrides: { 'model.path': process.env.VLA_MODEL, 'model.precision': process.env.VLA_PRECISION } });
const model = await lib.loadModelPackage(process.env.VLA_MODEL);
const pipeline = await lib.VlaPipeline.create(model, lib.pipelineOptions(config, () => undefined));
const ready = performance.now();
const sim = new lib.TabletopSim({ seed: 1 });
const obs = sim.observe();
await pipeline.infer({ frame: obs.image, instruction: obs.instruction, state: obs.state });
const first = performance.now();
process.stdout.write(JSON.stringify({ event: 'first', imported, ready, first }) + '\\n');
const n = Number(process.env.VLA_INFERENCES);
for (let i = 0; i < n; i++) {
  const o = sim.observe();
  await pipeline.infer({ frame: o.image, instruction: o.instruction, state: o.state });
}
await pipeline.release();
process.stdout.write(JSON.stringify({ event: 'done', max_rss_kb: process.resourceUsage().maxRSS }) + '\\n');
`;

/**
 * Start-up and memory as a user sees them: a fresh Node process imports the built library
 * (dist/), loads `modelPath`, creates and warms the pipeline and computes one chunk from a
 * simulator camera frame; then it runs `inferences` more and reports its peak RSS. Needs the
 * build (`npm run build`, done by `npm ci`).
 */
export async function measureStartup(
  modelPath: string,
  precision: string,
  inferences: number,
): Promise<StartupResult> {
  const lib = join(PACKAGE_ROOT, 'dist', 'index.js');
  if (!existsSync(lib))
    return { available: false, reason: `the built library ${lib} is missing (npm run build)` };
  return new Promise((resolve) => {
    const started = performance.now();
    let firstAt = 0;
    let first: { imported: number; ready: number; first: number } | undefined;
    let buffer = '';
    let stderr = '';
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: {
        ...process.env,
        VLA_LIB: pathToFileURL(lib).href,
        VLA_MODEL: modelPath,
        VLA_PRECISION: precision,
        VLA_INFERENCES: String(inferences),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    let done: { max_rss_kb: number } | undefined;
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const msg = JSON.parse(line) as { event: string } & Record<string, number>;
        if (msg.event === 'first') {
          firstAt = performance.now();
          first = msg as unknown as typeof first;
        } else if (msg.event === 'done') done = msg as unknown as typeof done;
      }
    });
    child.on('close', (code) => {
      if (first === undefined || done === undefined) {
        resolve({
          available: false,
          reason: `the start-up probe exited with ${String(code)}: ${stderr.trim().split('\n').pop() ?? ''}`,
        });
        return;
      }
      const r1 = (v: number): number => Math.round(v * 10) / 10;
      resolve({
        available: true,
        process_start_to_first_chunk_ms: r1(firstAt - started),
        phases_ms: {
          imported: r1(first.imported),
          ready: r1(first.ready),
          first_chunk: r1(first.first),
        },
        peak_rss_mib: r1(done.max_rss_kb / 1024),
        inferences,
      });
    });
  });
}
