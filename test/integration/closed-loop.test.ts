import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline } from '../../src/pipeline/pipeline.js';
import { blindAgent, pipelineAgent, runEpisodes } from '../../src/sim/runner.js';
import { ROOT, testPipelineOptions, TINY_VLA } from '../helpers.js';

const run = promisify(execFile);
const CLI = `${ROOT}bin/vla-node.js`;

describe('closed loop with the shipped model', () => {
  let pipeline: VlaPipeline;
  beforeAll(async () => {
    pipeline = await VlaPipeline.create(await loadModelPackage(TINY_VLA), testPipelineOptions());
  });
  afterAll(async () => {
    await pipeline.release();
  });

  it('solves the tabletop tasks from camera frames and instructions, far above a language-blind agent', async () => {
    const options = {
      episodes: 40,
      seed: 2024,
      executeSteps: 4,
      maxSteps: 60,
      cameraWidth: 128,
      cameraHeight: 128,
    };
    const model = await runEpisodes(pipelineAgent(pipeline), options);
    const blind = await runEpisodes(blindAgent(8), options);
    expect(model.success_rate).toBeGreaterThanOrEqual(0.8);
    expect(model.by_task.reach.success_rate).toBeGreaterThanOrEqual(0.75);
    expect(model.by_task.relation.success_rate).toBeGreaterThanOrEqual(0.75);
    expect(model.success_rate).toBeGreaterThan(blind.success_rate + 0.4);
  });
});

describe('vla-node CLI (real processes)', () => {
  it('sim --json prints one JSON object with the documented fields', async () => {
    const { stdout, stderr } = await run(process.execPath, [
      CLI,
      'sim',
      '--episodes',
      '3',
      '--seed',
      '5',
      '--json',
    ]);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(report).toMatchObject({
      episodes: 3,
      provider: 'cpu',
      precision: 'fp32',
      visual_tokens: { total: 144, kept: 144 },
    });
    expect(report.success_rate).toBeTypeOf('number');
    expect(Object.keys(report.latency_ms as object)).toEqual(
      expect.arrayContaining(['p50', 'p95', 'p99']),
    );
    expect(Object.keys(report.stage_ms as object)).toEqual([
      'preprocess',
      'encode',
      'prune',
      'policy',
      'postprocess',
    ]);
    expect(stderr).toMatch(/episode 3\/3/);
  });

  it('--help lists the sub-commands', async () => {
    const { stdout } = await run(process.execPath, [CLI, '--help']);
    for (const c of ['start', 'sim', 'info', 'dataset'])
      expect(stdout).toMatch(new RegExp(`\\n  ${c} `));
  });

  it('info --json describes the model and the providers', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'info', '--json']);
    const info = JSON.parse(stdout) as {
      model: { visual_tokens: number };
      variants: { precision: string }[];
      execution_providers: { provider: string; available: boolean }[];
    };
    expect(info.model.visual_tokens).toBeGreaterThanOrEqual(144);
    expect(info.variants.map((v) => v.precision)).toContain('fp32');
    expect(info.execution_providers.find((p) => p.provider === 'cpu')?.available).toBe(true);
  });

  it.each([
    [['sim', '--set', 'pruning.keep_ratio=0'], /pruning.keep_ratio/, 'INVALID_CONFIG'],
    [['sim', '--model', '/nonexistent/model'], /manifest.json/, 'MODEL_FILE'],
    [['sim', '--agent', 'oracle'], /model\|expert\|blind/, 'INVALID_CONFIG'],
  ])('%j fails with a typed error and exit code 1', async (args, message, code) => {
    const error = (await run(process.execPath, [CLI, ...args, '--json']).catch(
      (e: unknown) => e,
    )) as { code: number; stdout: string; stderr: string };
    expect(error.code).toBe(1);
    expect(error.stderr).toMatch(message);
    expect((JSON.parse(error.stdout) as { error: { code: string } }).error.code).toBe(code);
  });

  it('an unknown command exits with 2 and the usage', async () => {
    const error = (await run(process.execPath, [CLI, 'fly']).catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(error.code).toBe(2);
    expect(error.stderr).toMatch(/unknown command "fly"/);
  });
});
