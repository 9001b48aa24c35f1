/** A small SVG line chart for benchmark reports (no plotting dependency: a few dozen lines of SVG). */
export interface ChartPanel {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly {
    readonly name: string;
    readonly points: readonly { readonly x: number; readonly y: number }[];
  }[];
  readonly yMin?: number;
  readonly yMax?: number;
}

const COLOURS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
];
const W = 460;
const H = 320;
const M = { left: 56, right: 16, top: 36, bottom: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(p: ChartPanel, ox: number): string {
  const xs = p.series.flatMap((s) => s.points.map((q) => q.x));
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(...xs, 1e-9);
  const y0 = p.yMin ?? Math.min(...ys);
  const y1 = p.yMax ?? Math.max(...ys, y0 + 1e-9) * 1.1;
  const px = (x: number): number => ox + M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y: number): number =>
    H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const parts = [
    `<text x="${ox + W / 2}" y="20" text-anchor="middle" font-size="14">${esc(p.title)}</text>`,
    `<line x1="${px(x0)}" y1="${py(y0)}" x2="${px(x1)}" y2="${py(y0)}" stroke="#333"/>`,
    `<line x1="${px(x0)}" y1="${py(y0)}" x2="${px(x0)}" y2="${py(y1)}" stroke="#333"/>`,
    `<text x="${ox + W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">${esc(p.xLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    parts.push(
      `<line x1="${px(x0)}" y1="${py(y)}" x2="${px(x1)}" y2="${py(y)}" stroke="#ddd"/>`,
      `<text x="${px(x0) - 6}" y="${py(y) + 4}" text-anchor="end" font-size="10">${y.toFixed(y1 - y0 < 5 ? 2 : 0)}</text>`,
    );
  }
  for (const x of [...new Set(xs)]) {
    parts.push(
      `<text x="${px(x)}" y="${py(y0) + 14}" text-anchor="middle" font-size="10">${x}</text>`,
    );
  }
  p.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length] ?? '#000';
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((q) => `${px(q.x).toFixed(1)},${py(q.y).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const q of pts)
      parts.push(
        `<circle cx="${px(q.x).toFixed(1)}" cy="${py(q.y).toFixed(1)}" r="3" fill="${colour}"/>`,
      );
    parts.push(
      `<rect x="${ox + M.left + 8}" y="${M.top + 4 + i * 14}" width="10" height="3" fill="${colour}"/>`,
      `<text x="${ox + M.left + 22}" y="${M.top + 9 + i * 14}" font-size="10">${esc(s.name)}</text>`,
    );
  });
  return parts.join('\n');
}

/** Panels drawn side by side in one SVG document. */
function svgDocument<P>(panels: readonly P[], draw: (p: P, ox: number) => string): string {
  const width = W * panels.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H}" viewBox="0 0 ${width} ${H}" font-family="sans-serif">`,
    `<rect width="${width}" height="${H}" fill="#fff"/>`,
    ...panels.map((p, i) => draw(p, i * W)),
    '</svg>',
    '',
  ].join('\n');
}

/** Line-chart panels side by side in one SVG document. */
export function lineChartSvg(panels: readonly ChartPanel[]): string {
  return svgDocument(panels, panel);
}

/** A grouped bar chart panel: one group per category, one bar per series. */
export interface BarPanel {
  readonly title: string;
  readonly yLabel: string;
  readonly categories: readonly string[];
  readonly series: readonly { readonly name: string; readonly values: readonly number[] }[];
}

function barPanel(p: BarPanel, ox: number): string {
  const values = p.series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
  const y1 = Math.max(...values, 1e-9) * 1.15;
  const plotW = W - M.left - M.right;
  const groupW = plotW / Math.max(1, p.categories.length);
  const barW = (groupW * 0.8) / Math.max(1, p.series.length);
  const py = (y: number): number => H - M.bottom - (y / y1) * (H - M.top - M.bottom);
  const parts = [
    `<text x="${ox + W / 2}" y="20" text-anchor="middle" font-size="14">${esc(p.title)}</text>`,
    `<line x1="${ox + M.left}" y1="${py(0)}" x2="${ox + W - M.right}" y2="${py(0)}" stroke="#333"/>`,
    `<text x="${ox + 14}" y="${M.top + (H - M.top - M.bottom) / 2}" font-size="12" transform="rotate(-90 ${ox + 14} ${M.top + (H - M.top - M.bottom) / 2})" text-anchor="middle">${esc(p.yLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    parts.push(
      `<line x1="${ox + M.left}" y1="${py(y)}" x2="${ox + W - M.right}" y2="${py(y)}" stroke="#ddd"/>`,
      `<text x="${ox + M.left - 6}" y="${py(y) + 4}" text-anchor="end" font-size="10">${y.toFixed(y1 < 5 ? 2 : 0)}</text>`,
    );
  }
  p.categories.forEach((c, g) => {
    const gx = ox + M.left + g * groupW + groupW * 0.1;
    parts.push(
      `<text x="${gx + groupW * 0.4}" y="${py(0) + 14}" text-anchor="middle" font-size="10">${esc(c)}</text>`,
    );
    p.series.forEach((s, i) => {
      const v = s.values[g];
      if (v === undefined || !Number.isFinite(v)) return;
      parts.push(
        `<rect x="${(gx + i * barW).toFixed(1)}" y="${py(v).toFixed(1)}" width="${(barW * 0.9).toFixed(1)}" height="${(py(0) - py(v)).toFixed(1)}" fill="${COLOURS[i % COLOURS.length] ?? '#000'}"/>`,
        `<text x="${(gx + i * barW + barW * 0.45).toFixed(1)}" y="${(py(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${v < 10 ? v.toFixed(2) : v.toFixed(0)}</text>`,
      );
    });
  });
  p.series.forEach((s, i) => {
    parts.push(
      `<rect x="${ox + W - M.right - 110}" y="${M.top + 4 + i * 14}" width="10" height="8" fill="${COLOURS[i % COLOURS.length] ?? '#000'}"/>`,
      `<text x="${ox + W - M.right - 96}" y="${M.top + 11 + i * 14}" font-size="10">${esc(s.name)}</text>`,
    );
  });
  return parts.join('\n');
}

/** Bar panels side by side in one SVG document. */
export function barChartSvg(panels: readonly BarPanel[]): string {
  return svgDocument(panels, barPanel);
}
