import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import {
  defaultIngestLimits,
  FrameIngest,
  ingestLimits,
  sniffImageFormat,
  type EncodedFrame,
  type IngestLimits,
} from '../../src/ingest/index.js';
import { pipelineOptions } from '../../src/cli/setup.js';
import { loadModelPackage } from '../../src/model/manifest.js';
import { VlaPipeline } from '../../src/pipeline/pipeline.js';
import { BagWriter, DEFAULT_TOPICS, replay } from '../../src/transports/mcap/index.js';
import { inputRefusal, testPipelineOptions, TINY_VLA } from '../helpers.js';

const SPEC = { width: 8, height: 8, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1] } as const;
const ingest = new FrameIngest(SPEC);
const pixels = new Uint8Array(16 * 16 * 3).fill(100);
let png: Buffer;
let jpeg: Buffer;

beforeAll(async () => {
  const img = sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } });
  png = await img.clone().png().toBuffer();
  jpeg = await img.clone().jpeg().toBuffer();
});

/** A PNG whose IHDR says width x height (CRC fixed, so only the size is a lie). */
function forgedPng(source: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(source);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** A JPEG whose first SOF says width x height. */
function forgedJpeg(source: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(source);
  for (let i = 2; i + 9 < out.length; i++) {
    if (out[i] === 0xff && (out[i + 1] === 0xc0 || out[i + 1] === 0xc2)) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
  }
  throw new Error('no SOF marker');
}

describe('ingest limits', () => {
  it('come from the schema and from ingest.* parameters', async () => {
    const config = await loadConfig({ overrides: { 'ingest.max_pixels': 1234 } });
    expect(ingestLimits(config).maxPixels).toBe(1234);
    expect(pipelineOptions(config, () => undefined).ingest?.maxPixels).toBe(1234);
    const defaults = await loadConfig();
    expect(defaultIngestLimits()).toEqual(ingestLimits(defaults));
  });

  it('refuses a PNG with a forged width from its header, before decoding (1 GB before)', async () => {
    // 16000 x 16000 RGB would be 768 MB decoded; the file is a few hundred bytes.
    const bomb = forgedPng(png, 16000, 16000);
    expect(bomb.length).toBeLessThan(2000);
    const before = process.memoryUsage().rss;
    const error = await inputRefusal(ingest.toRgb({ kind: 'encoded', format: 'png', data: bomb }));
    expect(error.field).toBe('image.data');
    expect(error.message).toContain('ingest.max_pixels');
    expect(error.message).toContain('16000x16000');
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it('refuses a JPEG whose SOF says 60000 x 60000', async () => {
    const error = await inputRefusal(
      ingest.toRgb({ kind: 'encoded', data: forgedJpeg(jpeg, 60000, 60000) }),
    );
    expect(error.message).toContain('60000x60000');
    expect(error.field).toBe('image.data');
  });

  it('refuses a real PNG one pixel wide and 70,000 tall: each side is bounded, not only the pixels', async () => {
    // A few hundred bytes within ingest.max_pixels; libvips's resize would work row by row.
    const tall = await sharp(new Uint8Array(70_000 * 3), {
      raw: { width: 1, height: 70_000, channels: 3 },
    })
      .png()
      .toBuffer();
    expect(tall.length).toBeLessThan(10_000);
    const error = await inputRefusal(ingest.toRgb({ kind: 'encoded', data: tall }));
    expect(error.field).toBe('image.data');
    expect(error.message).toContain('65535 pixels a side');
    expect(error.message).toContain('1x70000');
  });

  it('applies the pixel limit to raw frames before their RGB copy exists', async () => {
    const small = new FrameIngest(SPEC, { ...defaultIngestLimits(), maxPixels: 100 });
    const raw = { kind: 'raw', encoding: 'mono8', width: 20, height: 20 } as const;
    const error = await inputRefusal(small.toRgb({ ...raw, data: new Uint8Array(400) }));
    expect(error.field).toBe('image');
    expect(error.message).toContain('20x20 = 400');
    // Encoded frames of the same size fail the same limit, libvips' limitInputPixels included.
    const error2 = await inputRefusal(small.toRgb({ kind: 'encoded', data: png }));
    expect(error2.message).toContain('ingest.max_pixels');
    await expect(
      small.toRgb({ ...raw, width: 10, height: 10, data: new Uint8Array(100) }),
    ).resolves.toHaveLength(192);
  });

  it('applies the byte limit to encoded frames', async () => {
    const tight: IngestLimits = { ...defaultIngestLimits(), maxEncodedBytes: png.length - 1 };
    const error = await inputRefusal(
      new FrameIngest(SPEC, tight).toRgb({ kind: 'encoded', data: png }),
    );
    expect(error.message).toContain('ingest.max_encoded_bytes');
  });

  it('decodes real JPEG and PNG', async () => {
    await expect(ingest.toRgb({ kind: 'encoded', data: png })).resolves.toHaveLength(192);
    await expect(ingest.toRgb({ kind: 'encoded', data: jpeg })).resolves.toHaveLength(192);
  });
});

describe('formats other than JPEG and PNG', () => {
  const img = (): Sharp => sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } });
  const HEIC = Buffer.concat([
    Buffer.from([0, 0, 0, 24]),
    Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1'),
    Buffer.alloc(64),
  ]);
  const SVG = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="red"/></svg>',
  );
  const cases: readonly [string, () => Promise<Buffer>][] = [
    ['webp', () => img().webp().toBuffer()],
    ['gif', () => img().gif().toBuffer()],
    ['tiff', () => img().tiff().toBuffer()],
    ['avif', () => img().avif().toBuffer()],
    ['heif', () => Promise.resolve(HEIC)],
    ['svg', () => Promise.resolve(SVG)],
  ];

  it.each(cases)('refuses %s labelled JPEG or PNG with a typed error', async (name, make) => {
    const data = await make();
    expect(sniffImageFormat(data)).toBe(name);
    for (const format of ['jpeg', 'png']) {
      const frame: EncodedFrame = { kind: 'encoded', format, data };
      const error = await inputRefusal(ingest.toRgb(frame));
      expect(error.field).toBe('image.data');
      expect(error.message).toContain(`labelled "${format}"`);
      expect(error.message).toContain(`${name.toUpperCase()} bytes`);
    }
  });
});

describe('replay of a bag with an oversized raw frame', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vla-ingest-limits-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('skips the frame with a warning and replays the next ones', async () => {
    const pipeline = await VlaPipeline.create(
      await loadModelPackage(TINY_VLA),
      testPipelineOptions({ ingest: { ...defaultIngestLimits(), maxPixels: 100 * 100 } }),
    );
    try {
      const file = join(dir, 'big.mcap');
      const bag = await BagWriter.create({ path: file });
      const frame = (width: number, height: number) => ({
        header: { stamp: { sec: 1, nanosec: 0 }, frame_id: '' },
        height,
        width,
        encoding: 'mono8',
        is_bigendian: 0,
        step: width,
        data: new Uint8Array(width * height).fill(80),
      });
      const type = 'sensor_msgs/msg/Image';
      await bag.write(DEFAULT_TOPICS.image, type, frame(64, 64), 1n);
      await bag.write(DEFAULT_TOPICS.image, type, frame(512, 512), 2n);
      await bag.write(DEFAULT_TOPICS.image, type, frame(64, 64), 3n);
      await bag.close();
      const { chunks, metrics } = await replay(file, { pipeline, instruction: 'go' });
      expect(chunks).toHaveLength(2);
      expect(metrics.warnings).toMatchObject({ invalid_image: 1 });
    } finally {
      await pipeline.release();
    }
  });
});
