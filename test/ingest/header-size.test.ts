/**
 * The size an encoded frame's header states, read by the node (a JPEG's first start-of-frame
 * segment, a PNG's IHDR chunk) instead of by a call to libvips: the size libvips reads for every
 * real image in the fixtures and for the encodings a camera sends, and libvips' own reading where
 * the node's finds none.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { pngSize, sniffImageFormat, type ImageSize } from '../../src/ingest/format.js';
import { FrameIngest } from '../../src/ingest/index.js';
import { readJpegHeader } from '../../src/ingest/jpeg-scans.js';
import { inputRefusal } from '../helpers.js';

const FIXTURES = new URL('../../../shared/fixtures/real-images/', import.meta.url);
const haveFixtures = existsSync(FIXTURES);
if (!haveFixtures) {
  console.warn(
    `Skipping the header sizes of real images: fixture folder ${fileURLToPath(FIXTURES)} does not exist`,
  );
}

const SPEC = { width: 96, height: 96, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1] } as const;

/** The size the node reads from `bytes`' header, if it reads one. */
function headerSize(bytes: Uint8Array): ImageSize | undefined {
  return sniffImageFormat(bytes) === 'jpeg' ? readJpegHeader(bytes).size : pngSize(bytes);
}

async function libvipsSize(bytes: Uint8Array): Promise<ImageSize> {
  const meta = await sharp(bytes).metadata();
  return { width: meta.width, height: meta.height };
}

/** A colourful test card, `width` x `height`, as raw RGB. */
function card(width: number, height: number): Buffer {
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37) % 251;
  return rgb;
}

describe('the header size the node reads', () => {
  const images = haveFixtures
    ? readdirSync(FIXTURES).filter((f) => /\.(jpe?g|png)$/i.test(f) && f !== 'corrupt-header.jpg')
    : [];

  it.skipIf(!haveFixtures).each(images.map((f) => [f]))('%s: as libvips reads it', async (file) => {
    const bytes = readFileSync(new URL(file, FIXTURES));
    expect(headerSize(bytes)).toEqual(await libvipsSize(bytes));
  });

  it('camera encodings: baseline, progressive, 4:4:4, with EXIF and ICC segments, and PNG', async () => {
    const raw = { raw: { width: 333, height: 247, channels: 3 } } as const;
    const variants = [
      await sharp(card(333, 247), raw).jpeg({ quality: 90 }).toBuffer(),
      await sharp(card(333, 247), raw).jpeg({ progressive: true }).toBuffer(),
      await sharp(card(333, 247), raw).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer(),
      await sharp(card(333, 247), raw)
        .withMetadata({ orientation: 6, exif: { IFD0: { Make: 'camera' } } })
        .jpeg()
        .toBuffer(),
      await sharp(card(333, 247), raw).withIccProfile('p3').jpeg().toBuffer(),
      await sharp(card(333, 247), raw).png().toBuffer(),
    ];
    for (const bytes of variants) {
      expect(headerSize(bytes)).toEqual({ width: 333, height: 247 });
      expect(await libvipsSize(bytes)).toEqual({ width: 333, height: 247 });
    }
  });

  it('finds none in a JPEG whose first frame segment gives no size or a PNG whose first chunk is not IHDR, and then libvips reads the header', async () => {
    const raw = { raw: { width: 64, height: 48, channels: 3 } } as const;
    const jpeg = await sharp(card(64, 48), raw).jpeg().toBuffer();
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    expect(readJpegHeader(jpeg).size).toEqual({ width: 64, height: 48 });
    const zeroHeight = Buffer.from(jpeg);
    zeroHeight.writeUInt16BE(0, sof + 5);
    expect(readJpegHeader(zeroHeight).size).toBeUndefined();
    // Only the first start-of-frame segment counts, as libjpeg reads it: one with a height of 0
    // (DNL) or one too short hides a later one.
    const segment = jpeg.subarray(sof, sof + 2 + jpeg.readUInt16BE(sof + 2));
    const dnlFirst = Buffer.concat([
      jpeg.subarray(0, sof),
      zeroHeight.subarray(sof, sof + segment.length),
      jpeg.subarray(sof),
    ]);
    expect(readJpegHeader(dnlFirst).size).toBeUndefined();
    const short = Buffer.from([0xff, 0xc0, 0x00, 0x05, 0x08, 0x00, 0x30]);
    expect(
      readJpegHeader(Buffer.concat([jpeg.subarray(0, sof), short, jpeg.subarray(sof)])).size,
    ).toBeUndefined();
    const twice = Buffer.concat([jpeg.subarray(0, sof), segment, jpeg.subarray(sof)]);
    twice.writeUInt16BE(4800, sof + segment.length + 5);
    expect(readJpegHeader(twice).size).toEqual({ width: 64, height: 48 });
    const png = await sharp(card(64, 48), raw).png().toBuffer();
    const notIhdr = Buffer.from(png);
    notIhdr.write('IHDX', 12, 'latin1');
    expect(pngSize(notIhdr)).toBeUndefined();
    // libvips refuses both headers, with the node's message for an unreadable header.
    const ingest = new FrameIngest(SPEC);
    for (const [bytes, format] of [
      [zeroHeight, 'JPEG'],
      [notIhdr, 'PNG'],
    ] as const) {
      const error = await inputRefusal(ingest.toRgb({ kind: 'encoded', data: bytes }));
      expect(error.field).toBe('image.data');
      expect(error.message).toContain(`Expected a readable ${format} header`);
    }
  });
});
