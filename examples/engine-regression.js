// Data-parallel training with the engine: a linear model fitted to synthetic data.
//
//   npx mics-launch --nproc-per-node 4 --emulate-nodes 2 examples/engine-regression.js
//
// 4 ranks on 2 emulated nodes, one partition group of S = 4 spanning both nodes
// (parameters gathered hierarchically), 2 micro-steps per optimizer step.
'use strict';
const { init, createGroups, destroyGroups, createEngine, step } = require('mics');

const IN = 8;
const OUT = 3;
const BATCH = 16;

// Rank r's micro-batch m of step s: a fixed linear map plus a little noise.
function microBatch(s, m, rank) {
  let seed = (s * 1000 + m * 100 + rank) * 2654435761;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return Array.from({ length: BATCH }, () => {
    const x = Array.from({ length: IN }, rand);
    const y = Array.from({ length: OUT }, (_, o) => x.reduce((sum, xi, i) => sum + xi * Math.cos(o + i), o) + 0.01 * rand());
    return { x, y };
  });
}

async function main() {
  const world = await init();
  const groups = await createGroups(world, { partitionSize: 4 });
  const engine = await createEngine(groups, {
    parameters: [
      { name: 'weight', shape: [OUT, IN], unit: 'linear' },
      { name: 'bias', shape: [OUT], unit: 'linear' },
    ],
    optimizer: { type: 'adamw', lr: 0.3, weightDecay: 0 },
    schedule: { warmupSteps: 5, decay: 'cosine', totalSteps: 60, minFactor: 0.1 },
    clipGradNorm: 10,
    accumulationSteps: 2,
    init: { seed: 1 },
  });

  let loss = 0;
  for (let s = 0; s < 60; s++) {
    for (let m = 0; m < 2; m++) {
      const { params } = await engine.gather('linear');
      const { grads } = engine.gradientBuffer('linear');
      loss = 0;
      for (const { x, y } of microBatch(s, m, world.rank)) {
        for (let o = 0; o < OUT; o++) {
          let pred = params.bias[o];
          for (let i = 0; i < IN; i++) pred += params.weight[o * IN + i] * x[i];
          const diff = pred - y[o];
          loss += (diff * diff) / BATCH; // the micro-batch's mean squared error
          grads.bias[o] += (2 * diff) / BATCH;
          for (let i = 0; i < IN; i++) grads.weight[o * IN + i] += (2 * diff * x[i]) / BATCH;
        }
      }
      engine.reduceGradients('linear');
      engine.release('linear');
      const result = await step(engine);
      if (result.stepped && (result.step === 1 || result.step % 20 === 0)) {
        console.log(`rank ${world.rank} step ${result.step}: loss ${loss.toFixed(4)} lr ${result.lr.toFixed(4)} grad norm ${result.gradNorm.toFixed(3)}`);
      }
    }
  }
  console.log(`rank ${world.rank} done: final loss ${loss.toFixed(4)}, model states ${engine.memory().modelStates} bytes on this rank`);
  engine.destroy();
  destroyGroups(groups);
  world.destroy();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
