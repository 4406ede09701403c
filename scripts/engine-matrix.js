#!/usr/bin/env node
/**
 * The engine's full equivalence matrix (the test suite covers each dimension; this
 * covers their cross product): W in {1, 2, 4, 8 as 2 emulated nodes} x every
 * partition size S that divides W x accumulation {1, 3} x clipping {off, on} x
 * {AdamW, SGD with Nesterov momentum}. Each run trains the test model for 20 steps
 * under mics-launch and compares rank 0's final parameters with the single-process
 * reference: max|delta| / max|reference| per parameter must be <= 1e-6.
 *
 *   node scripts/engine-matrix.js            # prints one line per run and a summary; exit 1 on any failure
 */
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { train } = require(path.join(root, 'test', 'fixtures', 'engine', 'reference'));
const launcher = path.join(root, 'dist', 'cli', 'mics-launch.js');
const script = path.join(root, 'test', 'fixtures', 'engine', 'train.js');

const optimizers = {
  adamw: { type: 'adamw', lr: 0.02, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.05 },
  sgd: { type: 'sgd', lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.01 },
};
const worlds = [
  { W: 1, nodes: 1 },
  { W: 2, nodes: 1 },
  { W: 4, nodes: 1 },
  { W: 8, nodes: 2 },
];

let failures = 0;
let runs = 0;
let worst = 0;
for (const { W, nodes } of worlds) {
  for (let S = 1; S <= W; S++) {
    if (W % S !== 0) continue;
    for (const A of [1, 3]) {
      for (const clip of [undefined, 0.05]) {
        for (const [name, optimizer] of Object.entries(optimizers)) {
          const config = { S, A, B: 4, steps: 20, seed: 7, optimizer, clip, noDecay: ['fc2.bias'] };
          let out;
          try {
            out = execFileSync(
              process.execPath,
              [launcher, '--nproc-per-node', String(W), '--emulate-nodes', String(nodes), '--master-port', '0', script, JSON.stringify(config)],
              { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
            );
          } catch (err) {
            out = `${err.stdout ?? ''}\n[launcher] ${String(err.stderr ?? err.message).trim()}`;
          }
          const line = out.split('\n').find((l) => l.startsWith('[rank 0] RESULT '));
          const result = line ? JSON.parse(line.slice('[rank 0] RESULT '.length)) : { fatal: `no RESULT line: ${out.trim().split('\n').pop()}` };
          const reference = train({ W, ...config });
          let error = Infinity;
          if (result.params) {
            error = 0;
            for (const [param, ref] of Object.entries(reference.params)) {
              let delta = 0;
              let scale = 0;
              ref.forEach((r, i) => {
                delta = Math.max(delta, Math.abs(result.params[param][i] - r));
                scale = Math.max(scale, Math.abs(r));
              });
              error = Math.max(error, delta / scale);
            }
          }
          const ok = error <= 1e-6;
          runs += 1;
          worst = Math.max(worst, error);
          if (!ok) failures += 1;
          const hier = nodes > 1 && S > W / nodes ? ' (hierarchical)' : '';
          console.log(
            `${ok ? 'ok  ' : 'FAIL'} W=${W} nodes=${nodes} S=${S}${hier} A=${A} clip=${clip ?? 'off'} ${name}: max rel. error ${error.toExponential(2)}` +
              (result.error || result.fatal ? ` ${JSON.stringify(result.error ?? result.fatal)}` : ''),
          );
        }
      }
    }
  }
}
console.log(`${runs} runs, ${failures} failed, worst max|delta|/max|ref| ${worst.toExponential(2)}`);
process.exitCode = failures === 0 ? 0 : 1;
