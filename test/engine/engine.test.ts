/**
 * The engine's contract with its caller, in one process (a one-rank world): units
 * and views, the accumulation boundary, memory, and every out-of-order call
 * rejecting with MICS_INVALID_ARGUMENT naming what was expected.
 */
import { createEngine, createGroups, init, step, type Communicator, type Engine, type MicsGroups } from '../../lib';
import { ownBuffers, type EngineOwnBuffers } from '../../lib/engine/engine';
import { rejection, thrown } from '../helpers/errors';

const parameters = [
  { name: 'a.weight', shape: [4, 3], unit: 'a' },
  { name: 'a.bias', shape: [4], unit: 'a' },
  { name: 'b.weight', shape: [2, 4], unit: 'b' },
];

let world: Communicator;
let groups: MicsGroups;
beforeAll(async () => {
  world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
  groups = await createGroups(world, { partitionSize: 1 });
});
afterAll(() => world.destroy());

function engineWith(options: Partial<Parameters<typeof createEngine>[1]> = {}): Promise<Engine> {
  return createEngine(groups, { parameters, optimizer: { type: 'sgd', lr: 0.1 }, init: { seed: 1 }, ...options });
}

async function fullMicroStep(engine: Engine): Promise<void> {
  for (const u of engine.units) {
    await engine.gather(u);
    const { grads } = engine.gradientBuffer(u);
    for (const g of Object.values(grads)) g.fill(1);
    await engine.reduceGradients(u);
    engine.release(u);
  }
}

describe('units and views', () => {
  it('gathers a unit as named views of one flat buffer, with the shapes of the registry', async () => {
    const engine = await engineWith();
    expect(engine.units.map((u) => [u.name, u.numel, u.parameters.map((p) => p.name)])).toEqual([
      ['a', 16, ['a.weight', 'a.bias']],
      ['b', 8, ['b.weight']],
    ]);
    const a = await engine.gather('a');
    expect(a.params['a.weight'].length).toBe(12);
    expect(a.params['a.bias'].buffer).toBe(a.flat.buffer);
    // default init: normal(0, 0.02) for matrices, zeros for vectors
    expect(Array.from(a.params['a.bias'])).toEqual([0, 0, 0, 0]);
    expect(a.params['a.weight'].some((v) => v !== 0)).toBe(true);
    engine.release('a');
  });

  it('SGD on one rank: one step moves each parameter by -lr x its gradient (mean over accumulation)', async () => {
    const engine = await engineWith({ accumulationSteps: 2, init: { seed: 3 } });
    const before = await engine.fullParameters();
    await fullMicroStep(engine);
    const first = await step(engine);
    expect(first).toMatchObject({ stepped: false, step: 0, microStep: 1 });
    await fullMicroStep(engine);
    const second = await engine.step();
    expect(second).toMatchObject({ stepped: true, step: 1, microStep: 0, clipCoefficient: 1 });
    expect(second.gradNorm).toBeCloseTo(Math.sqrt(24), 5); // every gradient is 1, mean over 2 micro-steps is 1
    const after = await engine.fullParameters();
    for (const name of Object.keys(before)) {
      after[name].forEach((v, i) => expect(v).toBeCloseTo(before[name][i] - 0.1, 6));
    }
  });

  it('memory(): fp32 AdamW keeps 16 bytes per element of the shard space (parameters, gradient accumulator, exp_avg, exp_avg_sq)', async () => {
    const engine = await engineWith({ optimizer: { type: 'adamw' } });
    const m = engine.memory();
    const shardBytes = engine.layout.shardNumel * 4;
    expect(m).toMatchObject({
      parameterShards: shardBytes,
      masterWeights: 0,
      optimizerStates: 2 * shardBytes,
      gradientAccumulators: shardBytes,
      modelStates: 4 * shardBytes,
    });
  });
});

describe('its own memory, for mics bench step --overhead (not exported from the package)', () => {
  it('is the memory the engine computes in: its shards, and pooled buffers that its next step takes', async () => {
    const engine = await engineWith({ optimizer: { type: 'adamw' } });
    const own = engine[ownBuffers]() as EngineOwnBuffers<Float32Array>; // host memory on the cpu backend
    const [unit] = engine.units;
    const gathered = await engine.gather(unit);
    expect(gathered.flat.buffer).toBe(own.params.buffer); // one rank: the views are the parameter shard
    engine.release(unit);
    const [first, second] = own.pooled('f32', unit.paddedNumel, 2);
    expect(first).not.toBe(second);
    const again = own.pooled('f32', unit.paddedNumel, 2); // handed back in order, nothing new allocated
    expect(again[0]).toBe(first);
    expect(again[1]).toBe(second);
    expect(engine.gradientBuffer(unit, { zero: false }).flat).toBe(first);
    expect([own.expAvg, own.expAvgSq].every((b) => b !== undefined && b.length === engine.layout.shardNumel)).toBe(true);
  });
});

describe('reuseGathered: a caller that keeps its own full copy skips later gathers of the window', () => {
  it('counts as the gather only between a gather and the next optimizer step', async () => {
    const engine = await engineWith({ accumulationSteps: 2 });
    expect(engine.reuseGathered('a')).toBe(false); // never gathered
    await engine.gather('a');
    engine.release('a');
    expect(engine.reuseGathered('a')).toBe(true); // same micro-step: fine
    expect(engine.reuseGathered('b')).toBe(false);
    await engine.gather('b');
    await engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4) });
    await engine.reduceGradients('b', { 'b.weight': new Float32Array(8) });
    expect(await engine.step()).toMatchObject({ stepped: false, microStep: 1 });
    // the second micro-step of the window: the parameters have not changed, a gradient is accepted after reuse
    expect(engine.reuseGathered('a')).toBe(true);
    expect(engine.reuseGathered('b')).toBe(true);
    await engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4) });
    await engine.reduceGradients('b', { 'b.weight': new Float32Array(8) });
    expect(await engine.step()).toMatchObject({ stepped: true, step: 1 });
    // the optimizer step changed the parameters: the old copy is stale
    expect(engine.reuseGathered('a')).toBe(false);
    const err = await rejection(engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4) }));
    expect(err.message).toMatch(/not gathered in this micro-step/);
  });
});

describe('gradient buffers', () => {
  it('are zero-filled by default; with {zero: false} only the padding is zeroed (the parameters\' elements are left as the buffer held them)', async () => {
    const engine = await engineWith({ alignment: 8 }); // unit 'a' is 16 elements, padded to 16; 'b' 8 -> 8
    const padded = await createEngine(groups, {
      parameters: [{ name: 'odd', shape: [5] }],
      optimizer: { type: 'sgd', lr: 0.1 },
      alignment: 8,
    });
    for (const e of [engine, padded]) {
      for (let round = 0; round < 2; round++) {
        for (const u of e.units) {
          await e.gather(u);
          const { flat } = e.gradientBuffer(u, { zero: round === 1 ? false : true });
          const values = flat as Float32Array;
          if (round === 0) expect(values.every((v) => v === 0)).toBe(true);
          else expect(Array.from(values.subarray(u.numel))).toEqual(new Array(u.paddedNumel - u.numel).fill(0));
          values.subarray(0, u.numel).fill(7);
          await e.reduceGradients(u);
          e.release(u);
        }
        await e.step();
      }
    }
    expect(padded.units[0].paddedNumel).toBe(8);
  });
});

describe('calls out of order reject with MICS_INVALID_ARGUMENT naming what was expected', () => {
  it('step() before any gradient', async () => {
    const engine = await engineWith();
    const err = await rejection(engine.step());
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(/no gradient was handed back.*'a', 'b'/);
  });

  it('step() with a unit still missing its gradient names the unit', async () => {
    const engine = await engineWith();
    await engine.gather('a');
    await engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4) });
    const err = await rejection(engine.step());
    expect(err.message).toMatch(/units 'b' have no gradient/);
  });

  it('a gradient for a unit not gathered in this micro-step', async () => {
    const engine = await engineWith();
    const err = await rejection(engine.reduceGradients('b', { 'b.weight': new Float32Array(8) }));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(/'b'.*not gathered in this micro-step/);
  });

  it('a gradient of the wrong size, a missing or an unknown name', async () => {
    const engine = await engineWith();
    await engine.gather('a');
    const wrongSize = await rejection(engine.reduceGradients('a', { 'a.weight': new Float32Array(11), 'a.bias': new Float32Array(4) }));
    expect(wrongSize.message).toMatch(/'a.weight' has 11 elements; shape \[4, 3\] needs 12/);
    const missing = await rejection(engine.reduceGradients('a', { 'a.weight': new Float32Array(12) }));
    expect(missing.message).toMatch(/missing \[a.bias\]/);
    const extra = await rejection(
      engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4), 'b.weight': new Float32Array(8) }),
    );
    expect(extra.message).toMatch(/not in this unit: \[b.weight\]/);
  });

  it('two gradients for one unit in one micro-step', async () => {
    const engine = await engineWith();
    await engine.gather('b');
    await engine.reduceGradients('b', { 'b.weight': new Float32Array(8) });
    const err = await rejection(engine.reduceGradients('b', { 'b.weight': new Float32Array(8) }));
    expect(err.message).toMatch(/already has its gradient/);
  });

  it('unknown units, release without gather', async () => {
    const engine = await engineWith();
    expect((await rejection(engine.gather('c'))).message).toMatch(/unit "c" is not valid.*a, b/);
    expect((await rejection(engine.gather(2))).message).toMatch(/index in \[0, 1\]/);
    expect(thrown(() => engine.release('a')).message).toMatch(/not gathered/);
  });

  it('units of any other type are named in the error (a BigInt, a Symbol, null), never a TypeError', async () => {
    const engine = await engineWith();
    expect((await rejection(engine.gather(2n as never))).message).toMatch(/^gather: unit 2n is not valid/);
    expect(thrown(() => engine.release(Symbol('u') as never)).message).toMatch(/^release: unit Symbol\(u\) is not valid/);
    expect(thrown(() => engine.gradientBuffer(null as never)).message).toMatch(/^gradientBuffer: unit null is not valid/);
    expect(thrown(() => engine.gradientBuffer(0, { zero: 'no' } as never)).message).toMatch(/zero "no" is not valid: use true or false/);
    expect(engine.gradientBuffer(0, null as never).flat.length).toBeGreaterThan(0);
  });

  it('bad options name the option and what is valid', async () => {
    const cases: [object, RegExp][] = [
      [{ parameters: [] }, /non-empty array/],
      [{ parameters: [{ name: 'x', shape: [2, -1] }] }, /dimension -1/],
      [{ parameters: [{ name: 'x', shape: [2] }, { name: 'x', shape: [3] }] }, /'x' is listed twice/],
      [{ optimizer: { type: 'adam' } }, /'adam' is not valid: use 'adamw' or 'sgd'/],
      [{ optimizer: { type: 'sgd', nesterov: true } }, /nesterov needs momentum > 0/],
      [{ optimizer: { type: 'sgd', momentum: 0.9, nesterov: 'yes' } }, /^optimizer.nesterov "yes" is not valid: use true or false$/],
      [{ accumulationSteps: 0 }, /accumulationSteps 0/],
      [{ clipGradNorm: -1 }, /clipGradNorm -1/],
      [{ schedule: { decay: 'cosine' } }, /totalSteps undefined is not valid for 'cosine'/],
      [{ paramGroups: [{ params: ['nope'], weightDecay: 0 }] }, /'nope', which is not a parameter/],
      [{ init: { weights: { 'a.weight': [1] } } }, /'a.weight'\] has 1 values; shape \[4, 3\] needs 12/],
      [{ init: { weights: { 'a.weight': [...new Array(11).fill(0), '1'], 'a.bias': [0, 0, 0, 0], 'b.weight': new Float32Array(8) } } }, /init.weights\['a.weight'\]\[11\] is "1": weights must be numbers/],
      // eslint-disable-next-line no-sparse-arrays
      [{ parameters: [, { name: 'x', shape: [2] }] }, /parameter 0: name must be a non-empty string, got undefined/],
      [{ parameters: [{ name: 'x', shape: [2], init: { constant: 1n } }] }, /init \{"constant":"1n"\} is not valid/],
      // Names an Object.prototype key, or values String() cannot convert: named errors, not a TypeError or an accepted option.
      [{ precision: 'toString' }, /^precision 'toString' is not valid: use 'fp32', 'bf16' or 'fp16'$/],
      [{ precision: Object.create(null) }, /^precision '\{\}' is not valid/],
      [{ parameters: [{ name: 'x', shape: [2, Symbol('d')] }] }, /^parameter 'x': dimension Symbol\(d\) in shape \[2,"Symbol\(d\)"\] is not valid/],
      [{ accumulationSteps: Object.create(null) }, /^accumulationSteps \{\} is not valid/],
      [{ optimizer: { type: 'adamw', lr: Object.create(null) } }, /lr \{\} is not valid/],
    ];
    for (const [options, message] of cases) {
      const err = await rejection(engineWith(options as Partial<Parameters<typeof createEngine>[1]>));
      expect([String(message), err.code]).toEqual([String(message), 'MICS_INVALID_ARGUMENT']);
      expect(err.message).toMatch(message);
    }
  });

  it('a destroyed engine rejects every call with MICS_ABORTED', async () => {
    const engine = await engineWith();
    engine.destroy();
    expect((await rejection(engine.gather('a'))).code).toBe('MICS_ABORTED');
    expect((await rejection(engine.step())).code).toBe('MICS_ABORTED');
  });
});
