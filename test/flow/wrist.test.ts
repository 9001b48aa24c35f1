import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import { writeDataset } from '../../src/sim/dataset.js';
import { renderScene } from '../../src/sim/render.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { COLOURS, WORLD } from '../../src/sim/world.js';
import { renderWrist, WRIST_SPAN, wristObjectMask } from '../../src/sim/wrist.js';
import { TINY_VLA } from '../helpers.js';

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

function pixel(data: Uint8Array, width: number, x: number, y: number): number[] {
  const o = (y * width + x) * 3;
  return [data[o] ?? -1, data[o + 1] ?? -1, data[o + 2] ?? -1];
}

describe('the wrist camera', () => {
  it('is centred on the end effector, at the tabletop camera resolution, and deterministic', () => {
    const sim = new TabletopSim({ seed: 3 });
    const a = sim.wristImage();
    expect([a.width, a.height]).toEqual([sim.cameraWidth, sim.cameraHeight]);
    const first = Uint8Array.from(a.data);
    expect(Uint8Array.from(new TabletopSim({ seed: 3 }).wristImage().data)).toEqual(first);
    // The effector's white core fills the centre of the image.
    expect(pixel(first, a.width, a.width / 2, a.height / 2)).toEqual([245, 245, 245]);
    // It moves with the effector: after a step the image differs, the centre does not.
    sim.step([0.5, 0.5]);
    const b = sim.wristImage();
    expect(Uint8Array.from(b.data)).not.toEqual(first);
    expect(pixel(b.data, b.width, b.width / 2, b.height / 2)).toEqual([245, 245, 245]);
  });

  it('shows a block next to the effector magnified 1/span times', () => {
    const block = { colour: 'red' as const, centre: { x: 0.5, y: 0.5 } };
    const effector = { x: 0.5 - 0.12, y: 0.5 };
    const w = 128;
    const wrist = new Uint8Array(w * w * 3);
    renderWrist([block], effector, w, w, wrist);
    const table = new Uint8Array(w * w * 3);
    renderScene([block], effector, w, w, table);
    const redPixels = (img: Uint8Array): number => {
      let n = 0;
      for (let i = 0; i < img.length; i += 3) {
        if (
          img[i] === COLOURS.red[0] &&
          img[i + 1] === COLOURS.red[1] &&
          img[i + 2] === COLOURS.red[2]
        )
          n++;
      }
      return n;
    };
    // The block is fully inside both views: its area scales with the zoom squared.
    const ratio = redPixels(wrist) / redPixels(table);
    expect(ratio).toBeGreaterThan(0.8 / WRIST_SPAN ** 2);
    expect(ratio).toBeLessThan(1.2 / WRIST_SPAN ** 2);
    // Right of the centre by 0.12 table units = 0.12 / span of the image width.
    const x = Math.round(w / 2 + (0.12 / WRIST_SPAN) * w);
    expect(pixel(wrist, w, x, w / 2)).toEqual([...COLOURS.red]);
  });

  it('marks the patches that show a block or the effector', () => {
    const mask = new Uint8Array(64);
    wristObjectMask([], { x: 0.5, y: 0.5 }, 8, 8, mask);
    // Only the effector: the cells around the centre.
    const r = WORLD.effectorRadius / WRIST_SPAN; // in image widths
    const marked = [...mask.entries()].filter(([, v]) => v === 1).map(([i]) => i);
    expect(marked.length).toBeGreaterThan(0);
    for (const i of marked) {
      const cx = ((i % 8) + 0.5) / 8 - 0.5;
      const cy = (Math.floor(i / 8) + 0.5) / 8 - 0.5;
      expect(Math.abs(cx)).toBeLessThan(r + 1 / 8);
      expect(Math.abs(cy)).toBeLessThan(r + 1 / 8);
    }
  });
});

describe('vla-node dataset --wrist', () => {
  it('records both cameras; without it the one-camera format is unchanged', async () => {
    const tokenizer = await WordTokenizer.load(join(TINY_VLA, 'tokenizer.json'));
    const common = {
      episodes: 2,
      seed: 7,
      horizon: 16,
      image: {
        width: 64,
        height: 64,
        resize: 'stretch',
        mean: [0.5, 0.5, 0.5],
        std: [0.25, 0.25, 0.25],
      },
      grid: { width: 8, height: 8 },
      tokenizer,
      noisyFraction: 0.5,
      noiseStd: 0.02,
    } as const;
    const two = await mkdtemp(join(tmpdir(), 'vla-flow-data-'));
    const one = await mkdtemp(join(tmpdir(), 'vla-flow-data-'));
    temps.push(two, one);
    const metaTwo = await writeDataset({ ...common, out: two, wrist: { span: WRIST_SPAN } });
    const metaOne = await writeDataset({ ...common, out: one });
    expect(metaTwo.cameras).toEqual(['table', 'wrist']);
    expect(metaTwo.wrist_span).toBe(WRIST_SPAN);
    expect(metaOne.cameras).toBeUndefined();
    expect((await readdir(one)).sort()).toEqual(
      [
        'actions.f32',
        'episode.i32',
        'images.u8',
        'meta.json',
        'saliency.u8',
        'states.f32',
        'tokens.i32',
      ].sort(),
    );
    // The same demonstrations: the table camera's bytes are identical, the wrist's are new.
    const table = await readFile(join(two, 'images.u8'));
    expect(table.equals(await readFile(join(one, 'images.u8')))).toBe(true);
    const wrist = await readFile(join(two, 'images_wrist.u8'));
    expect(wrist.length).toBe(table.length);
    expect(wrist.equals(table)).toBe(false);
    expect((await readFile(join(two, 'saliency_wrist.u8'))).length).toBe(metaTwo.samples * 64);
  });
});
