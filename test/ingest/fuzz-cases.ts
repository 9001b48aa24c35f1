/**
 * Generators of bad and borderline camera frames for the fuzz suites (ingest and bridge): random
 * bytes, truncated and bit-flipped JPEG/PNG, forged header sizes, other formats, odd raw
 * geometry. Seeded: a failure names its case and reproduces.
 */
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import type { EncodedFrame, RawFrame } from '../../src/ingest/index.js';
import { Rng } from '../../src/util/rng.js';

export interface FuzzCase {
  readonly name: string;
  readonly frame: EncodedFrame | RawFrame;
  /** Pixels the frame claims, when it claims a size (forged headers, raw geometry). */
  readonly claimedPixels?: number;
}

export interface Samples {
  readonly jpeg: Buffer;
  readonly png: Buffer;
  readonly others: readonly Buffer[];
}

/** Small real images to cut and corrupt (noise, so that the compressed data is not trivial). */
export async function samples(): Promise<Samples> {
  const rng = new Rng(99);
  const data = Uint8Array.from({ length: 48 * 40 * 3 }, () => rng.int(256));
  const img = () => sharp(data, { raw: { width: 48, height: 40, channels: 3 } });
  return {
    jpeg: await img().jpeg({ quality: 80 }).toBuffer(),
    png: await img().png().toBuffer(),
    others: [
      await img().webp().toBuffer(),
      await img().gif().toBuffer(),
      await img().tiff().toBuffer(),
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"/>'),
    ],
  };
}

function bytes(rng: Rng, n: number): Buffer {
  return Buffer.from(Uint8Array.from({ length: n }, () => rng.int(256)));
}

function pickLabel(rng: Rng): string | undefined {
  return [undefined, 'jpeg', 'png', 'webp', ''][rng.int(5)];
}

function forgePng(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width >>> 0, 16);
  out.writeUInt32BE(height >>> 0, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

function forgeJpeg(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length; i++) {
    const marker = out[i + 1] ?? 0;
    if (out[i] === 0xff && marker >= 0xc0 && marker <= 0xc2) {
      out.writeUInt16BE(height & 0xffff, i + 5);
      out.writeUInt16BE(width & 0xffff, i + 7);
      break;
    }
  }
  return out;
}

/** A side length: mostly small, sometimes huge, sometimes 0. */
function side(rng: Rng, max: number): number {
  const r = rng.int(4);
  if (r === 0) return 0;
  if (r === 1) return 1 + rng.int(64);
  return 1 + rng.int(max);
}

const ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'rgb16', 'bgr16', 'yuv422'];
const BPP: Readonly<Record<string, number>> = {
  rgb8: 3,
  bgr8: 3,
  rgba8: 4,
  bgra8: 4,
  mono8: 1,
  mono16: 2,
  rgb16: 6,
  bgr16: 6,
};

/** The `i`-th fuzz case of seed `seed`: every kind in turn, each seeded on its own. */
export function fuzzCase(s: Samples, seed: number, i: number): FuzzCase {
  const rng = new Rng(seed * 7919 + i);
  const kind = i % 8;
  switch (kind) {
    case 0: {
      const data = bytes(rng, rng.int(600));
      const label = pickLabel(rng);
      return {
        name: `random ${data.length} bytes`,
        frame: { kind: 'encoded', data, ...(label === undefined ? {} : { format: label }) },
      };
    }
    case 1:
    case 2: {
      const src = kind === 1 ? s.jpeg : s.png;
      const cut = rng.int(src.length);
      return {
        name: `${kind === 1 ? 'JPEG' : 'PNG'} cut at ${cut}/${src.length}`,
        frame: { kind: 'encoded', data: src.subarray(0, cut) },
      };
    }
    case 3: {
      const src = Buffer.from(rng.int(2) === 0 ? s.jpeg : s.png);
      const flips = 1 + rng.int(8);
      for (let f = 0; f < flips; f++) {
        const at = rng.int(src.length);
        src[at] = (src[at] ?? 0) ^ (1 << rng.int(8));
      }
      return { name: `${flips} bit flips`, frame: { kind: 'encoded', data: src } };
    }
    case 4: {
      const png = rng.int(2) === 0;
      const w = side(rng, png ? 2 ** 31 - 1 : 65535);
      const h = side(rng, png ? 2 ** 31 - 1 : 65535);
      const data = png ? forgePng(s.png, w, h) : forgeJpeg(s.jpeg, w, h);
      return {
        name: `${png ? 'PNG' : 'JPEG'} header forged to ${w}x${h}`,
        frame: { kind: 'encoded', format: png ? 'png' : 'jpeg', data },
        claimedPixels: w * h,
      };
    }
    case 5: {
      const other = s.others[rng.int(s.others.length)] as Buffer;
      return {
        name: `other format labelled jpeg (${other.subarray(0, 4).toString('hex')})`,
        frame: { kind: 'encoded', format: 'jpeg', data: other },
      };
    }
    default: {
      const encoding = ENCODINGS[rng.int(ENCODINGS.length)] as string;
      const width = side(rng, 1 << 16);
      const height = side(rng, 1 << 16);
      const row = width * (BPP[encoding] ?? 3);
      const step = rng.int(3) === 0 ? row + rng.int(8) - 2 : row;
      // Data of the right size only when it is small: the point is what happens to big claims.
      const needed = Math.max(0, step * height);
      const length = needed <= 1 << 16 ? needed - (rng.int(3) === 0 ? 1 : 0) : rng.int(4096);
      return {
        name: `raw ${encoding} ${width}x${height} step ${step} with ${Math.max(0, length)} bytes`,
        frame: {
          kind: 'raw',
          encoding,
          width,
          height,
          step,
          data: new Uint8Array(Math.max(0, length)),
        },
        claimedPixels: width * height,
      };
    }
  }
}
