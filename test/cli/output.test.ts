/**
 * Output paths against input paths: `replay BAG.mcap --out BAG.mcap` used to truncate its input
 * to 168 bytes and exit 0, and any existing output was replaced without a word.
 */
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandIo, CommandSpec } from '../../src/cli/command.js';
import { commandHelp } from '../../src/cli/command.js';
import { benchPruningCommand } from '../../src/cli/bench-pruning.js';
import { benchReportCommand } from '../../src/cli/bench-report.js';
import { compressCommand } from '../../src/cli/compress.js';
import { datasetCommand } from '../../src/cli/dataset.js';
import { overlayCommand } from '../../src/cli/overlay.js';
import { recordSimCommand } from '../../src/cli/record-sim.js';
import { replayCommand } from '../../src/cli/replay.js';
import { ConfigError } from '../../src/errors.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline } from '../../src/pipeline/pipeline.js';
import { BagError, recordSim, replay } from '../../src/transports/mcap/index.js';
import { guardOutputs } from '../../src/util/paths.js';
import { ROOT, testPipelineOptions, TINY_VLA } from '../helpers.js';

const io: CommandIo = { json: true, progress: () => undefined, result: () => undefined };
const set = ['sim.max_steps=6', 'backend.intra_op_threads=1', 'backend.warmup_runs=1'];

let dir: string;
let bagDir: string;
let bag: string;
let original: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vla-output-'));
  bagDir = join(dir, 'bag');
  await recordSim({
    out: bagDir,
    episodes: 1,
    seed: 1,
    maxSteps: 6,
    controlRateHz: 10,
    horizon: 8,
  });
  bag = join(bagDir, 'bag_0.mcap');
  original = readFileSync(bag);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function refused(run: Promise<unknown>, field: string, message: RegExp): Promise<void> {
  const error = await run.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).field).toBe(field);
  expect((error as ConfigError).message).toMatch(message);
}

describe('replay --out', () => {
  const replayValues = (out: string, force = false) => ({
    out,
    force,
    rate: 'max',
    model: TINY_VLA,
    precision: 'fp32',
    providers: '[cpu]',
    strategy: 'none',
    set,
  });

  it('refuses to write over the BAG it reads, by name, by symlink and by hard link', async () => {
    const alias = join(dir, 'alias.mcap');
    symlinkSync(bag, alias);
    const hard = join(dir, 'hard.mcap');
    linkSync(bag, hard);
    for (const out of [bag, alias, hard]) {
      await refused(
        replayCommand.run(replayValues(out, true), io, [bag]),
        'out',
        /is the same file: writing it would destroy the input/,
      );
    }
    expect(readFileSync(bag).equals(original)).toBe(true);
  });

  it('refuses to write inside the bag folder or the model package', async () => {
    await refused(
      replayCommand.run(replayValues(join(bagDir, 'chunks.mcap')), io, [bagDir]),
      'out',
      /outside BAG .* is inside it/,
    );
    await refused(
      replayCommand.run(replayValues(join(TINY_VLA, 'chunks.mcap')), io, [bag]),
      'out',
      /outside the model package/,
    );
  });

  it('replaces an existing output only with --force', async () => {
    const out = join(dir, 'existing.mcap');
    writeFileSync(out, 'precious');
    await refused(
      replayCommand.run(replayValues(out), io, [bag]),
      'out',
      /exists; pass --force to overwrite it/,
    );
    expect(readFileSync(out, 'utf8')).toBe('precious');
    expect(await replayCommand.run(replayValues(out, true), io, [bag])).toBe(0);
    expect(readFileSync(out).subarray(1, 5).toString()).toBe('MCAP');
  });

  it('is refused by the library too (a BagError), whatever the caller', async () => {
    const pipeline = await VlaPipeline.create(
      await loadModelPackage(TINY_VLA),
      testPipelineOptions(),
    );
    try {
      const error = await replay(bag, { pipeline, out: bag }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BagError);
      expect((error as BagError).field).toBe('out');
      expect(readFileSync(bag).equals(original)).toBe(true);
    } finally {
      await pipeline.release();
    }
  });
});

describe('other writing commands', () => {
  it('record-sim: never into the model package, an existing .mcap only with --force', async () => {
    await refused(
      recordSimCommand.run({ out: join(TINY_VLA, 'bag'), model: TINY_VLA, set }, io, []),
      'out',
      /outside the model package/,
    );
    const out = join(dir, 'sim.mcap');
    writeFileSync(out, 'x');
    await refused(
      recordSimCommand.run({ out, model: TINY_VLA, episodes: '1', set }, io, []),
      'out',
      /exists/,
    );
  });

  it('overlay: an existing PNG only with --force, never the parameter file', async () => {
    const png = join(dir, 'kept.png');
    writeFileSync(png, 'x');
    await refused(overlayCommand.run({ out: png, set }, io, []), 'out', /exists/);
    const params = join(dir, 'params.yaml');
    writeFileSync(params, readFileSync(join(ROOT, 'config', 'vla_node.param.yaml')));
    await refused(
      overlayCommand.run({ out: params, params, force: true, set }, io, []),
      'out',
      /different file from --params/,
    );
  });

  it('dataset: existing dataset files only with --force', async () => {
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'meta.json'), '{}');
    const values = {
      out: data,
      model: TINY_VLA,
      episodes: '1',
      horizon: '8',
      grid: '12',
      size: '96',
    };
    await refused(datasetCommand.run(values, io, []), 'out', /meta\.json exists/);
    expect(readFileSync(join(data, 'meta.json'), 'utf8')).toBe('{}');
  });

  it('bench pruning and bench report: existing result files only with --force', async () => {
    const out = join(dir, 'bench');
    mkdirSync(out);
    writeFileSync(join(out, 'pruning.md'), 'x');
    writeFileSync(join(out, 'report.json'), 'x');
    await refused(
      benchPruningCommand.run({ out, episodes: '1', seed: '1', set }, io, []),
      'out',
      /pruning\.md exists/,
    );
    await refused(
      benchReportCommand.run(
        {
          out,
          repeats: '1',
          frames: '1',
          'realistic-frames': '1',
          episodes: '1',
          seed: '0',
          realistic: '',
          python: '/bin/false',
          set,
        },
        io,
        [],
      ),
      'out',
      /report\.json exists/,
    );
  });

  it('compress: --ranges-out never a model file or the calibration index', async () => {
    await refused(
      compressCommand.run(
        {
          model: TINY_VLA,
          calibration: join(dir, 'calib'),
          'ranges-out': join(TINY_VLA, 'manifest.json'),
          force: true,
        },
        io,
        [],
      ),
      'ranges-out',
      /outside the model package/,
    );
  });

  it('documents --force in the help of every writing command', () => {
    const writers: CommandSpec[] = [
      replayCommand,
      recordSimCommand,
      overlayCommand,
      datasetCommand,
      benchPruningCommand,
      benchReportCommand,
      compressCommand,
    ];
    for (const c of writers) expect(commandHelp(c)).toMatch(/--force\s+overwrite existing output/);
  });
});

describe('guardOutputs', () => {
  it('refuses an output that is a folder or a device, even with force', async () => {
    await refused(
      guardOutputs([{ flag: 'out', path: dir }], [], { force: true }),
      'out',
      /is a folder/,
    );
    await refused(
      guardOutputs([{ flag: 'out', path: '/dev/null' }], [], { force: true }),
      'out',
      /not a regular file/,
    );
  });

  it('accepts a new file beside the inputs and ignores inputs that do not exist', async () => {
    await expect(
      guardOutputs(
        [{ flag: 'out', path: join(dir, 'new', 'file.mcap') }],
        [
          { what: 'BAG', path: bag, enclosing: true },
          { what: 'gone', path: join(dir, 'gone'), enclosing: true },
        ],
        { force: false },
      ),
    ).resolves.toBeUndefined();
  });
});
