#!/usr/bin/env node
// CPU kernel benchmarks: AdamW and accumulate GB/s through hostKernels (one call on
// libuv's pool, awaited) next to a memcpy (TypedArray.set) moving the same number
// of bytes, medians of alternating runs. Bytes are those the kernel must read plus
// write: AdamW with f32 grads reads p, g, m, v and writes p, m, v (28 B per element;
// with bf16 grads and a bf16 copy also 28 B); accumulate reads y, x and writes y
// (12 B with f32 x, 10 B with bf16 x). The memcpy copies half that many bytes
// (read + write = the same traffic). The ratio column is the median, over runs, of
// kernel speed / memcpy speed in adjacent runs.
//
//   node scripts/bench-host-kernels.js [elements ...]     (default: 1Mi and 32Mi)
//   BENCH_RUNS=11 (runs per figure; the median is printed)
'use strict';
const os = require('node:os');
const { hostKernels } = require('..');

const runs = Number(process.env.BENCH_RUNS || 11);
const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1 << 20, 32 << 20];

const kCopyPiece = 16 << 20;

const medianOf = (times) => times.sort((a, b) => a - b)[times.length >> 1];

async function seconds(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * Median seconds of `kernel` and of a memcpy of `copyBytes` (TypedArray.set, which
 * V8 turns into memmove, in 16 MiB pieces), run alternately so that both see the same machine phases
 * (this VM's speed drifts over minutes).
 */
async function medians(kernel, copyBytes) {
  const src = new Uint8Array(copyBytes).fill(1);
  const dst = new Uint8Array(copyBytes);
  // In pieces of at most 16 MiB: glibc's memmove switches to non-temporal stores
  // above a size derived from the cache size (about 180 MiB on the VM we measured),
  // which skip reading the destination first. The kernels use ordinary stores, so the
  // baseline does too, at every size.
  const copy = async () => {
    for (let off = 0; off < copyBytes; off += kCopyPiece) dst.set(src.subarray(off, off + kCopyPiece), off);
  };
  await kernel(); // warm-up: page faults, caches
  await copy();
  const k = [];
  const c = [];
  const ratios = []; // per pair of adjacent runs: robust to the drift
  for (let i = 0; i < runs; i++) {
    k.push(await seconds(kernel));
    c.push(await seconds(copy));
    ratios.push(c[i] / k[i]);
  }
  return { kernel: medianOf(k), copy: medianOf(c), ratio: medianOf(ratios) };
}

const gbs = (bytes, seconds) => bytes / seconds / 1e9;

async function bench(n) {
  const f32 = (value) => new Float32Array(n).fill(value);
  const bf16 = (bits) => ({ data: new Uint16Array(n).fill(bits), dtype: 'bf16' });
  const rows = [];
  const add = async (name, bytesPerElement, fn) => {
    const bytes = bytesPerElement * n;
    const { kernel, copy, ratio } = await medians(fn, bytes / 2);
    rows.push({ name, bytesPerElement, kernel: gbs(bytes, kernel), copy: gbs(bytes, copy), ratio, ms: kernel * 1e3 });
  };

  let step = 0;
  const state = { params: f32(0.5), expAvg: f32(0), expAvgSq: f32(0) };
  const grads = f32(0.01);
  await add('adamw (f32 grads)', 28, () => hostKernels.adamw({ ...state, grads, step: ++step }));
  const gradsBf16 = bf16(0x3c23); // 0.00995...
  const half = bf16(0);
  step = 0;
  await add('adamw (bf16 grads, bf16 copy)', 28, () => hostKernels.adamw({ ...state, grads: gradsBf16, halfParams: half, step: ++step }));
  const y = f32(0);
  await add('accumulate (f32 x)', 12, () => hostKernels.accumulate(y, grads, 0.5));
  await add('accumulate (bf16 x)', 10, () => hostKernels.accumulate(y, gradsBf16, 0.5));

  console.log(`\n# ${n} elements (${((28 * n) / 2 ** 20).toFixed(0)} MiB touched by one AdamW step), median of ${runs} runs`);
  console.log('| kernel | B/element | time (ms) | kernel GB/s | memcpy GB/s (same bytes) | kernel / memcpy (median of per-run ratios) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.bytesPerElement} | ${r.ms.toFixed(2)} | ${r.kernel.toFixed(1)} | ${r.copy.toFixed(1)} | ${r.ratio.toFixed(2)} |`,
    );
  }
}

async function main() {
  const cpus = os.cpus();
  console.log(`# host kernels: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`);
  for (const n of sizes) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`element count ${n} is not a positive integer`);
    await bench(n);
  }
  // The fixed cost of one call: checks, the hop to a pool thread and back, the Promise.
  const a = new Float32Array(1);
  const b = new Float32Array(1);
  const calls = [];
  for (let i = 0; i < 2000; i++) calls.push(await seconds(() => hostKernels.accumulate(a, b)));
  console.log(`\nper-call overhead: ${(medianOf(calls) * 1e6).toFixed(1)} us (median of 2000 awaited 1-element accumulate calls)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
