import { stepTowards, type Vec2 } from './world.js';

/**
 * The scripted expert's action chunk from `from` towards `goal`: `horizon` absolute position
 * targets on the straight line at full speed, holding at the goal once there. Writes
 * horizon × 2 values into `out`.
 */
export function expertChunk(from: Vec2, goal: Vec2, horizon: number, out: Float32Array): void {
  let p = from;
  for (let k = 0; k < horizon; k++) {
    p = stepTowards(p, goal);
    out[2 * k] = p.x;
    out[2 * k + 1] = p.y;
  }
}
