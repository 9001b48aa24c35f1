/**
 * Draw which visual tokens were kept: pixels of pruned patches are dimmed towards grey, kept
 * patches keep their colours and get a one-pixel outline. `rgb` is packed RGB8 at the model's
 * input size; the result is a new buffer of the same size (the ROS node publishes it as
 * `~/debug/pruned_image`).
 */
export function keptOverlay(
  rgb: Uint8Array,
  width: number,
  height: number,
  grid: { readonly width: number; readonly height: number },
  positions: ArrayLike<number>,
  count: number,
): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const kept = new Uint8Array(grid.width * grid.height);
  for (let i = 0; i < count; i++) kept[positions[i] as number] = 1;
  const pw = width / grid.width;
  const ph = height / grid.height;
  for (let y = 0; y < height; y++) {
    const gy = Math.min(grid.height - 1, Math.floor(y / ph));
    for (let x = 0; x < width; x++) {
      const gx = Math.min(grid.width - 1, Math.floor(x / pw));
      const o = (y * width + x) * 3;
      if (kept[gy * grid.width + gx] === 1) {
        const edge = Math.floor(x % pw) === 0 || Math.floor(y % ph) === 0;
        out[o] = edge ? 0 : (rgb[o] as number);
        out[o + 1] = edge ? 255 : (rgb[o + 1] as number);
        out[o + 2] = edge ? 0 : (rgb[o + 2] as number);
      } else {
        for (let c = 0; c < 3; c++) out[o + c] = ((rgb[o + c] as number) >> 2) + 40;
      }
    }
  }
  return out;
}
