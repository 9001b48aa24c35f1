import { resolve } from 'node:path';
import sharp from 'sharp';
import { VlaPipeline } from '../pipeline/pipeline.js';
import { keptOverlay } from '../pruning/overlay.js';
import { episodeSeed } from '../util/rng.js';
import { TabletopSim } from '../sim/tabletop.js';
import type { CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

export const overlayCommand: CommandSpec = {
  name: 'overlay',
  summary: 'write a picture of which visual tokens a pruning strategy keeps on a simulator frame',
  options: {
    strategy: { type: 'string', help: 'pruning strategy (pruning.strategy)' },
    'keep-ratio': { type: 'string', help: 'fraction of tokens kept (pruning.keep_ratio)' },
    seed: {
      type: 'string',
      help: 'run seed (sim.seed); the frame is episode --episode of that run',
    },
    episode: { type: 'string', default: '0', help: 'episode index within the run' },
    scale: { type: 'string', default: '4', help: 'magnification of the written image' },
    out: {
      type: 'string',
      default: 'kept.png',
      help: 'PNG to write: the model input and the kept-token overlay side by side (an existing file needs --force)',
    },
    ...FORCE_OPTION,
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs(values, {
      strategy: 'pruning.strategy',
      'keep-ratio': 'pruning.keep_ratio',
      seed: 'sim.seed',
    });
    const model = await modelFromConfig(config);
    const m = model.manifest;
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out) }],
      [{ what: 'the model package', path: model.dir, enclosing: true }],
    );
    const pipeline = await VlaPipeline.create(
      model,
      pipelineOptions(config, (line) => {
        io.progress(line);
      }),
    );
    try {
      const sim = new TabletopSim({
        seed: episodeSeed(config.sim.seed, Number(values.episode)),
        cameraWidth: config.sim.camera_width,
        cameraHeight: config.sim.camera_height,
      });
      const obs = sim.observe();
      const chunk = await pipeline.infer({
        frame: obs.image,
        instruction: obs.instruction,
        state: obs.state,
      });
      const last = pipeline.lastSelection;
      if (last === undefined) throw new Error('the pipeline ran but recorded no selection');
      const w = m.image.width;
      const h = m.image.height;
      const overlay = keptOverlay(
        last.rgb,
        w,
        h,
        m.patch_grid,
        last.positions,
        last.positions.length,
      );
      const scale = Math.max(1, Math.round(Number(values.scale)));
      const side = await Promise.all(
        [last.rgb, overlay].map((px) =>
          sharp(px, { raw: { width: w, height: h, channels: 3 } })
            .resize(w * scale, h * scale, { kernel: 'nearest' })
            .png()
            .toBuffer(),
        ),
      );
      const out = resolve(String(values.out));
      await sharp({
        create: { width: 2 * w * scale + 8, height: h * scale, channels: 3, background: '#ffffff' },
      })
        .composite([
          { input: side[0] ?? Buffer.alloc(0), left: 0, top: 0 },
          { input: side[1] ?? Buffer.alloc(0), left: w * scale + 8, top: 0 },
        ])
        .png()
        .toFile(out);
      const result = {
        file: out,
        instruction: obs.instruction,
        strategy: config.pruning.strategy,
        kept: chunk.tokens.kept,
        total: chunk.tokens.total,
        positions: Array.from(last.positions),
      };
      io.result(
        result,
        `wrote ${out}: ${chunk.tokens.kept}/${chunk.tokens.total} tokens kept by ${config.pruning.strategy} for "${obs.instruction}"`,
      );
      return 0;
    } finally {
      await pipeline.release();
    }
  },
};
