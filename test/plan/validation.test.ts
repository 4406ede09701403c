/** The published-figure validation runs end to end; its errors are a benchmark result (docs/scaling.md), not asserted. */
import { runValidation } from '../../lib/plan';

describe('runValidation', () => {
  it.each(['planned', 'fastest'] as const)('compares every published figure under the %s rule, with its source and assumptions', (rule) => {
    const report = runValidation(rule);
    expect(report.rule).toBe(rule);
    expect(report.points.map((p) => [p.id, p.published])).toEqual([
      ['mics-100b-weak', 0.994],
      ['zero3-100b-weak', 0.72],
      ['mics-100b-tflops', 170],
      ['zero3-100b-tflops', 62],
      ['mics-175b-tflops', 169],
      ['mics-bert-speedup', 2.82],
      ['smp-30b-tflops', 141],
      ['smp-30b-speedup', 1.397],
      ['zero3-roberta-10b-64-tflops', 92.07],
      ['zero3-roberta-52b-64-tflops', 116.06],
      ['zero3-roberta-52b-256-tflops', 108],
    ]);
    for (const p of report.points) {
      expect(p.predicted).toBeGreaterThan(0);
      expect(p.error).toBeCloseTo(Math.abs(p.predicted - p.published) / p.published, 12);
      expect(p.source).toMatch(/arXiv 2205\.00119|SageMaker|DeepSpeed pull request #1453/);
      expect(p.assumptions.length).toBeGreaterThan(20);
    }
    expect(report.averageError).toBeCloseTo(report.points.reduce((a, p) => a + p.error, 0) / report.points.length, 12);
    expect(report.maxError).toBe(Math.max(...report.points.map((p) => p.error)));
  });

  it('runs the BERT comparison at the published batch, and the configurations published whole the same under either rule', () => {
    const [planned, fastest] = (['planned', 'fastest'] as const).map((rule) => runValidation(rule));
    expect(planned.points.find((p) => p.id === 'mics-bert-speedup')!.detail).toMatch(/MiCS S=\d+.*micro-batch 8,.*ZeRO-3 S=\d+, micro-batch 8,/);
    for (const id of ['zero3-roberta-10b-64-tflops', 'zero3-roberta-52b-64-tflops', 'zero3-roberta-52b-256-tflops']) {
      const a = planned.points.find((p) => p.id === id)!, b = fastest.points.find((p) => p.id === id)!;
      expect(a.predicted).toBe(b.predicted);
      expect(a.detail).toMatch(/micro-batch 16,/);
    }
  });
});
