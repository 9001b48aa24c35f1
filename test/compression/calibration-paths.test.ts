import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCalibrationSet } from '../../src/compression/calibration.js';
import { InputError } from '../../src/errors.js';

// A calibration set's frames.json names image files: they get the same rule as a model package's
// paths (inside the folder after `..` and symlinks, regular files only), so a tampered set cannot
// make compress read /etc/passwd or hang on a FIFO.
describe('readCalibrationSet confines the files frames.json names', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const set = (image: string, images?: unknown): string => {
    const root = mkdtempSync(join(tmpdir(), 'vla-calib-'));
    dirs.push(root);
    const dir = join(root, 'set');
    mkdirSync(dir);
    writeFileSync(join(root, 'outside.png'), 'not inside the set');
    writeFileSync(
      join(dir, 'frames.json'),
      JSON.stringify({
        format: 'vla-node/calibration@1',
        frames: [{ image, images, instruction: 'move', state: [0.5, 0.5] }],
      }),
    );
    return dir;
  };

  it.each([
    ['a path that leaves the set', '../outside.png', 'leads outside it'],
    ['an absolute path', '/etc/hostname', 'is absolute'],
    ['a folder', '.', 'is a folder'],
  ])('refuses %s with an InputError naming the frame', async (_what, image, fragment) => {
    const error = await readCalibrationSet(set(image)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe('calibration.frames[0].image');
    expect((error as InputError).message).toContain(fragment);
  });

  it('refuses a symbolic link that leads out of the set', async () => {
    const dir = set('link.png');
    symlinkSync(join(dir, '..', 'outside.png'), join(dir, 'link.png'));
    const error = await readCalibrationSet(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain('symbolic link that leads outside it');
  });

  it('confines the further cameras of a two-camera set alike, naming the camera', async () => {
    const dir = set('outside-is-fine-here.png', { wrist: '../outside.png' });
    writeFileSync(join(dir, 'outside-is-fine-here.png'), 'a file inside the set');
    const error = await readCalibrationSet(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe('calibration.frames[0].images.wrist');
    expect((error as InputError).message).toContain('leads outside it');
  });

  it('refuses images that is not a map of camera names to paths', async () => {
    const dir = set('frame.png', ['frames/wrist/0000.png']);
    writeFileSync(join(dir, 'frame.png'), 'a file inside the set');
    const error = await readCalibrationSet(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).field).toBe('calibration.frames[0].images');
  });
});
