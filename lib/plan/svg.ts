/**
 * A small SVG line-chart writer for scaling curves: x on a log2 axis (GPU
 * counts), y linear from 0, one polyline with markers per series, a legend.
 * Deterministic text output (no fonts measured, no browser), so charts can be
 * committed and diffed.
 *
 * @packageDocumentation
 */

/** One curve. */
export interface ChartSeries {
  readonly name: string;
  readonly points: readonly { readonly x: number; readonly y: number }[];
  /** Dashed line (e.g. predictions beyond published data). */
  readonly dashed?: boolean;
}

/** A chart: title, axis labels and curves. */
export interface LineChart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
  /** Upper end of the y axis; default: the largest y rounded up. */
  readonly yMax?: number;
  /** Horizontal reference lines (e.g. published figures). */
  readonly references?: readonly { readonly y: number; readonly label: string }[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];
const WIDTH = 640;
const HEIGHT = 400;
const M = { left: 64, right: 150, top: 40, bottom: 52 };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * mag >= v) return step * mag;
  return 10 * mag;
}

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/0+$/, '').replace(/\.$/, ''));

/** The chart as an SVG document. */
export function renderLineChart(chart: LineChart): string {
  const xs = chart.series.flatMap((s) => s.points.map((p) => p.x)).filter((x) => x > 0);
  const ys = chart.series.flatMap((s) => s.points.map((p) => p.y)).concat((chart.references ?? []).map((r) => r.y));
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  const yMax = chart.yMax ?? niceMax(Math.max(0, ...ys));
  const plotW = WIDTH - M.left - M.right, plotH = HEIGHT - M.top - M.bottom;
  const lx = (x: number): number => (xMax === xMin ? 0.5 : (Math.log2(x) - Math.log2(xMin)) / (Math.log2(xMax) - Math.log2(xMin)));
  const px = (x: number): number => M.left + lx(x) * plotW;
  const py = (y: number): number => M.top + plotH - (Math.min(y, yMax) / yMax) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2 - M.right / 2}" y="22" text-anchor="middle" font-size="14">${escape(chart.title)}</text>`,
  ];
  // Grid and axes.
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    out.push(
      `<line x1="${M.left}" y1="${py(y).toFixed(1)}" x2="${M.left + plotW}" y2="${py(y).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${M.left - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`,
    );
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(
      `<line x1="${px(x).toFixed(1)}" y1="${M.top}" x2="${px(x).toFixed(1)}" y2="${M.top + plotH}" stroke="#eee"/>`,
      `<text x="${px(x).toFixed(1)}" y="${M.top + plotH + 16}" text-anchor="middle">${x}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" y1="${M.top + plotH}" x2="${M.left + plotW}" y2="${M.top + plotH}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="black"/>`,
    `<text x="${M.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escape(chart.xLabel)}</text>`,
    `<text x="16" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + plotH / 2})">${escape(chart.yLabel)}</text>`,
  );
  for (const ref of chart.references ?? []) {
    out.push(
      `<line x1="${M.left}" y1="${py(ref.y).toFixed(1)}" x2="${M.left + plotW}" y2="${py(ref.y).toFixed(1)}" stroke="#888" stroke-dasharray="2,3"/>`,
      `<text x="${M.left + plotW - 4}" y="${(py(ref.y) - 4).toFixed(1)}" text-anchor="end" fill="#555">${escape(ref.label)}</text>`,
    );
  }
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => p.x > 0 && Number.isFinite(p.y));
    if (pts.length === 0) return;
    const d = pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''} points="${d}"/>`);
    for (const p of pts) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = M.top + 10 + i * 18;
    out.push(
      `<line x1="${WIDTH - M.right + 12}" y1="${ly}" x2="${WIDTH - M.right + 36}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
      `<text x="${WIDTH - M.right + 40}" y="${ly + 4}">${escape(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
