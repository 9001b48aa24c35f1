import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, it, expect, vi } from 'vitest';
import { InputError } from '../../src/errors.js';
import {
  FrameIngest,
  SUPPORTED_ENCODINGS,
  type Frame,
  type ImageInputSpec,
  type RawFrame,
  type ResizeMode,
} from '../../src/ingest/index.js';
import { kernels } from '../../src/native/index.js';

type Rgb = readonly [number, number, number];

const IDENTITY = { mean: [0, 0, 0], std: [1, 1, 1] } as const;

function ingest(width: number, height: number, resize: ResizeMode = 'stretch'): FrameIngest {
  return new FrameIngest({ width, height, resize, ...IDENTITY });
}

const LAYOUT: Readonly<
  Record<string, { order: readonly number[]; alpha: boolean; deep: boolean }>
> = {
  rgb8: { order: [0, 1, 2], alpha: false, deep: false },
  bgr8: { order: [2, 1, 0], alpha: false, deep: false },
  rgba8: { order: [0, 1, 2], alpha: true, deep: false },
  bgra8: { order: [2, 1, 0], alpha: true, deep: false },
  mono8: { order: [0], alpha: false, deep: false },
  mono16: { order: [0], alpha: false, deep: true },
  rgb16: { order: [0, 1, 2], alpha: false, deep: true },
  bgr16: { order: [2, 1, 0], alpha: false, deep: true },
};

/**
 * Encode an 8-bit RGB image given per pixel into a raw frame of `encoding`, with `pad` junk bytes
 * at the end of each row. 16-bit samples are `v * 257 + 100`, which scales back to `v` but has a
 * low byte that makes a byte-order mistake visible.
 */
function makeRaw(
  encoding: string,
  width: number,
  height: number,
  pixel: (x: number, y: number) => Rgb,
  options: { pad?: number; isBigEndian?: boolean } = {},
): RawFrame {
  const layout = LAYOUT[encoding];
  if (layout === undefined) throw new Error(`no layout for ${encoding}`);
  const channels = layout.order.length + (layout.alpha ? 1 : 0);
  const depth = layout.deep ? 2 : 1;
  const step = width * channels * depth + (options.pad ?? 0);
  const data = new Uint8Array(step * height).fill(0xa5);
  const bigEndian = options.isBigEndian ?? false;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const rgb = pixel(x, y);
      const samples = [...layout.order.map((c) => rgb[c] ?? 0), ...(layout.alpha ? [77] : [])];
      samples.forEach((v, i) => {
        const at = y * step + (x * channels + i) * depth;
        if (depth === 1) {
          data[at] = v;
        } else {
          const w = v * 257 + (v === 255 ? 0 : 100);
          data[at + (bigEndian ? 0 : 1)] = w >> 8;
          data[at + (bigEndian ? 1 : 0)] = w & 0xff;
        }
      });
    }
  }
  return {
    kind: 'raw',
    width,
    height,
    encoding,
    data,
    ...(options.pad === undefined ? {} : { step }),
    ...(options.isBigEndian === undefined ? {} : { isBigEndian: options.isBigEndian }),
  };
}

function pixelAt(rgb: Uint8Array, width: number, x: number, y: number): Rgb {
  const i = (y * width + x) * 3;
  return [rgb[i] ?? -1, rgb[i + 1] ?? -1, rgb[i + 2] ?? -1];
}

function expectAll(rgb: Uint8Array, expected: Rgb, tolerance = 0): void {
  for (let i = 0; i < rgb.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const got = rgb[i + c] ?? -1;
      if (Math.abs(got - (expected[c] ?? 0)) > tolerance) {
        expect.fail(`pixel ${i / 3} channel ${c}: expected ${expected[c]} but got ${got}`);
      }
    }
  }
}

async function expectInputError(
  promise: Promise<unknown>,
  field: string,
  ...fragments: string[]
): Promise<InputError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  const inputError = error as InputError;
  expect(inputError.field).toBe(field);
  for (const fragment of fragments) expect(inputError.message).toContain(fragment);
  return inputError;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

describe('raw frames', () => {
  const cases = [
    // The interleaved encodings; the YUV and Bayer ones are tested on real frames in raw-encodings.test.ts.
    ...SUPPORTED_ENCODINGS.filter((e) => e in LAYOUT && e !== 'mono16').map((encoding) => ({
      encoding,
      isBigEndian: undefined,
    })),
    { encoding: 'mono16', isBigEndian: false },
    { encoding: 'mono16', isBigEndian: true },
    { encoding: 'rgb16', isBigEndian: true },
  ];
  const mono = (e: string): boolean => e.startsWith('mono');
  // A gradient with distinct channels, so swaps and row offsets show.
  const gradient =
    (encoding: string) =>
    (x: number, y: number): Rgb => {
      const v = 40 * y + 10 * x + 5;
      return mono(encoding) ? [v, v, v] : [v, 255 - v, (v * 3) % 256];
    };

  it.each(cases)(
    '$encoding (bigEndian $isBigEndian) at spec size',
    async ({ encoding, isBigEndian }) => {
      const pixel = gradient(encoding);
      const endian = isBigEndian === undefined ? {} : { isBigEndian };
      for (const pad of [undefined, 0, 5]) {
        const frame = makeRaw(encoding, 4, 4, pixel, {
          ...endian,
          ...(pad === undefined ? {} : { pad }),
        });
        const rgb = await ingest(4, 4).toRgb(frame);
        expect(rgb).toHaveLength(4 * 4 * 3);
        for (let y = 0; y < 4; y++) {
          for (let x = 0; x < 4; x++) expect(pixelAt(rgb, 4, x, y)).toEqual(pixel(x, y));
        }
      }
    },
  );

  it.each(cases)(
    '$encoding (bigEndian $isBigEndian) constant colour survives resize',
    async ({ encoding, isBigEndian }) => {
      const colour: Rgb = mono(encoding) ? [123, 123, 123] : [200, 100, 50];
      const endian = isBigEndian === undefined ? {} : { isBigEndian };
      const frame = makeRaw(encoding, 4, 4, () => colour, { ...endian, pad: 3 });
      for (const mode of ['stretch', 'crop', 'pad'] as const) {
        const rgb = await ingest(8, 8, mode).toRgb(frame);
        expect(rgb).toHaveLength(8 * 8 * 3);
        expectAll(rgb, colour, 1);
      }
      expectAll(await ingest(3, 2).toRgb(frame), colour, 1);
    },
  );

  it('scales 16-bit samples to 8 bits by rounding v / 257', async () => {
    const data = new Uint8Array(2 * 2);
    new DataView(data.buffer).setUint16(0, 0xffff, true);
    new DataView(data.buffer).setUint16(2, 0x1234, true); // 4660 / 257 = 18.13
    const frame: RawFrame = { kind: 'raw', width: 2, height: 1, encoding: 'mono16', data };
    expect([...(await ingest(2, 1).toRgb(frame))]).toEqual([255, 255, 255, 18, 18, 18]);
    const swapped = await ingest(2, 1).toRgb({ ...frame, isBigEndian: true }); // 0x3412 = 13330
    expect([...swapped]).toEqual([255, 255, 255, 52, 52, 52]);
  });

  it('returns a copy on the rgb8 fast path', async () => {
    const frame = makeRaw('rgb8', 2, 2, () => [1, 2, 3]);
    const rgb = await ingest(2, 2).toRgb(frame);
    expect(rgb).not.toBe(frame.data);
    rgb[0] = 99;
    expect(frame.data[0]).toBe(1);
  });

  it('resizes a packed rgb8 frame exactly as a padded one', async () => {
    const pixel = (x: number, y: number): Rgb => [(x * 7 + y) % 256, (y * 5) % 256, (x ^ y) % 256];
    const packed = await ingest(24, 18).toRgb(makeRaw('rgb8', 40, 30, pixel));
    const padded = await ingest(24, 18).toRgb(makeRaw('rgb8', 40, 30, pixel, { pad: 5 }));
    expect([...packed]).toEqual([...padded]);
  });

  it('lets the caller reuse its buffer as soon as toRgb returns, resize or not', async () => {
    for (const [w, h] of [
      [40, 30],
      [24, 18],
    ] as const) {
      const frame = makeRaw('rgb8', w, h, () => [200, 100, 50]);
      const pending = ingest(24, 18).toRgb(frame);
      frame.data.fill(10); // the next camera frame, written into the same buffer
      expectAll(await pending, [200, 100, 50]);
    }
  });

  it('accepts data longer than step * height', async () => {
    const frame = makeRaw('rgb8', 2, 2, () => [9, 8, 7]);
    const longer = new Uint8Array(frame.data.length + 10);
    longer.set(frame.data);
    expectAll(await ingest(2, 2).toRgb({ ...frame, data: longer }), [9, 8, 7]);
  });
});

describe('resize modes', () => {
  // 12x4: left third red, middle green, right blue.
  const thirds = makeRaw('rgb8', 12, 4, (x) =>
    x < 4 ? [255, 0, 0] : x < 8 ? [0, 255, 0] : [0, 0, 255],
  );

  it.each(['stretch', 'crop', 'pad'] as const)('%s produces the spec size', async (mode) => {
    const frame = makeRaw('bgr8', 13, 5, (x, y) => [x * 10, y * 20, 7]);
    expect(await ingest(10, 7, mode).toRgb(frame)).toHaveLength(10 * 7 * 3);
    expect(await ingest(3, 9, mode).toRgb(frame)).toHaveLength(3 * 9 * 3);
  });

  it('crop keeps the centre', async () => {
    expectAll(await ingest(4, 4, 'crop').toRgb(thirds), [0, 255, 0]);
  });

  it('pad letterboxes with black', async () => {
    const rgb = await ingest(12, 12, 'pad').toRgb(thirds);
    for (let y = 0; y < 12; y++) {
      const inside = y >= 4 && y < 8;
      expect(pixelAt(rgb, 12, 0, y)).toEqual(inside ? [255, 0, 0] : [0, 0, 0]);
      expect(pixelAt(rgb, 12, 6, y)).toEqual(inside ? [0, 255, 0] : [0, 0, 0]);
      expect(pixelAt(rgb, 12, 11, y)).toEqual(inside ? [0, 0, 255] : [0, 0, 0]);
    }
  });

  it('stretch keeps every part of the image', async () => {
    const rgb = await ingest(6, 6, 'stretch').toRgb(thirds);
    for (let y = 0; y < 6; y++) {
      expect(pixelAt(rgb, 6, 0, y)[0]).toBeGreaterThan(200);
      expect(pixelAt(rgb, 6, 5, y)[2]).toBeGreaterThan(200);
    }
  });

  it('pad letterboxes encoded frames with black too', async () => {
    const png = await sharp(thirds.data, { raw: { width: 12, height: 4, channels: 3 } })
      .png()
      .toBuffer();
    const rgb = await ingest(12, 12, 'pad').toRgb({ kind: 'encoded', format: 'png', data: png });
    expect(pixelAt(rgb, 12, 6, 0)).toEqual([0, 0, 0]);
    expect(pixelAt(rgb, 12, 6, 5)).toEqual([0, 255, 0]);
    expect(pixelAt(rgb, 12, 6, 11)).toEqual([0, 0, 0]);
  });
});

describe('normalise', () => {
  const spec: ImageInputSpec = {
    width: 2,
    height: 1,
    resize: 'stretch',
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
  };

  it('computes (x / 255 - mean) / std in CHW order into out', () => {
    const rgb = Uint8Array.from([0, 128, 255, 10, 20, 30]);
    const out = new Float32Array(6).fill(Number.NaN);
    new FrameIngest(spec).normalise(rgb, out);
    const f = (x: number, c: 0 | 1 | 2): number => (x / 255 - spec.mean[c]) / spec.std[c];
    const expected = [f(0, 0), f(10, 0), f(128, 1), f(20, 1), f(255, 2), f(30, 2)];
    expected.forEach((v, i) => {
      expect(out[i]).toBeCloseTo(v, 5);
    });
  });

  it('rejects wrong lengths with InputError', () => {
    const frameIngest = new FrameIngest(spec);
    expect(() => {
      frameIngest.normalise(new Uint8Array(5), new Float32Array(6));
    }).toThrow(InputError);
    expect(() => {
      frameIngest.normalise(new Uint8Array(6), new Float32Array(7));
    }).toThrow(/Expected a Float32Array of length 6/);
  });

  it('toTensor fills out from a frame', async () => {
    const out = new Float32Array(3 * 2 * 3);
    const frame = makeRaw('bgra8', 5, 5, () => [255, 0, 51]);
    await new FrameIngest({ ...spec, width: 3, height: 2 }).toTensor(frame, out);
    const [r, g, b] = [0, 1, 2].map((c) => out.subarray(c * 6, c * 6 + 6));
    for (const v of r ?? []) expect(v).toBeCloseTo((1 - 0.485) / 0.229, 5);
    for (const v of g ?? []) expect(v).toBeCloseTo(-0.456 / 0.224, 5);
    for (const v of b ?? []) expect(v).toBeCloseTo((0.2 - 0.406) / 0.225, 5);
  });
});

describe('bad input', () => {
  const good = makeRaw('rgb8', 4, 4, () => [1, 2, 3]);
  const frameIngest = ingest(4, 4);

  it('rejects an unknown encoding', async () => {
    await expectInputError(
      frameIngest.toRgb({ ...good, encoding: 'yuv420' }),
      'image.encoding',
      'yuv420',
      'rgb8',
    );
  });

  it('rejects short data, a small step and bad sizes', async () => {
    await expectInputError(
      frameIngest.toRgb({ ...good, data: good.data.subarray(1) }),
      'image.data',
      '48',
      '47',
    );
    await expectInputError(frameIngest.toRgb({ ...good, step: 11 }), 'image.step', '12');
    await expectInputError(frameIngest.toRgb({ ...good, width: 0 }), 'image.width', '0');
    await expectInputError(frameIngest.toRgb({ ...good, height: 2.5 }), 'image.height', '2.5');
  });

  it("rejects sides and strides past what the kernel takes, by the frame's own fields", async () => {
    // Within ingest.max_pixels (one row), so only the geometry check stands between them and the
    // kernel, whose own check would name its plan's header instead.
    const wide = { kind: 'raw', encoding: 'mono8', width: 2 ** 20 + 1, height: 1 } as const;
    await expectInputError(
      frameIngest.toRgb({ ...wide, data: new Uint8Array(2 ** 20 + 1) }),
      'image.width',
      '[1, 1048576]',
      '1048577',
    );
    await expectInputError(
      frameIngest.toRgb({
        ...wide,
        width: 1,
        height: 2 ** 20 + 1,
        data: new Uint8Array(2 ** 20 + 1),
      }),
      'image.height',
      '1048577',
    );
    await expectInputError(
      frameIngest.toRgb({ ...good, step: 9_000_000, data: new Uint8Array(9_000_000 * 4) }),
      'image.step',
      '8388608',
      '9000000',
    );
  });

  it('rejects a byte order flag that is not a boolean and data that is not a Uint8Array', async () => {
    const flagged = { ...good, isBigEndian: 1 } as unknown as RawFrame;
    await expectInputError(frameIngest.toRgb(flagged), 'image.isBigEndian', 'received 1');
    const clamped = { ...good, data: new Uint8ClampedArray(good.data) } as unknown as RawFrame;
    await expectInputError(frameIngest.toRgb(clamped), 'image.data', 'a Uint8Array of at least 48');
  });

  it('fails a bad frame of several alone, its encoded neighbours decoding meanwhile', async () => {
    const corrupt: Frame = {
      kind: 'encoded',
      data: Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2),
    };
    const wide: Frame = {
      kind: 'raw',
      encoding: 'mono8',
      width: 2 ** 20 + 1,
      height: 1,
      data: new Uint8Array(2 ** 20 + 1),
    };
    const results = await frameIngest.toRgbMany([good, corrupt, wide, good]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
    ]);
    const fields = results.map((r) =>
      r.status === 'rejected' ? (r.reason as InputError).field : '',
    );
    expect(fields).toEqual(['', 'image.data', 'image.width', '']);
    // The kernel refusing the batch as a whole (its own checks) still fails no good frame: each
    // runs alone then, and only one the kernel refuses alone fails.
    const refuse = vi.spyOn(kernels, 'ingestFrames').mockImplementation(() => {
      throw new InputError('Expected a plan the kernel takes', { field: 'header.step' });
    });
    try {
      const again = await frameIngest.toRgbMany([good, corrupt, good]);
      expect(again.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(refuse).toHaveBeenCalledTimes(1);
      expect(again[0]).toEqual(results[0]);
    } finally {
      refuse.mockRestore();
    }
  });

  it('rejects empty and corrupt encoded bytes', async () => {
    await expectInputError(
      frameIngest.toRgb({ kind: 'encoded', data: new Uint8Array(0) }),
      'image.data',
      'Expected JPEG or PNG bytes',
    );
    const png = await sharp(good.data, { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toBuffer();
    // Bytes with no image signature are refused before libvips sees them.
    await expectInputError(
      frameIngest.toRgb({
        kind: 'encoded',
        format: 'png',
        data: Uint8Array.from({ length: 64 }, (_, i) => i),
      }),
      'image.data',
      'no known image signature',
    );
    // A PNG cut inside its first chunk: libvips' refusal is the cause.
    const error = await expectInputError(
      frameIngest.toRgb({ kind: 'encoded', format: 'png', data: png.subarray(0, 40) }),
      'image.data',
      'PNG',
    );
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('rejects an invalid spec', () => {
    const spec: ImageInputSpec = { width: 4, height: 4, resize: 'pad', ...IDENTITY };
    const bad: [Partial<Record<keyof ImageInputSpec, unknown>>, string][] = [
      [{ width: 0 }, 'spec.width'],
      [{ height: 1.5 }, 'spec.height'],
      [{ resize: 'zoom' }, 'spec.resize'],
      [{ mean: [0, 0] }, 'spec.mean'],
      [{ std: [1, 0, 1] }, 'spec.std'],
      [{ std: [1, Number.NaN, 1] }, 'spec.std'],
      // Finite, but past float32: bytes would normalise to ±Infinity.
      [{ std: [1, 1e-39, 1] }, 'spec.std'],
      [{ mean: [0, 0, 1e39] }, 'spec.mean'],
    ];
    for (const [patch, field] of bad) {
      expect(() => new FrameIngest({ ...spec, ...patch } as ImageInputSpec)).toThrow(
        expect.objectContaining({ name: 'InputError', field }),
      );
    }
  });
});

const FIXTURES = new URL('../../../shared/fixtures/real-images/', import.meta.url);
const haveFixtures = existsSync(FIXTURES);
if (!haveFixtures) {
  console.warn(
    `Skipping real-image ingest tests: fixture folder ${fileURLToPath(FIXTURES)} does not exist`,
  );
}

describe.skipIf(!haveFixtures)('real images', () => {
  const read = (name: string): Frame => ({
    kind: 'encoded',
    data: readFileSync(new URL(name, FIXTURES)),
  });

  it('honours EXIF orientation 5 (Landscape_5.jpg)', async () => {
    const file = fileURLToPath(new URL('Landscape_5.jpg', FIXTURES));
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height, meta.orientation]).toEqual([450, 600, 5]);
    const rgb = await ingest(160, 90, 'pad').toRgb(read('Landscape_5.jpg'));
    const reference = (rotate: boolean): Promise<Buffer> =>
      (rotate ? sharp(file).rotate() : sharp(file))
        .resize(160, 90, { fit: 'contain', kernel: 'lanczos3', background: '#000' })
        .removeAlpha()
        .raw()
        .toBuffer();
    expect(meanAbsDiff(rgb, await reference(true))).toBeLessThan(1);
    expect(meanAbsDiff(rgb, await reference(false))).toBeGreaterThan(10);
    // Displayed 600x450 (4:3) letterboxes to 120x90 with 20-pixel bars; stored 450x600 would give
    // bars of about 46 pixels.
    let barSum = 0;
    let contentSum = 0;
    for (let y = 0; y < 90; y++) {
      barSum += pixelAt(rgb, 160, 10, y).reduce((a, b) => a + b, 0);
      contentSum += pixelAt(rgb, 160, 30, y).reduce((a, b) => a + b, 0);
    }
    expect(barSum).toBe(0);
    expect(contentSum / 90).toBeGreaterThan(60);
  });

  it('converts CMYK to RGB', async () => {
    const file = new URL('Channel_digital_image_CMYK_color_no_profile.jpg', FIXTURES);
    const meta = await sharp(readFileSync(file)).metadata();
    expect([meta.space, meta.channels]).toEqual(['cmyk', 4]);
    const rgb = await ingest(500, 333).toRgb(
      read('Channel_digital_image_CMYK_color_no_profile.jpg'),
    );
    expect(rgb).toHaveLength(500 * 333 * 3);
    const [r, g, b] = pixelAt(rgb, 500, 50, 250); // grass
    expect(g).toBeGreaterThan(r + 20);
    expect(g).toBeGreaterThan(b + 20);
  });

  it('reduces a 16-bit PNG to 8-bit RGB (Netherlands flag)', async () => {
    const rgb = await ingest(90, 60, 'pad').toRgb(read('Flag_of_the_Netherlands-16bit.png'));
    const [tr, tg, tb] = pixelAt(rgb, 90, 45, 5);
    const [mr, mg, mb] = pixelAt(rgb, 90, 45, 30);
    const [br, bg, bb] = pixelAt(rgb, 90, 45, 55);
    expect(tr).toBeGreaterThan(150);
    expect(tr).toBeGreaterThan(tg + 100);
    expect(tr).toBeGreaterThan(tb + 100);
    expect(Math.min(mr, mg, mb)).toBeGreaterThan(240);
    expect(bb).toBeGreaterThan(br + 50);
    expect(bb).toBeGreaterThan(bg + 20);
  });

  it('turns 16-bit grey + alpha into 3-channel RGB', async () => {
    const meta = await sharp(readFileSync(new URL('16-bit-grey-alpha.png', FIXTURES))).metadata();
    expect([meta.space, meta.channels, meta.depth]).toEqual(['grey16', 2, 'ushort']);
    // The grey channel is 0 everywhere (the shape lives in alpha), so flattening gives black.
    const rgb = await ingest(109, 96, 'pad').toRgb(read('16-bit-grey-alpha.png'));
    expect(rgb).toHaveLength(109 * 96 * 3);
    expectAll(rgb, [0, 0, 0]);
  });

  it('upscales a 2x2 PNG keeping its colour', async () => {
    // Despite its name the file's pixels are #fdcc6e (IDAT bytes fd cc 6e).
    const rgb = await ingest(32, 24, 'crop').toRgb(read('2x2_fdcce6.png'));
    expectAll(rgb, [0xfd, 0xcc, 0x6e], 1);
  });

  it('decodes a plain JPEG (320x240.jpg) at and away from its size', async () => {
    const same = await ingest(320, 240).toRgb(read('320x240.jpg'));
    const { data } = await sharp(readFileSync(new URL('320x240.jpg', FIXTURES)))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(meanAbsDiff(same, data)).toBeLessThan(1);
    expect(await ingest(224, 224, 'crop').toRgb(read('320x240.jpg'))).toHaveLength(224 * 224 * 3);
  });

  it('expands a greyscale JPEG to 3 equal channels, deterministically', async () => {
    const meta = await sharp(readFileSync(new URL('concert.jpg', FIXTURES))).metadata();
    expect(meta.channels).toBe(1);
    const frameIngest = ingest(200, 150, 'pad');
    const rgb = await frameIngest.toRgb(read('concert.jpg'));
    expect(rgb).toHaveLength(200 * 150 * 3);
    let bright = 0;
    let unequal = 0;
    for (let i = 0; i < rgb.length; i += 3) {
      if (rgb[i + 1] !== rgb[i] || rgb[i + 2] !== rgb[i]) unequal++;
      if ((rgb[i] ?? 0) > 128) bright++;
    }
    expect(unequal).toBe(0);
    expect(bright).toBeGreaterThan(0);
    expect(await frameIngest.toRgb(read('concert.jpg'))).toEqual(rgb);
  });

  it('rejects a JPEG with a corrupt header', async () => {
    const error = await expectInputError(
      ingest(64, 64).toRgb(read('corrupt-header.jpg')),
      'image.data',
      'Expected a readable JPEG header',
    );
    expect(error.cause).toBeInstanceOf(Error);
  });
});
