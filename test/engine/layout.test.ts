/**
 * The flat, sharded layout of the parameter registry (lib/engine/layout.ts) and the
 * learning-rate schedules (lib/engine/schedule.ts): pure functions, tested as tables.
 */
import { planLayout, unitSegments } from '../../lib/engine/layout';
import { makeSchedule } from '../../lib/engine/schedule';

describe('planLayout', () => {
  const params = [
    { name: 'emb', shape: [10, 4] },
    { name: 'l0.w', shape: [4, 4], unit: 'l0' },
    { name: 'l0.b', shape: [4], unit: 'l0' },
    { name: 'head', shape: [3] },
  ];

  it('explicit units keep their parameters together; the rest is bucketed in order; offsets are back to back', () => {
    const layout = planLayout(params, 2, { alignment: 4 });
    expect(layout.units.map((u) => [u.name, u.parameters.map((p) => [p.name, p.offset])])).toEqual([
      ['unit0', [['emb', 0]]],
      ['l0', [['l0.w', 0], ['l0.b', 16]]],
      ['unit2', [['head', 0]]],
    ]);
    // padded to a multiple of S x alignment = 8; shards back to back in the shard space
    expect(layout.units.map((u) => [u.numel, u.paddedNumel, u.shardNumel, u.shardOffset])).toEqual([
      [40, 40, 20, 0],
      [20, 24, 12, 20],
      [3, 8, 4, 32],
    ]);
    expect(layout.shardNumel).toBe(36);
  });

  it('maxElements buckets consecutive parameters; a larger parameter is a unit of its own', () => {
    const layout = planLayout(
      [1, 2, 3, 50, 4].map((n, i) => ({ name: `p${i}`, shape: [n] })),
      1,
      { maxElements: 5, alignment: 1 },
    );
    expect(layout.units.map((u) => u.parameters.map((p) => p.name))).toEqual([['p0', 'p1'], ['p2'], ['p3'], ['p4']]);
  });

  it('segments: each rank’s shard, parameter by parameter, padding named as such', () => {
    const layout = planLayout(params, 2, { alignment: 4 });
    const l0 = layout.units[1];
    expect(unitSegments(l0, 0).map((s) => [s.parameter?.name, s.offset, s.length, s.parameterOffset])).toEqual([['l0.w', 20, 12, 0]]);
    expect(unitSegments(l0, 1).map((s) => [s.parameter?.name, s.offset, s.length, s.parameterOffset])).toEqual([
      ['l0.w', 20, 4, 12], // every rank's shard of l0 starts at offset 20 of its own shard space
      ['l0.b', 24, 4, 0],
      [undefined, 28, 4, 0],
    ]);
    // every rank's segments tile its shard space exactly
    for (const r of [0, 1]) {
      const segs = layout.segments(r);
      expect(segs.reduce((n, s) => n + s.length, 0)).toBe(layout.shardNumel);
    }
  });

  it('model-state bytes per rank halve exactly when S doubles for units that are multiples of S x alignment', () => {
    const big = Array.from({ length: 8 }, (_, i) => ({ name: `w${i}`, shape: [1024, 256] }));
    const shard = (S: number) => planLayout(big, S).shardNumel;
    expect([1, 2, 4, 8, 16].map((S) => 16 * shard(S))).toEqual([1, 2, 4, 8, 16].map((S) => (16 * 8 * 1024 * 256) / S));
  });

  it('refuses what cannot be laid out, naming it', () => {
    expect(() => planLayout([{ name: 'a', shape: [2], unit: 'u' }, { name: 'b', shape: [2] }, { name: 'c', shape: [2], unit: 'u' }], 1)).toThrow(
      /unit 'u' must be consecutive/,
    );
    expect(() => planLayout([{ name: 'a', shape: [2] }], 0)).toThrow(/partition size 0/);
    expect(() => planLayout([{ name: '', shape: [2] }], 1)).toThrow(/name must be a non-empty string/);
    expect(() => planLayout([{ name: 'a', shape: [2], init: { normal: { std: -1 } } }], 1)).toThrow(/init .* is not valid/);
  });
});

describe('schedules', () => {
  it('warmup then cosine to minFactor at totalSteps, flat after', () => {
    const s = makeSchedule({ warmupSteps: 2, decay: 'cosine', totalSteps: 6, minFactor: 0.2 });
    const f = [1, 2, 3, 4, 5, 6, 7].map((t) => s.factor(t));
    expect(f[0]).toBe(0.5);
    expect(f[1]).toBe(1);
    expect(f[3]).toBeCloseTo(0.2 + 0.8 * 0.5, 12); // halfway through the decay
    expect(f[5]).toBeCloseTo(0.2, 12);
    expect(f[6]).toBeCloseTo(0.2, 12);
  });

  it('linear decay and constant; a function is checked for finite, non-negative factors', () => {
    expect([1, 2, 3].map((t) => makeSchedule({ decay: 'linear', totalSteps: 2 }).factor(t))).toEqual([0.5, 0, 0]);
    expect(makeSchedule(undefined).factor(100)).toBe(1);
    expect(() => makeSchedule(() => NaN).factor(1)).toThrow(/returned NaN for step 1/);
  });
});
