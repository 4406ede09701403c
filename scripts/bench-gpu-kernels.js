#!/usr/bin/env node
// GPU kernel benchmarks (issue 6): AdamW update GB/s against the card's
// device-to-device copy bandwidth, and the per-call overhead of the N-API path
// (a 1-element kernel call through the addon, until its Promise settles) -- medians
// over repeated calls.
// Needs the CUDA build (MICS_NATIVE_VARIANT=cuda) and a GPU; prints why otherwise.
'use strict';
const { DeviceTensor, cudaKernels, cudaAvailable } = require('..');

const avail = cudaAvailable();
if (!avail.ok) {
  console.log(`# skipped: ${avail.reason}`);
  process.exit(0);
}

// Median over `iters` runs of fn's wall time in seconds (or of what fn returns, with `returns`).
async function median(fn, iters, returns = false) {
  const times = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    const value = await fn();
    times.push(returns ? value : Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

async function main() {
  const n = Number(process.env.BENCH_ELEMENTS || 64 << 20); // 64 Mi parameters
  const params = DeviceTensor.alloc('f32', n).fill(0.5);
  const grads = DeviceTensor.alloc('bf16', n).fill(0.01);
  const expAvg = DeviceTensor.alloc('f32', n).fill(0);
  const expAvgSq = DeviceTensor.alloc('f32', n).fill(0);
  const half = DeviceTensor.alloc('bf16', n);
  const copyDst = DeviceTensor.alloc('f32', n);

  // Each timed call ends when the work is done (copyFrom is synchronous, kernels are
  // awaited), so wall time is device time + overhead.
  const copySeconds = await median(() => copyDst.copyFrom(params), 20);
  const copyGBs = (2 * 4 * n) / copySeconds / 1e9; // read + write
  let step = 0;
  const adamSeconds = await median(
    () => cudaKernels.adamw({ params, grads, expAvg, expAvgSq, halfParams: half, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: ++step }),
    20,
  );
  // Bytes moved by one AdamW step: read p, m, v (f32), g (bf16); write p, m, v (f32), half p (bf16).
  const adamBytes = n * (4 * 3 + 2 + 4 * 3 + 2);
  const adamGBs = adamBytes / adamSeconds / 1e9;

  const tinyA = DeviceTensor.alloc('f32', 1).fill(1);
  const tinyB = DeviceTensor.alloc('f32', 1).fill(1);
  const callUs = (await median(() => cudaKernels.accumulate(tinyA, tinyB, 1), 2000)) * 1e6;
  // The bare enqueue: calls issued back to back, only the last awaited (the launch and
  // the N-API call, without a Promise settled per call through the stream callback).
  const issueUs = await median(async () => {
    const calls = 1000;
    const t0 = process.hrtime.bigint();
    let last;
    for (let i = 0; i < calls; i++) last = cudaKernels.accumulate(tinyA, tinyB, 1);
    const issued = Number(process.hrtime.bigint() - t0) / 1e3 / calls;
    await last;
    return issued;
  }, 5, true);

  console.log(`# gpu kernels: ${n} elements`);
  console.log(`device copy         : ${copyGBs.toFixed(1)} GB/s (read+write, median of 20)`);
  console.log(`adamw (bf16 grads)  : ${adamGBs.toFixed(1)} GB/s = ${((100 * adamGBs) / copyGBs).toFixed(1)}% of copy bandwidth`);
  console.log(`napi kernel call    : ${callUs.toFixed(2)} us per 1-element call until its Promise settles (median of 2000)`);
  console.log(`bare enqueue        : ${issueUs.toFixed(2)} us per call issued back to back (median of 5 x 1000); settling costs ${(callUs - issueUs).toFixed(2)} us more`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
