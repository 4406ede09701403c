/**
 * mics/tfjs trains a tfjs model like plain single-process tfjs: real rank processes
 * (4 ranks on 2 emulated nodes) train the shared 6-16-3 perceptron
 * (test/fixtures/adapters/tfjs-model.js) for 20 optimizer steps with the engine's
 * AdamW (weight decay 0, eps 1e-7: tf.train.adam's math), and one plain tfjs process
 * trains it on the whole global batch of every step with tf.train.adam. The losses of
 * every step and the final weights agree within fp32 tolerance, for S = 2 and S = 4
 * (hierarchical, spanning both nodes), with and without gradient accumulation.
 */
import * as path from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import { createTrainer, tf } from '../../../lib/adapters/tfjs';
import { createGroups, init, type Communicator, type MicsGroups } from '../../../lib';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../../helpers/ranks';
import { runNode } from '../../helpers/run-node';
import { rejection } from '../../helpers/errors';

const fixtures = path.join(repoRoot, 'test', 'fixtures', 'adapters');
afterAll(killAllRanks);

const W = 4;
const B = 8;
const STEPS = 20;
const LR = 0.02;

/**
 * fp32 tolerances against plain tfjs. The two compute the same math in another
 * order: the engine sums per-rank gradients of micro-batch means and scales once
 * (tfjs: one mean over the global batch), and its AdamW kernel divides by the bias
 * corrections elsewhere than tf.train.adam; Adam turns rounding differences of tiny
 * gradients into visible ones. Measured here: every step's loss within 6e-6
 * (relative), the final weights within 3e-6 of the largest weight.
 */
const LOSS_TOLERANCE = 2e-5;
const WEIGHT_TOLERANCE = 1e-5;

interface Reference {
  losses: number[];
  weights: Record<string, number[]>;
}

function reference(A: number): Reference {
  const r = runNode([path.join(fixtures, 'tfjs-reference.js'), JSON.stringify({ W, A, B, steps: STEPS, lr: LR })]);
  expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
  return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7)) as Reference;
}

/** max |a - b| / max |b| over every weight of the model. */
function weightError(actual: Record<string, number[]>, expected: Record<string, number[]>): number {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  let diff = 0;
  let scale = 0;
  for (const [name, values] of Object.entries(expected)) {
    values.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(actual[name][i] - v));
      scale = Math.max(scale, Math.abs(v));
    });
  }
  return diff / scale;
}

describe('the adapter against plain tfjs (W=4 on 2 emulated nodes, 20 steps)', () => {
  const runs = [
    { S: 2, A: 1 },
    { S: 2, A: 2 },
    { S: 4, A: 1 },
    { S: 4, A: 2 },
    { S: 2, A: 1, precision: 'bf16' },
    { S: 4, A: 2, precision: 'fp16' },
  ];
  let results: RankResult[];
  const references: Record<number, Reference> = {};

  beforeAll(async () => {
    results = await runRanks({
      n: W,
      nodes: 2,
      script: path.join(fixtures, 'tfjs-train.js'),
      args: [JSON.stringify({ runs, B, steps: STEPS, lr: LR, mismatch: true })],
      timeoutMs: 150000,
    });
    references[1] = reference(1);
    references[2] = reference(2);
  }, 180000);

  it('every rank runs every configuration to the end', () => {
    expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
  });

  it.each(runs.slice(0, 4).map((run, index) => [`S=${run.S}, accumulation ${run.A}`, index] as const))(
    '%s: the same loss at every step and the same final weights as plain tfjs',
    (_name, index) => {
      const { A } = runs[index];
      const ref = references[A];
      let worst = 0;
      for (let s = 0; s < STEPS; s++) {
        // the global batch's mean loss = the mean of the W x A micro-batch means
        const mean = results.reduce((sum, r) => sum + r.json.runs[index].losses[s].reduce((a: number, b: number) => a + b, 0), 0) / (W * A);
        const e = Math.abs(mean - ref.losses[s]) / ref.losses[s];
        worst = Math.max(worst, e);
        expect([s, e <= LOSS_TOLERANCE]).toEqual([s, true]);
      }
      expect(ref.losses[STEPS - 1]).toBeLessThan(ref.losses[0] * 0.8); // it learned something
      const error = weightError(results[0].json.runs[index].weights, ref.weights);
      console.log(`S=${runs[index].S} A=${A}: losses within ${worst.toExponential(2)} (relative), weights max|dw|/max|w| = ${error.toExponential(2)}`);
      expect(error).toBeLessThanOrEqual(WEIGHT_TOLERANCE);
    },
  );

  it('bf16 and fp16 (with loss scaling) end within their precision of the fp32 reference (max|dw|/max|w| <= 1e-2 and 2e-3)', () => {
    for (const [index, tolerance] of [
      [4, 1e-2],
      [5, 2e-3],
    ]) {
      const run = runs[index];
      const error = weightError(results[0].json.runs[index].weights, references[run.A].weights);
      console.log(`${run.precision}: max|dw|/max|w| = ${error.toExponential(2)}`);
      expect([run.precision, error <= tolerance]).toEqual([run.precision, true]);
    }
  });

  it('units are the layers; copies per optimizer step are 4 bytes per parameter in, 4 x A out', () => {
    for (const r of results) {
      for (const [index, run] of runs.slice(0, 4).entries()) {
        const out = r.json.runs[index];
        expect(out.units).toEqual([expect.stringMatching(/^dense_Dense\d+$/), expect.stringMatching(/^dense_Dense\d+$/)]);
        const P = out.numel;
        expect(P).toBe(6 * 16 + 16 + 16 * 3 + 3);
        // parameters into the variables once per optimizer step (after it), gradients out every micro-step
        for (const stepped of out.results.slice(1)) expect(stepped.copiedBytes).toBe(4 * P * (1 + run.A));
        expect(out.copies.gradientsOut.bytes).toBe(4 * P * run.A * STEPS);
        expect(out.tensorsAdded).toBe(0);
      }
    }
  });

  it('parameters are all-gathered once per optimizer step, not once per micro-step: the variables keep them through the window', () => {
    for (const r of results) {
      for (const [withA1, withA2] of [
        [0, 1],
        [2, 3],
      ]) {
        const one = r.json.runs[withA1].gatherBytes;
        const two = r.json.runs[withA2].gatherBytes;
        expect([one.length, two.length]).toEqual([STEPS, STEPS]);
        expect(one[0]).toBeGreaterThan(0);
        // accumulation 2 moves what accumulation 1 does per optimizer step
        expect(two).toEqual(one);
      }
    }
  });

  it("init 'every-rank' from different weights: every rank of a replica that differs rejects with MICS_MISMATCH naming the ranks", () => {
    for (const r of results) {
      expect(r.json.mismatch).toEqual({ micsError: true, code: 'MICS_MISMATCH', message: expect.stringMatching(/replicas of the parameters differ.*world ranks \[0\] vs \[2\]/) });
    }
  });
});

describe("the trainer's contract (one process, W = 1)", () => {
  let world: Communicator;
  let groups: MicsGroups;
  let names = 0;

  beforeAll(async () => {
    tf.enableProdMode(); // no "install tfjs-node" banner
    world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
    groups = await createGroups(world, { partitionSize: 1 });
  });
  afterAll(() => world.destroy());

  /** A 3-4-2 perceptron with seeded weights, unique layer names, and one fixed batch. */
  function setUp() {
    const prefix = `c${names++}.`;
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4, activation: 'tanh', name: `${prefix}a`, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        tf.layers.dense({ units: 2, name: `${prefix}b`, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    const xs = tf.tensor2d([0.1, -0.4, 0.9, 0.5, 0.2, -0.3, -0.8, 0.7, 0.05, 0.3, 0.3, -0.6], [4, 3]);
    const ys = tf.tensor2d([1, 0, 0, 1, 1, 0, 0, 1], [4, 2]);
    const loss = (): tfjs.Scalar => tf.losses.softmaxCrossEntropy(ys, model.apply(xs) as tfjs.Tensor) as tfjs.Scalar;
    return { model, xs, ys, loss, prefix };
  }

  it('trainStep returns the loss and the metrics as numbers, and leaves no tensor behind', async () => {
    const { model, loss, xs, ys } = setUp();
    const trainer = await createTrainer(groups, model, { optimizer: { type: 'adamw', lr: 0.05 } });
    const tensors = tf.memory().numTensors;
    const first = await trainer.trainStep(() => ({ loss: loss(), metrics: { accuracy: tf.metrics.categoricalAccuracy(ys, model.apply(xs) as tfjs.Tensor).mean() as tfjs.Scalar } }));
    let last = first;
    for (let i = 0; i < 20; i++) last = await trainer.trainStep(loss);
    expect(first).toEqual(expect.objectContaining({ stepped: true, step: 1, loss: expect.any(Number), metrics: { accuracy: expect.any(Number) } }));
    expect(first.metrics.accuracy).toBeGreaterThanOrEqual(0);
    expect(last.loss).toBeLessThan(first.loss / 2);
    expect(tf.memory().numTensors).toBe(tensors);
    trainer.destroy();
  });

  it('gather() + tf.variableGrads + applyGradients() trains exactly like trainStep()', async () => {
    const a = setUp();
    const b = setUp();
    const options = { optimizer: { type: 'adamw' as const, lr: 0.05 }, accumulationSteps: 2 };
    const viaStep = await createTrainer(groups, a.model, options);
    const viaApply = await createTrainer(groups, b.model, options);
    for (let i = 0; i < 6; i++) {
      await viaStep.trainStep(a.loss);
      await viaApply.gather();
      const { value, grads } = tf.variableGrads(b.loss, viaApply.variables as tfjs.Variable[]);
      const applied = viaApply.applyGradients(grads);
      tf.dispose([value, grads]); // read before applyGradients returned
      expect(await applied).toEqual(expect.objectContaining({ stepped: i % 2 === 1 }));
    }
    const [pa, pb] = [await viaStep.engine.fullParameters(), await viaApply.engine.fullParameters()];
    expect(Object.values(pb)).toEqual(Object.values(pa));
    viaStep.destroy();
    viaApply.destroy();
  });

  it("given the world, the engine makes its groups with partitionSize 'auto' and trains the same", async () => {
    const a = setUp();
    const b = setUp();
    const viaGroups = await createTrainer(groups, a.model, { optimizer: { type: 'sgd', lr: 0.5 } });
    const viaWorld = await createTrainer(groups.world, b.model, { optimizer: { type: 'sgd', lr: 0.5 }, partitionSize: 'auto' });
    expect(viaWorld.engine.partitionChoice?.partitionSize).toBe(1);
    for (let i = 0; i < 3; i++) {
      await viaGroups.trainStep(a.loss);
      await viaWorld.trainStep(b.loss);
    }
    expect(Object.values(await viaWorld.engine.fullParameters())).toEqual(Object.values(await viaGroups.engine.fullParameters()));
    viaGroups.destroy();
    viaWorld.destroy();
  });

  it('after an optimizer step the variables are refreshed by the next gather(), or at once by syncVariables()', async () => {
    const { model, loss, prefix } = setUp();
    const trainer = await createTrainer(groups, model, { optimizer: { type: 'sgd', lr: 0.5 } });
    const kernel = () => Array.from(model.getLayer(`${prefix}a`).getWeights()[0].dataSync());
    const before = kernel();
    await trainer.trainStep(loss);
    expect(kernel()).toEqual(before); // the step changed the engine's shard, not yet the variable
    await trainer.syncVariables();
    const engineValues = (await trainer.engine.fullParameters())[`${prefix}a/kernel`];
    expect(kernel()).toEqual(Array.from(engineValues));
    expect(kernel()).not.toEqual(before);
    trainer.destroy();
  });

  it('rejects calls out of order and gradients it cannot use, naming what is expected', async () => {
    const { model, loss, prefix } = setUp();
    const trainer = await createTrainer(groups, model, { optimizer: { type: 'sgd', lr: 0.1 } });
    const grads = () => tf.variableGrads(loss, trainer.variables as tfjs.Variable[]).grads;
    let err = await rejection(trainer.applyGradients(grads()));
    expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/call trainer.gather\(\) first in every micro-step/)]);
    await trainer.gather();
    err = await rejection(trainer.applyGradients({ ...grads(), other: tf.zeros([1]) }));
    expect(err.message).toMatch(new RegExp(`'other' is not a trained variable \\(trained: ${prefix}a/kernel, ${prefix}a/bias, ${prefix}b/kernel, ${prefix}b/bias\\)`));
    err = await rejection(trainer.applyGradients({ [`${prefix}a/bias`]: tf.zeros([5]) }));
    expect(err.message).toMatch(new RegExp(`gradient of '${prefix}a/bias' is float32 \\[5\\]; the variable is float32 \\[4\\]`));
    const disposed = tf.zeros([4]);
    disposed.dispose();
    err = await rejection(trainer.applyGradients({ [`${prefix}a/bias`]: disposed }));
    expect(err.message).toMatch(new RegExp(`gradient of '${prefix}a/bias' was disposed`));
    err = await rejection(trainer.trainStep(() => tf.zeros([2]) as never));
    expect(err.message).toMatch(/lossFn must return a scalar tf.Tensor/);
    err = await rejection(trainer.trainStep(() => ({ loss: loss(), metrics: { bad: tf.zeros([3]) as never } })));
    expect(err.message).toMatch(/metric 'bad' must be a scalar tf.Tensor/);
    // a second call while one runs: its collectives would interleave differently on other ranks
    const running = trainer.trainStep(loss);
    err = await rejection(trainer.syncVariables());
    expect(err.message).toMatch(/syncVariables: trainStep\(\) has not finished: await it before the next call of the trainer/);
    expect((await running).stepped).toBe(true);
    // nothing was handed over: a correct micro-step still works, a missing gradient counts as zero
    await trainer.gather();
    const result = await trainer.applyGradients({ [`${prefix}b/bias`]: tf.ones([2]) });
    expect(result.stepped).toBe(true);
    trainer.destroy();
  });

  it('rejects options the adapter cannot use', async () => {
    const { model } = setUp();
    const cases: [object, RegExp][] = [
      [{ optimizer: { type: 'sgd' }, parameters: [] }, /the parameters come from the model/],
      [{ optimizer: { type: 'sgd' }, init: { seed: 1 } }, /init \{"seed":1\} is not valid: use 'rank0'/],
    ];
    for (const [options, message] of cases) {
      const err = await rejection(createTrainer(groups, model, options as never));
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(message)]);
    }
    expect((await rejection(createTrainer({} as never, model, { optimizer: { type: 'sgd' } }))).message).toMatch(/groups must be the result of createGroups\(world, \.\.\.\), or the world communicator/);
  });
});
