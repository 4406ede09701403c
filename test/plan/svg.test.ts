/** The SVG writer: one polyline per series, log2 x axis, escaped text. */
import { renderLineChart } from '../../lib/plan';

describe('renderLineChart', () => {
  const svg = renderLineChart({
    title: 'A <b> & c',
    xLabel: 'GPUs',
    yLabel: 'TFLOPS',
    series: [
      { name: 'mics', points: [{ x: 16, y: 100 }, { x: 64, y: 98 }, { x: 256, y: 97 }] },
      { name: 'zero3', points: [{ x: 16, y: 100 }, { x: 64, y: 80 }, { x: 256, y: 60 }], dashed: true },
    ],
    references: [{ y: 170, label: 'published' }],
  });

  it('draws a standalone SVG document with one line and legend entry per series', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(6);
    expect(svg).toContain('>mics</text>');
    expect(svg).toContain('stroke-dasharray="6,4"');
    expect(svg).toContain('A &lt;b&gt; &amp; c');
  });

  it('spaces GPU counts evenly on a log2 axis', () => {
    const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].slice(0, 3).map((m) => Number(m[1]));
    expect(xs[1] - xs[0]).toBeCloseTo(xs[2] - xs[1], 6);
  });
});
