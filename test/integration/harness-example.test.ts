import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
// The package's public entry point, as a user imports it ('vla-node').
import {
  loadConfig,
  loadModelPackage,
  pipelineOptions,
  recordSim,
  replay,
  VlaPipeline,
} from '../../src/index.js';
import { TINY_VLA } from '../helpers.js';

let pipeline: VlaPipeline;
let dir: string;
beforeAll(async () => {
  const config = await loadConfig();
  pipeline = await VlaPipeline.create(
    await loadModelPackage(TINY_VLA),
    pipelineOptions(config, () => undefined),
  );
  dir = await mkdtemp(join(tmpdir(), 'vla-harness-'));
});
afterAll(async () => {
  await pipeline.release();
  await rm(dir, { recursive: true, force: true });
});

it('the README harness example: replay a bag and assert on the chunks against the expert', async () => {
  const bag = join(dir, 'expert_bag');
  const m = pipeline.model.manifest;
  await recordSim({
    out: bag,
    episodes: 3,
    seed: 4,
    controlRateHz: m.control_rate_hz,
    horizon: m.chunk.horizon,
  });
  const { chunks, metrics } = await replay(bag, { pipeline });
  expect(metrics.warnings).toEqual({});
  expect(chunks.length).toBe(metrics.messages['/camera/image_raw']);
  expect(Math.max(...(metrics.action_error?.max_abs ?? [Infinity]))).toBeLessThan(0.05);
});
