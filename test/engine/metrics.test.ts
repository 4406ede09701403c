/**
 * averageOverWorld: metrics for logging, averaged over every rank through the
 * engine's world communicator and in the engine's order of collectives.
 */
import * as path from 'node:path';
import { averageOverWorld, createEngine, createGroups, init, MicsError, type Communicator, type Engine } from '../../lib';
import { describeRanks, killAllRanks, repoRoot, runRanks } from '../helpers/ranks';
import { rejection } from '../helpers/errors';

afterAll(killAllRanks);

describe('over 4 real ranks', () => {
  it('gives every rank the mean (or the weighted mean), also with a prefetched gather in flight', async () => {
    const results = await runRanks({ n: 4, nodes: 2, script: path.join(repoRoot, 'test', 'fixtures', 'engine', 'metrics.js'), timeoutMs: 60000 });
    expect([results.every((r) => r.code === 0 && r.json), describeRanks(results)]).toEqual([true, expect.any(String)]);
    for (const { json } of results) {
      expect(json.plain).toEqual({ loss: 1.5, accuracy: 15 }); // ranks 0..3
      expect(json.midStep).toEqual({ loss: (0 + 1 + 4 + 9) / 4 });
      expect(json.weighted.accuracy).toBeCloseTo(1 / (1 + 2 + 3 + 4), 12); // only rank 0 (weight 1) is right
      expect(json.stepped).toBe(true);
    }
  }, 90000);
});

describe('in one process', () => {
  let world: Communicator;
  let engine: Engine;
  beforeAll(async () => {
    world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
    engine = await createEngine(await createGroups(world, { partitionSize: 1 }), { parameters: [{ name: 'w', shape: [2] }], optimizer: { type: 'sgd' } });
  });
  afterAll(() => world.destroy());

  it('returns the values themselves', async () => {
    expect(await averageOverWorld(engine, { loss: 0.25, accuracy: 0.5 })).toEqual({ loss: 0.25, accuracy: 0.5 });
  });

  it('rejects what it cannot average, naming it', async () => {
    const cases: [unknown, unknown, RegExp | null][] = [
      [{ loss: 'x' }, undefined, /value 'loss' is x: use a number/],
      [{ loss: NaN }, undefined, /value 'loss' is NaN/],
      [{}, undefined, /values has no names/],
      [null, undefined, /values must be an object of numbers by name/],
      [{ loss: 1 }, null, null],
      [{ loss: 1 }, 'heavy', /averageOverWorld: options "heavy" is not valid: use an object/],
      [{ loss: 1 }, { weight: -1 }, /weight -1 is not valid: use a finite number >= 0/],
      [{ loss: 1 }, { weight: 0 }, /the weights of all ranks add up to 0/],
    ];
    for (const [values, options, message] of cases) {
      let error: unknown;
      try {
        await averageOverWorld(engine, values as never, options as never);
      } catch (err) {
        error = err;
      }
      if (message === null) {
        expect(error).toBeUndefined(); // null options: the defaults, as in Node's own APIs
        continue;
      }
      expect(error).toBeInstanceOf(MicsError);
      expect([(error as MicsError).code, (error as MicsError).message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(message)]);
    }
  });

  it('rejects what is not an engine, naming it (a Communicator, null)', async () => {
    for (const target of [world, null]) {
      const err = await rejection(averageOverWorld(target as never, { loss: 1 }));
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/^averageOverWorld: engine .* is not valid: use the Engine of createEngine\(\)/)]);
    }
  });
});
