import { COLOURS, WORLD, type Block, type Vec2 } from './world.js';

/** Table units the wrist camera sees across its image (a 1/span zoom of the table, centred on the effector). */
export const WRIST_SPAN = 0.4;

const TABLE = [205, 195, 175] as const;
const TABLE_DARK = [192, 182, 163] as const;
const FLOOR = [70, 66, 62] as const;
const EFFECTOR = [55, 55, 60] as const;
const EFFECTOR_CORE = [245, 245, 245] as const;

/**
 * Render the wrist camera as packed RGB8 into `out` (width*height*3 bytes): the scene seen from
 * straight above the end effector, `span` table units across, so the effector is always at the
 * image centre and the blocks near it are seen `1/span` times larger than by the tabletop camera.
 * Beyond the table's edge is the floor. Each pixel samples the scene at its centre, so the
 * image is a pure function of the scene and the effector position (deterministic).
 */
export function renderWrist(
  blocks: readonly Block[],
  effector: Vec2,
  width: number,
  height: number,
  out: Uint8Array,
  span: number = WRIST_SPAN,
): void {
  const h = WORLD.blockHalfSize;
  const r2 = WORLD.effectorRadius * WORLD.effectorRadius;
  const core2 = r2 * 0.35 * 0.35;
  for (let py = 0; py < height; py++) {
    const v = effector.y + ((py + 0.5) / height - 0.5) * span;
    for (let px = 0; px < width; px++) {
      const u = effector.x + ((px + 0.5) / width - 0.5) * span;
      let c: readonly number[];
      if (u < 0 || u >= 1 || v < 0 || v >= 1) c = FLOOR;
      else c = (Math.floor(u * 8) + Math.floor(v * 8)) % 2 === 0 ? TABLE : TABLE_DARK;
      // Later blocks are drawn over earlier ones, as in the tabletop camera.
      for (const b of blocks) {
        if (Math.abs(u - b.centre.x) < h && Math.abs(v - b.centre.y) < h) c = COLOURS[b.colour];
      }
      const d2 = (u - effector.x) ** 2 + (v - effector.y) ** 2;
      if (d2 <= core2) c = EFFECTOR_CORE;
      else if (d2 <= r2) c = EFFECTOR;
      const o = (py * width + px) * 3;
      out[o] = c[0] ?? 0;
      out[o + 1] = c[1] ?? 0;
      out[o + 2] = c[2] ?? 0;
    }
  }
}

/**
 * Which cells of the wrist camera's `gridW`×`gridH` patch grid show a block or the end effector:
 * the saliency supervision for the wrist view (each cell is tested at its centre and corners).
 */
export function wristObjectMask(
  blocks: readonly Block[],
  effector: Vec2,
  gridW: number,
  gridH: number,
  out: Uint8Array,
  span: number = WRIST_SPAN,
): void {
  const h = WORLD.blockHalfSize;
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      // The cell's table rectangle.
      const u0 = effector.x + (gx / gridW - 0.5) * span;
      const u1 = effector.x + ((gx + 1) / gridW - 0.5) * span;
      const v0 = effector.y + (gy / gridH - 0.5) * span;
      const v1 = effector.y + ((gy + 1) / gridH - 0.5) * span;
      const overlaps = (x0: number, y0: number, x1: number, y1: number): boolean =>
        x0 < u1 && x1 > u0 && y0 < v1 && y1 > v0;
      let hit = false;
      for (const b of blocks) {
        if (overlaps(b.centre.x - h, b.centre.y - h, b.centre.x + h, b.centre.y + h)) hit = true;
      }
      const r = WORLD.effectorRadius;
      if (overlaps(effector.x - r, effector.y - r, effector.x + r, effector.y + r)) hit = true;
      out[gy * gridW + gx] = hit ? 1 : 0;
    }
  }
}
