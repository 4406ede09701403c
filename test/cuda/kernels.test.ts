/**
 * Every CUDA kernel against its CPU reference (lib/cuda/reference.ts) on fresh random
 * inputs, plus the kernels' argument errors (thrown at the call) and their Promises
 * (settled once the device ran the work, in call order). Needs the CMake build with CUDA and a
 * device; elsewhere every case is skipped with the reason printed (fails with
 * MICS_REQUIRE_GPU=1).
 *
 * Tolerances. The element-wise kernels (accumulate, scale, cast, AdamW, SGD) must
 * match the reference bit for bit: the .cu files are compiled with --fmad=false and
 * use only correctly rounded f32 operations (+ - * / sqrt, IEEE division and square
 * root being nvcc's defaults), and the reference rounds every operation to f32 with
 * Math.fround, which gives the same float (a double result of one operation on floats
 * rounds to the correctly rounded float). Only NaN payloads may differ (both must be
 * NaN). sumOfSquares adds in a different order than the reference; all terms are
 * non-negative, so its relative error is at most (d + 2) u, with d the longest chain
 * of additions in its reduction tree and u the unit roundoff of the accumulator
 * (see sumTolerance).
 */
import { randomInt } from 'node:crypto';
import { fromBFloat16Bits, fromFloat16Bits, toBFloat16Bits, toFloat16Bits } from '../../lib/core/dtypes';
import { cudaAvailable, cudaKernels, DeviceTensor } from '../../lib/cuda/device-tensor';
import {
  accumulateRef, adamwRef, type AdamWHyper, type FloatDTypeName, type HalfDTypeName, hasNonFiniteRef, narrow, scaleRef,
  sgdRef, type SgdHyper, sumOfSquaresRef,
} from '../../lib/cuda/reference';
import { mulberry32 } from '../helpers/random';
import { gpuTest } from '../helpers/require-gpu';

const avail = cudaAvailable();
const gpuIt = gpuTest(avail.ok, avail.reason, 'the GPU kernel tests');

// Fresh inputs on every run; MICS_TEST_SEED=<n> replays a failing one.
const seed = process.env.MICS_TEST_SEED ? Number(process.env.MICS_TEST_SEED) : randomInt(2 ** 31);
if (avail.ok) console.log(`GPU kernel tests on ${avail.reason}; seed ${seed} (MICS_TEST_SEED=${seed} replays)`);

// Module-level bindings: global lookups inside hot loops are slow in jest's vm context.
const { floor, sqrt, log, cos, PI } = Math;
const { is } = Object;
const { isNaN } = Number;

const rand = mulberry32(seed);
const int = (n: number) => floor(rand() * n);

/** Normal(0, scale) samples as floats; about 1 in 50 exactly zero (exercises zero grads). */
function randomF32(n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (rand() < 0.02) continue;
    const u = 1 - rand();
    out[i] = scale * sqrt(-2 * log(u)) * cos(2 * PI * rand());
  }
  return out;
}

function randomOf(dtype: FloatDTypeName, n: number, scale = 1): Float32Array | Uint16Array {
  const f = randomF32(n, scale);
  return dtype === 'f32' ? f : Uint16Array.from(f, (v) => narrow(v, dtype));
}

// Sizes: tiny, not a multiple of the block size, and more than the 4096 x 256 threads
// of one grid (so the grid-stride loops wrap).
const sizes = () => [1, 1 + int(3000), 4096 * 256 + 1 + int(5000)];

/** Exact f32 equality (signed zeros too); NaN matches any NaN. */
function expectSameF32(actual: Float32Array | Float64Array, expected: Float32Array | Float64Array, what: string): void {
  expect(actual.length).toBe(expected.length);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (is(a, e) || (isNaN(a) && isNaN(e))) continue;
    count++;
    if (bad.length < 5) bad.push(`[${i}] got ${a}, want ${e}`);
  }
  expect({ what, mismatches: count, first: bad }).toEqual({ what, mismatches: 0, first: [] });
}

function isHalfNaN(bits: number, dtype: HalfDTypeName): boolean {
  return dtype === 'bf16' ? (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0 : (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
}

/** Exact bf16/f16 bit equality; NaN matches any NaN. */
function expectSameHalf(actual: Uint16Array, expected: Uint16Array, dtype: HalfDTypeName, what: string): void {
  expect(actual.length).toBe(expected.length);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] === expected[i] || (isHalfNaN(actual[i], dtype) && isHalfNaN(expected[i], dtype))) continue;
    count++;
    if (bad.length < 5) bad.push(`[${i}] got 0x${actual[i].toString(16)}, want 0x${expected[i].toString(16)}`);
  }
  expect({ what, mismatches: count, first: bad }).toEqual({ what, mismatches: 0, first: [] });
}

function expectCode(fn: () => unknown, code: string, message: RegExp): void {
  let error: (Error & { code?: string }) | undefined;
  try {
    fn();
  } catch (e) {
    error = e as Error & { code?: string };
  }
  expect({ code: error?.code, message: error?.message }).toEqual({ code, message: expect.stringMatching(message) });
}

const floatDtypes: FloatDTypeName[] = ['f32', 'bf16', 'f16'];

describe('CUDA kernels against the CPU reference (GPU)', () => {
  gpuIt('accumulate: y += alpha * x for f32, bf16 and f16 x, in place and on views', async () => {
    for (const xd of floatDtypes) {
      for (const n of sizes()) {
        const y = randomF32(n, 10);
        const x = randomOf(xd, n, 10);
        const alpha = (rand() - 0.5) * 4;
        const Y = DeviceTensor.fromHost('f32', y);
        await cudaKernels.accumulate(Y, DeviceTensor.fromHost(xd, x as never), alpha);
        expectSameF32(Y.download(), accumulateRef(y, x, xd, alpha), `accumulate ${xd} n=${n}`);
      }
    }
    // x is y itself.
    const y = randomF32(5000, 3);
    const Y = DeviceTensor.fromHost('f32', y);
    await cudaKernels.accumulate(Y, Y, 0.5);
    expectSameF32(Y.download(), accumulateRef(y, y, 'f32', 0.5), 'accumulate in place');
    // Into an odd-offset view: only the view changes.
    const big = randomF32(10000);
    const B = DeviceTensor.fromHost('f32', big);
    const x = randomOf('bf16', 3001);
    await cudaKernels.accumulate(B.view(17, 3001), DeviceTensor.fromHost('bf16', x as Uint16Array));
    const expected = Float32Array.from(big);
    expected.set(accumulateRef(big.subarray(17, 3018), x, 'bf16', 1), 17);
    expectSameF32(B.download(), expected, 'accumulate into a view');
  });

  gpuIt('scale: x *= alpha for f32, f64, bf16 and f16', async () => {
    for (const dtype of ['f32', 'f64', 'bf16', 'f16'] as const) {
      for (const n of sizes()) {
        const alpha = (rand() - 0.5) * 8;
        const f = randomF32(n, 100);
        const host = dtype === 'f64' ? Float64Array.from(f, (v) => v * (1 + rand())) : dtype === 'f32' ? f : Uint16Array.from(f, (v) => narrow(v, dtype));
        const X = DeviceTensor.fromHost(dtype, host as never);
        await cudaKernels.scale(X, alpha);
        const want = scaleRef(host, dtype, alpha);
        if (dtype === 'bf16' || dtype === 'f16') expectSameHalf(X.download() as Uint16Array, want as Uint16Array, dtype, `scale ${dtype} n=${n}`);
        else expectSameF32(X.download() as Float32Array, want as Float32Array, `scale ${dtype} n=${n}`);
      }
    }
  });

  gpuIt('cast: bf16/f16 -> f32 exactly for all 65536 bit patterns', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const dtype of ['bf16', 'f16'] as const) {
      const out = DeviceTensor.alloc('f32', all.length);
      await cudaKernels.cast(out, DeviceTensor.fromHost(dtype, all));
      const widen = dtype === 'bf16' ? fromBFloat16Bits : fromFloat16Bits;
      expectSameF32(out.download(), Float32Array.from(all, (b) => widen(b)), `cast ${dtype} -> f32`);
    }
  });

  gpuIt('cast: f32 -> bf16/f16 rounds to nearest even (random bit patterns, ties, subnormals, overflow)', async () => {
    const n = 1 << 20;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = floor(rand() * 2 ** 32);
    const src = new Float32Array(bits.buffer);
    const specials = [
      0, -0, Infinity, -Infinity, NaN, 65504, 65519, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14,
      1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.4028234663852886e38, 1e-45, -1e-40,
    ];
    src.set(specials);
    // Values in the f16 range, where its rounding matters most.
    for (let i = specials.length; i < n / 2; i++) src[i] = (rand() - 0.5) * 2 ** (int(40) - 25);
    const S = DeviceTensor.fromHost('f32', src);
    for (const dtype of ['bf16', 'f16'] as const) {
      const out = DeviceTensor.alloc(dtype, n);
      await cudaKernels.cast(out, S);
      const narrowBits = dtype === 'bf16' ? toBFloat16Bits : toFloat16Bits;
      expectSameHalf(out.download(), Uint16Array.from(src, (v) => narrowBits(v)), dtype, `cast f32 -> ${dtype}`);
    }
  });

  interface AdamWCase {
    name: string;
    gradsDtype: FloatDTypeName;
    halfDtype?: HalfDTypeName;
    hyper: Omit<AdamWHyper, 'step'>;
    firstStep: number;
    zeroState: boolean;
    viewOffset: number;
  }
  const adamwCases: AdamWCase[] = [
    { name: 'PyTorch defaults, f32 grads, from zero state', gradsDtype: 'f32', hyper: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 }, firstStep: 1, zeroState: true, viewOffset: 0 },
    { name: 'bf16 grads and bf16 copy, no decay, grad scale, mid-training state', gradsDtype: 'bf16', halfDtype: 'bf16', hyper: { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0, gradScale: 0.25 }, firstStep: 1000, zeroState: false, viewOffset: 0 },
    { name: 'f16 grads and f16 copy, beta1 < 0.5 (the other lerp branch), on views', gradsDtype: 'f16', halfDtype: 'f16', hyper: { lr: 0.05, beta1: 0.3, beta2: 0.5, eps: 1e-3, weightDecay: 0.1 }, firstStep: 3, zeroState: false, viewOffset: 5 },
  ];

  gpuIt.each(adamwCases)('adamw: $name', async (c) => {
    for (const n of sizes()) {
      // On views (offset c.viewOffset into bigger allocations) when asked: the rest must not change.
      const pad = c.viewOffset;
      const parents: DeviceTensor[] = [];
      const alloc = <D extends FloatDTypeName>(dtype: D): DeviceTensor<D> => {
        const parent = DeviceTensor.alloc(dtype, n + 2 * pad).fill(7);
        parents.push(parent);
        return parent.view(pad, n);
      };
      let state = {
        params: randomF32(n),
        expAvg: c.zeroState ? new Float32Array(n) : randomF32(n, 0.01),
        expAvgSq: c.zeroState ? new Float32Array(n) : randomF32(n, 1e-3).map((v) => v * v),
      };
      const P = alloc('f32').upload(state.params);
      const M = alloc('f32').upload(state.expAvg);
      const V = alloc('f32').upload(state.expAvgSq);
      const G = alloc(c.gradsDtype);
      const H = c.halfDtype ? alloc(c.halfDtype) : undefined;
      for (let step = c.firstStep; step < c.firstStep + 3; step++) {
        const grads = randomOf(c.gradsDtype, n, 0.1);
        G.upload(grads as never);
        await cudaKernels.adamw({ params: P, grads: G as never, expAvg: M, expAvgSq: V, halfParams: H as never, ...c.hyper, step });
        const want = adamwRef({ ...state, grads, gradsDtype: c.gradsDtype }, { ...c.hyper, step }, c.halfDtype);
        const what = `adamw n=${n} step=${step}`;
        expectSameF32(P.download(), want.params, `${what} params`);
        expectSameF32(M.download(), want.expAvg, `${what} expAvg`);
        expectSameF32(V.download(), want.expAvgSq, `${what} expAvgSq`);
        if (H && c.halfDtype && want.half) expectSameHalf(H.download() as Uint16Array, want.half, c.halfDtype, `${what} halfParams`);
        state = want;
      }
      // The padding around each view still holds the fill value.
      for (const parent of parents) {
        const all = parent.download();
        const padding = [...all.subarray(0, pad), ...all.subarray(pad + n)];
        const seven = parent.dtype === 'f32' ? 7 : narrow(7, parent.dtype as HalfDTypeName);
        expect(padding).toEqual(new Array(2 * pad).fill(seven));
      }
    }
  });

  interface SgdCase {
    name: string;
    gradsDtype: FloatDTypeName;
    halfDtype?: HalfDTypeName;
    hyper: Omit<SgdHyper, 'step'>;
  }
  const sgdCases: SgdCase[] = [
    { name: 'plain (no momentum, no decay), bf16 copy', gradsDtype: 'f32', halfDtype: 'bf16', hyper: { lr: 0.1 } },
    { name: 'momentum with dampening and weight decay', gradsDtype: 'f32', hyper: { lr: 0.01, momentum: 0.9, dampening: 0.1, weightDecay: 1e-4 } },
    { name: 'nesterov, bf16 grads, f16 copy, grad scale', gradsDtype: 'bf16', halfDtype: 'f16', hyper: { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01, gradScale: 2 } },
    { name: 'momentum, f16 grads', gradsDtype: 'f16', hyper: { lr: 0.2, momentum: 0.5 } },
  ];

  gpuIt.each(sgdCases)('sgd: $name', async (c) => {
    for (const n of sizes()) {
      let state: { params: Float32Array; momentumBuffer?: Float32Array } = { params: randomF32(n) };
      const P = DeviceTensor.fromHost('f32', state.params);
      const G = DeviceTensor.alloc(c.gradsDtype, n);
      // Garbage in the buffer: step 1 must overwrite it, not read it.
      const B = c.hyper.momentum ? DeviceTensor.alloc('f32', n).fill(NaN) : undefined;
      const H = c.halfDtype ? DeviceTensor.alloc(c.halfDtype, n) : undefined;
      for (let step = 1; step <= 3; step++) {
        const grads = randomOf(c.gradsDtype, n, 0.1);
        G.upload(grads as never);
        await cudaKernels.sgd({ params: P, grads: G as never, momentumBuffer: B, halfParams: H as never, ...c.hyper, step });
        const want = sgdRef({ ...state, grads, gradsDtype: c.gradsDtype }, { ...c.hyper, step }, c.halfDtype);
        const what = `sgd n=${n} step=${step}`;
        expectSameF32(P.download(), want.params, `${what} params`);
        if (B && want.momentumBuffer) expectSameF32(B.download(), want.momentumBuffer, `${what} momentumBuffer`);
        if (H && c.halfDtype && want.half) expectSameHalf(H.download() as Uint16Array, want.half, c.halfDtype, `${what} halfParams`);
        state = want;
      }
    }
  });

  /**
   * Relative error bound of sumOfSquares. Each thread adds k = ceil(n / threads)
   * squares in turn, then the partial sums go through a 5-level warp shuffle, a 5-level
   * shuffle over the block's warp sums, and the same two again in the single finishing
   * block, plus the optional add into out: d = k + 21 additions on the longest path.
   * Non-negative terms: |error| <= (d + 2) u sum, +1 for squaring in f32, +1 for the
   * reference's own (compensated) error.
   */
  function sumTolerance(n: number, acc: 'f32' | 'f64'): number {
    const blocks = Math.min(Math.max(Math.ceil(n / 256), 1), 1024);
    const k = Math.ceil(n / (blocks * 256));
    return (k + 21 + 2) * (acc === 'f32' ? 2 ** -24 : 2 ** -53);
  }

  gpuIt('sumOfSquares: f32, bf16 and f16 inputs into f32 and f64 sums, within the summation bound', async () => {
    for (const xd of floatDtypes) {
      for (const n of [...sizes(), 3 * 1024 * 256 + int(1000)]) {
        const x = randomOf(xd, n, 2);
        const X = DeviceTensor.fromHost(xd, x as never);
        const want = sumOfSquaresRef(x, xd);
        for (const acc of ['f32', 'f64'] as const) {
          const got = await cudaKernels.sumOfSquares(X, acc);
          const rel = want === 0 ? (got === 0 ? 0 : Infinity) : Math.abs(got - want) / want;
          expect({ xd, n, acc, withinBound: rel <= sumTolerance(n, acc), rel }).toEqual({ xd, n, acc, withinBound: true, rel });
        }
      }
    }
  });

  gpuIt('sumOfSquaresInto: sets or accumulates into out[0], also through a view', async () => {
    const x = randomF32(12345);
    const X = DeviceTensor.fromHost('f32', x);
    const want = sumOfSquaresRef(x, 'f32');
    const out = DeviceTensor.alloc('f64', 3).fill(2.5);
    await cudaKernels.sumOfSquaresInto(out.view(1, 1), X, true);
    await cudaKernels.sumOfSquaresInto(out.view(2, 1), X, false);
    const got = out.download();
    expect(got[0]).toBe(2.5);
    expect(Math.abs(got[1] - (2.5 + want)) / want).toBeLessThanOrEqual(sumTolerance(x.length, 'f64') + 2 ** -52);
    expect(Math.abs(got[2] - want) / want).toBeLessThanOrEqual(sumTolerance(x.length, 'f64'));
  });

  gpuIt('hasNonFinite / checkNonFiniteInto: find inf and NaN anywhere, in every float dtype', async () => {
    for (const dtype of ['f32', 'f64', 'bf16', 'f16'] as const) {
      for (const n of sizes()) {
        const base = dtype === 'f64' ? Float64Array.from(randomF32(n, 1e3)) : randomOf(dtype, n, 1e3);
        const max = dtype === 'f16' ? 0x7bff : dtype === 'bf16' ? 0x7f7f : undefined; // largest finite
        if (max !== undefined) (base as Uint16Array)[int(n)] = max;
        expect(hasNonFiniteRef(base, dtype)).toBe(false);
        expect({ dtype, n, found: await cudaKernels.hasNonFinite(DeviceTensor.fromHost(dtype, base as never)) }).toEqual({ dtype, n, found: false });
        for (const [bad, where] of [[NaN, 0], [Infinity, n - 1], [-Infinity, int(n)]] as const) {
          const x = base.slice();
          if (dtype === 'f32' || dtype === 'f64') x[where] = bad;
          else x[where] = narrow(bad, dtype);
          expect(hasNonFiniteRef(x, dtype)).toBe(true);
          expect({ dtype, n, bad, where, found: await cudaKernels.hasNonFinite(DeviceTensor.fromHost(dtype, x as never)) })
            .toEqual({ dtype, n, bad, where, found: true });
        }
      }
    }
    // One flag over several tensors: accumulate keeps a finding, a fresh check clears it.
    const clean = DeviceTensor.fromHost('f32', randomF32(1000));
    const dirty = DeviceTensor.fromHost('f32', Float32Array.of(1, 2, NaN));
    for (const flagDtype of ['i32', 'f32'] as const) {
      const flag = DeviceTensor.alloc(flagDtype, 1).fill(5);
      await cudaKernels.checkNonFiniteInto(flag, clean);
      expect(Number(flag.download()[0])).toBe(0);
      await cudaKernels.checkNonFiniteInto(flag, dirty, true);
      expect(Number(flag.download()[0])).toBe(1);
      await cudaKernels.checkNonFiniteInto(flag, clean, true);
      expect(Number(flag.download()[0])).toBe(1);
      await cudaKernels.checkNonFiniteInto(flag, clean, false);
      expect(Number(flag.download()[0])).toBe(0);
    }
  });

  gpuIt('return Promises and run in call order on a device: several may be issued before awaiting', async () => {
    const n = 1 << 20;
    const y = DeviceTensor.alloc('f32', n).fill(1);
    const x = DeviceTensor.fromHost('f32', new Float32Array(n).fill(2));
    const calls = [cudaKernels.accumulate(y, x, 1), cudaKernels.scale(y, 10), cudaKernels.accumulate(y, x, 0.5)];
    for (const call of calls) expect(call).toBeInstanceOf(Promise);
    const norm = cudaKernels.sumOfSquares(y);
    await Promise.all(calls);
    // ((1 + 2) * 10 + 1)^2 per element.
    expect(await norm).toBe(31 * 31 * n);
    expect(y.download().every((v) => v === 31)).toBe(true);
  });

  gpuIt('refuse mismatched dtypes, lengths and aliasing by name', async () => {
    const f32 = (n: number) => DeviceTensor.alloc('f32', n).fill(0);
    const inv = 'MICS_INVALID_ARGUMENT';
    expectCode(() => cudaKernels.accumulate(DeviceTensor.alloc('bf16', 4) as never, f32(4)), inv, /^accumulate: y has dtype bf16 but must be f32$/);
    expectCode(() => cudaKernels.accumulate(f32(4), DeviceTensor.alloc('i32', 4) as never), inv, /x has dtype i32 but must be f32, bf16 or f16/);
    expectCode(() => cudaKernels.accumulate(f32(10), f32(11)), inv, /lengths differ: y has 10 elements, x has 11/);
    const y = f32(20);
    expectCode(() => cudaKernels.accumulate(y.view(0, 10), y.view(5, 10)), inv, /y and x partly overlap/);
    expectCode(() => cudaKernels.scale(DeviceTensor.alloc('i32', 4) as never, 2), inv, /x has dtype i32 but must be f32, f64, bf16 or f16/);
    expectCode(() => cudaKernels.scale({} as never, 2), inv, /x must be a DeviceTensor/);
    expectCode(() => cudaKernels.cast(f32(4), f32(4)), inv, /casting f32 to f32 is not supported/);
    expectCode(() => cudaKernels.cast(DeviceTensor.alloc('bf16', 4), f32(5)), inv, /lengths differ: dst has 4 elements, src has 5/);

    const n = 64;
    const ok = { params: f32(n), grads: f32(n), expAvg: f32(n), expAvgSq: f32(n), step: 1 };
    await expect(cudaKernels.adamw(ok)).resolves.toBeUndefined();
    expectCode(() => cudaKernels.adamw({ ...ok, params: DeviceTensor.alloc('f16', n) as never }), inv, /params has dtype f16 but must be f32/);
    expectCode(() => cudaKernels.adamw({ ...ok, grads: DeviceTensor.alloc('f64', n) as never }), inv, /grads has dtype f64 but must be f32, bf16 or f16/);
    expectCode(() => cudaKernels.adamw({ ...ok, expAvg: f32(n + 1) }), inv, /lengths differ: params has 64 elements, expAvg has 65/);
    expectCode(() => cudaKernels.adamw({ ...ok, expAvg: ok.params }), inv, /params and expAvg overlap/);
    expectCode(() => cudaKernels.adamw({ ...ok, halfParams: DeviceTensor.alloc('f32', n) as never }), inv, /halfParams has dtype f32 but must be bf16 or f16/);
    expectCode(() => cudaKernels.adamw({ ...ok, halfParams: DeviceTensor.alloc('bf16', n - 1) }), inv, /lengths differ: params has 64 elements, halfParams has 63/);
    expectCode(() => cudaKernels.adamw({ ...ok, step: undefined as never }), inv, /step is required/);
    expectCode(() => cudaKernels.adamw({ ...ok, step: 0 }), inv, /step = 0 is not valid/);
    expectCode(() => cudaKernels.adamw({ ...ok, beta1: 1 }), inv, /beta1 = 1\.0+ is not valid: need 0 <= beta1 < 1/);
    expectCode(() => cudaKernels.adamw({ ...ok, lr: -1 }), inv, /lr = -1\.0+ is not valid/);

    const sgd = { params: f32(n), grads: f32(n), step: 1, lr: 0.1 };
    await expect(cudaKernels.sgd(sgd)).resolves.toBeUndefined();
    expectCode(() => cudaKernels.sgd({ ...sgd, momentum: 0.9 }), inv, /momentumBuffer is required when momentum != 0/);
    expectCode(() => cudaKernels.sgd({ ...sgd, momentum: 0.9, momentumBuffer: f32(n - 1) }), inv, /lengths differ: params has 64 elements, momentumBuffer has 63/);
    expectCode(() => cudaKernels.sgd({ ...sgd, momentum: 0.9, dampening: 0.1, nesterov: true, momentumBuffer: f32(n) }), inv, /nesterov momentum requires a momentum > 0 and zero dampening/);
    expectCode(() => cudaKernels.sgd({ ...sgd, grads: DeviceTensor.alloc('u8', n) as never }), inv, /grads has dtype u8 but must be f32, bf16 or f16/);

    expectCode(() => cudaKernels.sumOfSquares(DeviceTensor.alloc('i32', 4) as never), inv, /x has dtype i32 but must be f32, bf16 or f16/);
    expectCode(() => cudaKernels.sumOfSquares(f32(4), 'f16' as never), inv, /dtype f16 is not valid: use f32 or f64/);
    expectCode(() => cudaKernels.sumOfSquaresInto(DeviceTensor.alloc('f64', 0), f32(4)), inv, /out has 0 elements but needs at least 1/);
    expectCode(() => cudaKernels.checkNonFiniteInto(DeviceTensor.alloc('u8', 1) as never, f32(4)), inv, /flag has dtype u8 but must be i32 or f32/);
  });
});
