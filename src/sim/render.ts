import { COLOURS, WORLD, type Block, type Vec2 } from './world.js';

const TABLE = [205, 195, 175] as const;
const TABLE_DARK = [192, 182, 163] as const;
const EFFECTOR = [55, 55, 60] as const;
const EFFECTOR_CORE = [245, 245, 245] as const;

/**
 * Render the top-down camera view as packed RGB8 into `out` (width*height*3 bytes, reused across
 * frames): a checkered table, square coloured blocks, and the end effector as a dark disc.
 */
export function renderScene(
  blocks: readonly Block[],
  effector: Vec2,
  width: number,
  height: number,
  out: Uint8Array,
): void {
  const cell = Math.max(1, Math.round(width / 8));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = (Math.floor(x / cell) + Math.floor(y / cell)) % 2 === 0 ? TABLE : TABLE_DARK;
      const o = (y * width + x) * 3;
      out[o] = c[0];
      out[o + 1] = c[1];
      out[o + 2] = c[2];
    }
  }
  for (const block of blocks) {
    const h = WORLD.blockHalfSize;
    fillRect(
      out,
      width,
      height,
      block.centre.x - h,
      block.centre.y - h,
      2 * h,
      2 * h,
      COLOURS[block.colour],
    );
  }
  fillDisc(out, width, height, effector, WORLD.effectorRadius, EFFECTOR);
  fillDisc(out, width, height, effector, WORLD.effectorRadius * 0.35, EFFECTOR_CORE);
}

function fillRect(
  out: Uint8Array,
  width: number,
  height: number,
  x0: number,
  y0: number,
  w: number,
  h: number,
  rgb: readonly [number, number, number],
): void {
  const px0 = Math.max(0, Math.round(x0 * width));
  const px1 = Math.min(width, Math.round((x0 + w) * width));
  const py0 = Math.max(0, Math.round(y0 * height));
  const py1 = Math.min(height, Math.round((y0 + h) * height));
  for (let y = py0; y < py1; y++) {
    for (let x = px0; x < px1; x++) {
      const o = (y * width + x) * 3;
      out[o] = rgb[0];
      out[o + 1] = rgb[1];
      out[o + 2] = rgb[2];
    }
  }
}

function fillDisc(
  out: Uint8Array,
  width: number,
  height: number,
  centre: Vec2,
  radius: number,
  rgb: readonly [number, number, number],
): void {
  const cx = centre.x * width;
  const cy = centre.y * height;
  const r = radius * width;
  const r2 = r * r;
  for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(height, Math.ceil(cy + r)); y++) {
    for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(width, Math.ceil(cx + r)); x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      if (dx * dx + dy * dy > r2) continue;
      const o = (y * width + x) * 3;
      out[o] = rgb[0];
      out[o + 1] = rgb[1];
      out[o + 2] = rgb[2];
    }
  }
}

/**
 * Which cells of a `gridW`×`gridH` patch grid show a block or the end effector (1) or only table
 * (0): the supervision for the encoder's saliency head.
 */
export function objectMask(
  blocks: readonly Block[],
  effector: Vec2,
  gridW: number,
  gridH: number,
  out: Uint8Array,
): void {
  out.fill(0);
  const mark = (x0: number, y0: number, x1: number, y1: number): void => {
    const cx0 = Math.max(0, Math.floor(x0 * gridW));
    const cx1 = Math.min(gridW - 1, Math.floor((x1 - 1e-9) * gridW));
    const cy0 = Math.max(0, Math.floor(y0 * gridH));
    const cy1 = Math.min(gridH - 1, Math.floor((y1 - 1e-9) * gridH));
    for (let y = cy0; y <= cy1; y++) for (let x = cx0; x <= cx1; x++) out[y * gridW + x] = 1;
  };
  const h = WORLD.blockHalfSize;
  for (const b of blocks) mark(b.centre.x - h, b.centre.y - h, b.centre.x + h, b.centre.y + h);
  const r = WORLD.effectorRadius;
  mark(effector.x - r, effector.y - r, effector.x + r, effector.y + r);
}
