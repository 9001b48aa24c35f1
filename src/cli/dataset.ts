import { join, resolve } from 'node:path';
import { DATASET_FILES, writeDataset } from '../sim/dataset.js';
import { WordTokenizer } from '../model/tokenizer.js';
import { WRIST_SPAN } from '../sim/wrist.js';
import type { CommandSpec } from './command.js';
import { checkOutputs, FORCE_OPTION } from './output.js';

export const datasetCommand: CommandSpec = {
  name: 'dataset',
  summary: 'record scripted-expert demonstrations from the simulator (training recipe input)',
  options: {
    episodes: { type: 'string', default: '2400', help: 'number of episodes' },
    seed: { type: 'string', default: '7', help: 'dataset seed' },
    out: {
      type: 'string',
      default: 'models/tiny-vla/train/data',
      help: 'output folder (existing dataset files there need --force)',
    },
    ...FORCE_OPTION,
    model: {
      type: 'string',
      default: 'models/tiny-vla',
      help: 'model package (for image size and tokenizer)',
    },
    horizon: { type: 'string', default: '8', help: 'action chunk length' },
    grid: { type: 'string', default: '12', help: 'patch grid side' },
    size: { type: 'string', default: '96', help: 'model image side in pixels' },
    wrist: {
      type: 'boolean',
      default: false,
      help: 'also record the wrist camera (two-camera data for flow models, e.g. models/tiny-vla-flow)',
    },
  },
  async run(values, io) {
    const model = resolve(String(values.model));
    // The training data lives beside the model (models/NAME/train/data), so only the files it
    // reads are protected, not the whole package.
    await checkOutputs(
      values,
      [{ flag: 'out', path: String(values.out), files: DATASET_FILES }],
      [
        { what: 'the tokenizer', path: join(model, 'tokenizer.json') },
        { what: 'the manifest', path: join(model, 'manifest.json') },
      ],
    );
    const tokenizer = await WordTokenizer.load(join(model, 'tokenizer.json'));
    const size = Number(values.size);
    const grid = Number(values.grid);
    const episodes = Number(values.episodes);
    const meta = await writeDataset({
      out: resolve(String(values.out)),
      episodes,
      seed: Number(values.seed),
      horizon: Number(values.horizon),
      image: {
        width: size,
        height: size,
        resize: 'stretch',
        mean: [0.5, 0.5, 0.5],
        std: [0.25, 0.25, 0.25],
      },
      grid: { width: grid, height: grid },
      tokenizer,
      noisyFraction: 0.5,
      noiseStd: 0.02,
      ...(values.wrist === true ? { wrist: { span: WRIST_SPAN } } : {}),
      onEpisode: (i) => {
        if ((i + 1) % 100 === 0 || i + 1 === episodes) io.progress(`episode ${i + 1}/${episodes}`);
      },
    });
    io.result(meta);
    return 0;
  },
};
