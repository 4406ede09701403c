/**
 * hostKernels, the CPU kernels (csrc/kernels), against the f32 reference that the
 * CUDA kernels also match (lib/cuda/reference.ts), on fresh random inputs of odd
 * lengths (so the vector loops' tails run) and on views at odd offsets.
 *
 * Tolerances. accumulate, scale, cast, AdamW and SGD must match the reference bit for
 * bit: the addon is compiled with -ffp-contract=off and uses only correctly rounded
 * f32 operations (+ - * / sqrt), and the reference rounds every operation to f32 with
 * Math.fround. Only NaN payloads may differ (both must be NaN). sumOfSquares adds in
 * its own order: each square is exact in double, blocks of 1024 are summed in 8 lanes
 * of 128 terms, and the block sums with Neumaier compensation; the terms are
 * non-negative, so its relative error is below (127 + 7 + 3) 2^-53 < 2^-45.9; the
 * reference's own error is about 2^-52, so the test allows 2^-45.
 */
import { randomInt } from 'node:crypto';
import { fromBFloat16Bits, fromFloat16Bits, toBFloat16Bits, toFloat16Bits } from '../../lib/core/dtypes';
import { MicsError } from '../../lib/core/errors';
import { loadAddon, type NativeHostKernels } from '../../lib/core/native';
import {
  accumulateRef, adamwRef, type AdamWHyper, type FloatDTypeName, type HalfDTypeName, hasNonFiniteRef, narrow, scaleRef,
  sgdRef, type SgdHyper, sumOfSquaresRef,
} from '../../lib/cuda/reference';
import { type FloatDType, hostKernels, type HostTensorOf } from '../../lib/kernels/host';
import { mulberry32 } from '../helpers/random';

// Fresh inputs on every run; MICS_TEST_SEED=<n> replays a failing one.
const seed = process.env.MICS_TEST_SEED ? Number(process.env.MICS_TEST_SEED) : randomInt(2 ** 31);
console.log(`host kernel tests: seed ${seed} (MICS_TEST_SEED=${seed} replays)`);

// Module-level bindings: global lookups inside hot loops are slow in jest's vm context.
const { floor, sqrt, log, cos, PI, abs } = Math;
const { is } = Object;
const { isNaN } = Number;

const rand = mulberry32(seed);
const int = (n: number) => floor(rand() * n);
const odd = (lo: number, span: number) => lo + 2 * int(span) + 1;

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

// Odd lengths: a single element, less than one vector, across the 512-element blocks
// of the optimizers and the 1024 / 4096 blocks of sumOfSquares / hasNonFinite.
const sizes = () => [1, 7, odd(0, 1500), odd(9000, 3000)];

/** Exact f32/f64 equality (signed zeros too); NaN matches any NaN. */
function expectSameFloat(actual: Float32Array | Float64Array, expected: Float32Array | Float64Array, what: string): void {
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

/** The rejection of `promise` (fails the test if it resolves). */
async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => {
      throw new Error('expected a rejection, but the promise resolved');
    },
    (e: unknown) => e as Error & { code?: string },
  );
}

/** Rejects with a MicsError of `code` whose message matches. */
async function expectRejects(promise: Promise<unknown>, message: RegExp, code = 'MICS_INVALID_ARGUMENT'): Promise<void> {
  const error = await rejectionOf(promise);
  expect({ isMicsError: error instanceof MicsError, code: error.code, message: error.message }).toEqual({
    isMicsError: true,
    code,
    message: expect.stringMatching(message),
  });
}

/**
 * A parent array of n + 2 pad elements filled with a sentinel, and the view of its
 * middle n elements (offset `pad`, odd when pad is): the kernel must touch only the view.
 */
function padded<D extends FloatDTypeName>(dtype: D, values: Float32Array | Uint16Array, pad: number) {
  const n = values.length;
  const parent = dtype === 'f32' ? new Float32Array(n + 2 * pad) : new Uint16Array(n + 2 * pad);
  const sentinel = dtype === 'f32' ? 7 : narrow(7, dtype as HalfDTypeName);
  parent.fill(sentinel);
  parent.set(values, pad);
  const view = { data: parent, dtype, offset: pad, length: n } as unknown as HostTensorOf<D>;
  return {
    view,
    values: () => parent.slice(pad, pad + n),
    padding: () => [...parent.subarray(0, pad), ...parent.subarray(pad + n)],
    sentinels: new Array<number>(2 * pad).fill(sentinel),
  };
}

const floatDtypes: FloatDTypeName[] = ['f32', 'bf16', 'f16'];

describe('hostKernels against the f32 reference (bit for bit)', () => {
  it('accumulate: y += alpha * x for f32, bf16 and f16 x, on odd-offset views, and in place', async () => {
    for (const xd of floatDtypes) {
      for (const n of sizes()) {
        const y = randomF32(n, 10);
        const x = randomOf(xd, n, 10);
        const alpha = (rand() - 0.5) * 4;
        const Y = padded('f32', y, 3);
        await hostKernels.accumulate(Y.view, { data: x, dtype: xd } as HostTensorOf<FloatDType>, alpha);
        expectSameFloat(Y.values() as Float32Array, accumulateRef(y, x, xd, alpha), `accumulate ${xd} n=${n}`);
        expect(Y.padding()).toEqual(Y.sentinels);
      }
    }
    // x is y itself; the default alpha is 1.
    const y = randomF32(5001, 3);
    const same = y.slice();
    await hostKernels.accumulate(same, same);
    expectSameFloat(same, accumulateRef(y, y, 'f32', 1), 'accumulate in place');
  });

  it('scale: x *= alpha for f32, f64, bf16 and f16 (halves computed in f32)', async () => {
    for (const dtype of ['f32', 'f64', 'bf16', 'f16'] as const) {
      for (const n of sizes()) {
        const alpha = (rand() - 0.5) * 8;
        const f = randomF32(n, 100);
        const host =
          dtype === 'f64' ? Float64Array.from(f, (v) => v * (1 + rand())) : dtype === 'f32' ? f : Uint16Array.from(f, (v) => narrow(v, dtype));
        const want = scaleRef(host, dtype, alpha);
        const x = host.slice();
        await hostKernels.scale({ data: x, dtype } as HostTensorOf<'f32'>, alpha);
        if (dtype === 'bf16' || dtype === 'f16') expectSameHalf(x as Uint16Array, want as Uint16Array, dtype, `scale ${dtype} n=${n}`);
        else expectSameFloat(x as Float32Array, want as Float32Array, `scale ${dtype} n=${n}`);
      }
    }
  });

  it('cast: bf16/f16 -> f32 exactly for all 65536 bit patterns', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const dtype of ['bf16', 'f16'] as const) {
      const out = new Float32Array(all.length);
      await hostKernels.cast(out, { data: all, dtype });
      const widen = dtype === 'bf16' ? fromBFloat16Bits : fromFloat16Bits;
      expectSameFloat(out, Float32Array.from(all, (b) => widen(b)), `cast ${dtype} -> f32`);
    }
  });

  it('cast: f32 -> bf16/f16 rounds to nearest even (every tie, random bits, subnormals, overflow, NaN, inf)', async () => {
    // For every half value h: h itself, the midpoint to the next value (a tie), and the
    // floats just below and above the midpoint, as f32.
    const points: number[] = [];
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (const dtype of ['bf16', 'f16'] as const) {
      const widen = dtype === 'bf16' ? fromBFloat16Bits : fromFloat16Bits;
      for (let h = 0; h < 0x10000; h++) {
        const a = widen(h);
        const b = widen((h & 0x7fff) === 0x7fff ? h : h + 1);
        if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
        f[0] = (a + b) / 2; // exact in f32 for both types
        const mid = u[0];
        for (const bits of [mid - 1, mid, mid + 1]) {
          u[0] = bits;
          points.push(f[0]);
        }
        points.push(a);
      }
    }
    const specials = [
      0, -0, Infinity, -Infinity, NaN, 65504, 65519, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14,
      1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.4028234663852886e38, 1e-45, -1e-40,
    ];
    const random = new Uint32Array(1 << 17);
    for (let i = 0; i < random.length; i++) random[i] = floor(rand() * 2 ** 32);
    const src = new Float32Array(specials.length + points.length + random.length);
    src.set(specials);
    src.set(points, specials.length);
    src.set(new Float32Array(random.buffer), specials.length + points.length);
    for (const dtype of ['bf16', 'f16'] as const) {
      const out = new Uint16Array(src.length);
      await hostKernels.cast({ data: out, dtype }, src);
      const narrowBits = dtype === 'bf16' ? toBFloat16Bits : toFloat16Bits;
      expectSameHalf(out, Uint16Array.from(src, (v) => narrowBits(v)), dtype, `cast f32 -> ${dtype}`);
    }
  });

  interface AdamWCase {
    name: string;
    gradsDtype: FloatDTypeName;
    halfDtype?: HalfDTypeName;
    hyper: Omit<AdamWHyper, 'step'>;
    firstStep: number;
    zeroState: boolean;
  }
  const adamwCases: AdamWCase[] = [
    { name: 'PyTorch defaults, f32 grads, from zero state', gradsDtype: 'f32', hyper: {}, firstStep: 1, zeroState: true },
    { name: 'bf16 grads and bf16 copy, no decay, grad scale, mid-training state', gradsDtype: 'bf16', halfDtype: 'bf16', hyper: { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0, gradScale: 0.25 }, firstStep: 1000, zeroState: false },
    { name: 'f16 grads and f16 copy, beta1 < 0.5 (the other lerp branch)', gradsDtype: 'f16', halfDtype: 'f16', hyper: { lr: 0.05, beta1: 0.3, beta2: 0.5, eps: 1e-3, weightDecay: 0.1 }, firstStep: 3, zeroState: false },
    { name: 'f32 grads, f16 copy, grad scale and decay', gradsDtype: 'f32', halfDtype: 'f16', hyper: { lr: 1e-2, weightDecay: 0.05, gradScale: 1 / 1024 }, firstStep: 1, zeroState: true },
  ];

  it.each(adamwCases)('adamw: $name (3 steps, on odd-offset views)', async (c) => {
    for (const n of sizes()) {
      let state = {
        params: randomF32(n),
        expAvg: c.zeroState ? new Float32Array(n) : randomF32(n, 0.01),
        expAvgSq: c.zeroState ? new Float32Array(n) : randomF32(n, 1e-3).map((v) => v * v),
      };
      const P = padded('f32', state.params, 5);
      const M = padded('f32', state.expAvg, 1);
      const V = padded('f32', state.expAvgSq, 3);
      const H = c.halfDtype ? padded(c.halfDtype, new Uint16Array(n), 7) : undefined;
      for (let step = c.firstStep; step < c.firstStep + 3; step++) {
        const grads = randomOf(c.gradsDtype, n, 0.1);
        const G = padded(c.gradsDtype, grads, 1);
        await hostKernels.adamw({ params: P.view, grads: G.view, expAvg: M.view, expAvgSq: V.view, halfParams: H?.view as never, ...c.hyper, step });
        const want = adamwRef({ ...state, grads, gradsDtype: c.gradsDtype }, { ...c.hyper, step }, c.halfDtype);
        const what = `adamw n=${n} step=${step}`;
        expectSameFloat(P.values() as Float32Array, want.params, `${what} params`);
        expectSameFloat(M.values() as Float32Array, want.expAvg, `${what} expAvg`);
        expectSameFloat(V.values() as Float32Array, want.expAvgSq, `${what} expAvgSq`);
        if (H && c.halfDtype && want.half) expectSameHalf(H.values() as Uint16Array, want.half, c.halfDtype, `${what} halfParams`);
        expect(G.values()).toEqual(grads); // grads are read only
        state = want;
      }
      for (const t of [P, M, V, ...(H ? [H] : [])]) expect(t.padding()).toEqual(t.sentinels);
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
    { name: 'momentum, f16 grads, bf16 copy', gradsDtype: 'f16', halfDtype: 'bf16', hyper: { lr: 0.2, momentum: 0.5 } },
  ];

  it.each(sgdCases)('sgd: $name (steps 1 to 3, on odd-offset views)', async (c) => {
    for (const n of sizes()) {
      let state: { params: Float32Array; momentumBuffer?: Float32Array } = { params: randomF32(n) };
      const P = padded('f32', state.params, 3);
      // Garbage in the buffer: step 1 must overwrite it, not read it.
      const B = c.hyper.momentum ? padded('f32', new Float32Array(n).fill(NaN), 1) : undefined;
      const H = c.halfDtype ? padded(c.halfDtype, new Uint16Array(n), 5) : undefined;
      for (let step = 1; step <= 3; step++) {
        const grads = randomOf(c.gradsDtype, n, 0.1);
        const G = padded(c.gradsDtype, grads, 3);
        await hostKernels.sgd({ params: P.view, grads: G.view, momentumBuffer: B?.view, halfParams: H?.view as never, ...c.hyper, step });
        const want = sgdRef({ ...state, grads, gradsDtype: c.gradsDtype }, { ...c.hyper, step }, c.halfDtype);
        const what = `sgd n=${n} step=${step}`;
        expectSameFloat(P.values() as Float32Array, want.params, `${what} params`);
        if (B && want.momentumBuffer) expectSameFloat(B.values() as Float32Array, want.momentumBuffer, `${what} momentumBuffer`);
        if (H && c.halfDtype && want.half) expectSameHalf(H.values() as Uint16Array, want.half, c.halfDtype, `${what} halfParams`);
        state = want;
      }
      for (const t of [P, ...(B ? [B] : []), ...(H ? [H] : [])]) expect(t.padding()).toEqual(t.sentinels);
    }
  });
});

describe('hostKernels reductions and checks', () => {
  it('sumOfSquares: f32, bf16 and f16, within 2^-45 of the compensated reference, the same for a view', async () => {
    for (const xd of floatDtypes) {
      for (const n of [...sizes(), odd(100000, 50000)]) {
        const x = randomOf(xd, n, 2);
        const want = sumOfSquaresRef(x, xd);
        const got = await hostKernels.sumOfSquares({ data: x, dtype: xd } as HostTensorOf<FloatDType>);
        const rel = want === 0 ? (got === 0 ? 0 : Infinity) : abs(got - want) / want;
        expect({ xd, n, withinBound: rel <= 2 ** -45, rel }).toEqual({ xd, n, withinBound: true, rel });
      }
    }
    const x = randomF32(3001);
    const parent = new Float32Array(3004).fill(1e6);
    parent.set(x, 3);
    expect(await hostKernels.sumOfSquares({ data: parent, offset: 3, length: 3001 })).toBe(await hostKernels.sumOfSquares(x));
    expect(await hostKernels.sumOfSquares(new Float32Array(0))).toBe(0);
  });

  it('hasNonFinite: finds one NaN or inf anywhere (first, last, random, in a later block) in every float dtype', async () => {
    for (const dtype of ['f32', 'f64', 'bf16', 'f16'] as const) {
      for (const n of [...sizes(), odd(3 * 4096, 2000)]) {
        const base = dtype === 'f64' ? Float64Array.from(randomF32(n, 1e3)) : randomOf(dtype, n, 1e3);
        const max = dtype === 'f16' ? 0x7bff : dtype === 'bf16' ? 0x7f7f : dtype === 'f32' ? 3.4028234663852886e38 : Number.MAX_VALUE;
        base[int(n)] = max; // the largest finite value is finite
        const view = (x: typeof base) => ({ data: x, dtype }) as HostTensorOf<'f32'>;
        expect(hasNonFiniteRef(base, dtype)).toBe(false);
        expect({ dtype, n, found: await hostKernels.hasNonFinite(view(base)) }).toEqual({ dtype, n, found: false });
        const places = [0, n - 1, int(n), ...(n > 4096 ? [4096 + int(n - 4096)] : [])];
        for (const [bad, where] of places.map((p, i) => [[NaN, Infinity, -Infinity][i % 3], p] as const)) {
          const x = base.slice();
          x[where] = dtype === 'f32' || dtype === 'f64' ? bad : narrow(bad, dtype);
          expect(hasNonFiniteRef(x, dtype)).toBe(true);
          expect({ dtype, n, bad, where, found: await hostKernels.hasNonFinite(view(x)) }).toEqual({ dtype, n, bad, where, found: true });
        }
      }
    }
  });

  it('checksum: XXH64 (seed 0) of the bytes, matching the xxHash test vectors', async () => {
    // xxHash's sanity buffer: bytes of a 64-bit multiplicative sequence (its tests' generator).
    const sanity = new Uint8Array(222);
    let gen = 2654435761n;
    for (let i = 0; i < sanity.length; i++) {
      sanity[i] = Number(gen >> 56n);
      gen = (gen * 11400714785074694797n) & 0xffffffffffffffffn;
    }
    expect(await hostKernels.checksum(new Uint8Array(0))).toBe('ef46db3751d8e999');
    expect(await hostKernels.checksum(sanity.subarray(0, 1))).toBe('e934a84adb052768');
    expect(await hostKernels.checksum(sanity.subarray(0, 4))).toBe('9136a0dca57457ee');
    expect(await hostKernels.checksum(sanity.subarray(0, 14))).toBe('8282dcc4994e35c8');
    expect(await hostKernels.checksum(sanity)).toBe('b641ae8cb691c174');
    expect(await hostKernels.checksum(new TextEncoder().encode('abc'))).toBe('44bc2cf5ad770999');
  });

  it('checksum: equal for equal bytes (any view of them), different when one bit differs', async () => {
    const n = odd(20000, 5000);
    const params = randomF32(n);
    const sum = await hostKernels.checksum(params);
    expect(sum).toMatch(/^[0-9a-f]{16}$/);
    // The same bytes through another array type, a DataView, and an odd-offset view.
    expect(await hostKernels.checksum(new Uint8Array(params.buffer))).toBe(sum);
    expect(await hostKernels.checksum(new DataView(params.buffer))).toBe(sum);
    const parent = new Float32Array(n + 6);
    parent.set(params, 3);
    expect(await hostKernels.checksum({ data: parent, offset: 3, length: n })).toBe(sum);
    const bits = new Uint16Array(params.buffer);
    expect(await hostKernels.checksum({ data: bits, dtype: 'bf16' })).toBe(sum);
    // One bit flipped: first byte, last byte (in the tail after the 32-byte stripes), anywhere.
    const bytes = new Uint8Array(params.buffer);
    for (const [at, bit] of [[0, 0], [bytes.length - 1, 7], [int(bytes.length), int(8)], [bytes.length - 33, 3]]) {
      const copy = bytes.slice();
      copy[at] ^= 1 << bit;
      expect({ at, bit, differs: (await hostKernels.checksum(copy)) !== sum }).toEqual({ at, bit, differs: true });
    }
    // Every length from 0 to 64 (each tail path), and one more byte always changes it.
    const seen = new Set<string>();
    for (let len = 0; len <= 64; len++) seen.add(await hostKernels.checksum(bytes.subarray(0, len)));
    expect(seen.size).toBe(65);
  });
});

describe('hostKernels run off the JS thread', () => {
  it('every kernel settles from the event loop, never within the calling task', async () => {
    const f = (n: number) => randomF32(n);
    const half = (n: number) => ({ data: new Uint16Array(n), dtype: 'bf16' as const });
    const n = 1001;
    const calls: [string, () => Promise<unknown>][] = [
      ['accumulate', () => hostKernels.accumulate(f(n), f(n))],
      ['scale', () => hostKernels.scale(f(n), 2)],
      ['cast', () => hostKernels.cast(half(n), f(n))],
      ['adamw', () => hostKernels.adamw({ params: f(n), grads: f(n), expAvg: f(n), expAvgSq: f(n), step: 1 })],
      ['sgd', () => hostKernels.sgd({ params: f(n), grads: f(n), step: 1 })],
      ['sumOfSquares', () => hostKernels.sumOfSquares(f(n))],
      ['hasNonFinite', () => hostKernels.hasNonFinite(f(n))],
      ['checksum', () => hostKernels.checksum(f(n))],
    ];
    for (const [name, call] of calls) {
      let settled = false;
      const promise = call().finally(() => {
        settled = true;
      });
      // Drain the microtask queue: a result computed on the JS thread would settle here;
      // one from the thread pool arrives only through a later event-loop callback.
      for (let i = 0; i < 20; i++) await Promise.resolve();
      expect({ name, settledWithinTask: settled }).toEqual({ name, settledWithinTask: false });
      await promise;
      expect({ name, settled }).toEqual({ name, settled: true });
    }
  });

  it('the JS thread keeps running (setImmediate fires) while a large AdamW runs', async () => {
    const n = 1 << 22; // 4M elements: several milliseconds on any CPU
    const p = new Float32Array(n).fill(1);
    const g = new Float32Array(n).fill(0.5);
    const args = { params: p, grads: g, expAvg: new Float32Array(n), expAvgSq: new Float32Array(n), halfParams: { data: new Uint16Array(n), dtype: 'bf16' as const }, step: 1 };
    let ticks = 0;
    let done = false;
    const tick = (): void => {
      if (done) return;
      ticks++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const ticksBeforeSettle = await hostKernels.adamw(args).then(() => ticks);
    done = true;
    expect(ticksBeforeSettle).toBeGreaterThan(0);
    const want = adamwRef({ params: p.subarray(0, 1).fill(1), grads: g.subarray(0, 1), gradsDtype: 'f32', expAvg: new Float32Array(1), expAvgSq: new Float32Array(1) }, { step: 1 });
    expect(args.expAvg[n - 1]).toBe(want.expAvg[0]);
  });
});

describe('hostKernels refuse bad arguments by name (MICS_INVALID_ARGUMENT)', () => {
  const f32 = (n: number) => new Float32Array(n);
  const bf16 = (n: number) => ({ data: new Uint16Array(n), dtype: 'bf16' as const });

  it('dtypes, lengths and aliasing', async () => {
    await expectRejects(hostKernels.accumulate({ data: new Uint16Array(4), dtype: 'bf16' } as never, f32(4)), /^accumulate: y has dtype bf16 but must be f32$/);
    await expectRejects(hostKernels.accumulate(f32(4), new Int32Array(4) as never), /accumulate: x has dtype i32 but must be f32, bf16 or f16/);
    await expectRejects(hostKernels.accumulate(f32(10), f32(11)), /accumulate: lengths differ: y has 10 elements, x has 11/);
    const y = f32(20);
    await expectRejects(hostKernels.accumulate(y.subarray(0, 10), y.subarray(5, 15)), /accumulate: y and x partly overlap/);
    await expectRejects(hostKernels.accumulate(y.subarray(0, 10), { data: new Uint16Array(y.buffer, 0, 10), dtype: 'bf16' }), /y and x partly overlap/);
    await expectRejects(hostKernels.accumulate(f32(4), new Uint16Array(4) as never), /accumulate: x: a Uint16Array needs an explicit dtype/);
    await expectRejects(hostKernels.accumulate(f32(4), f32(4), 'x' as never), /accumulate: alpha must be a number/);
    await expectRejects(hostKernels.scale(new Int32Array(4) as never, 2), /scale: x has dtype i32 but must be f32, f64, bf16 or f16/);
    await expectRejects(hostKernels.scale(f32(4), undefined as never), /scale: alpha must be a number/);
    await expectRejects(hostKernels.scale({} as never, 2), /scale: x must be a TypedArray/);
    await expectRejects(hostKernels.cast(f32(4), f32(4)), /cast: casting f32 to f32 is not supported/);
    await expectRejects(hostKernels.cast(bf16(4), f32(5)), /cast: lengths differ: dst has 4 elements, src has 5/);
    const shared = new Float32Array(8);
    await expectRejects(hostKernels.cast({ data: new Uint16Array(shared.buffer, 0, 8), dtype: 'f16' }, shared), /cast: dst and src overlap/);
    await expectRejects(hostKernels.sumOfSquares(new Float64Array(4) as never), /sumOfSquares: x has dtype f64 but must be f32, bf16 or f16/);
    await expectRejects(hostKernels.hasNonFinite(new Uint8Array(4) as never), /hasNonFinite: x has dtype u8 but must be f32, f64, bf16 or f16/);
    await expectRejects(hostKernels.checksum(42 as never), /checksum: x must be a TypedArray/);
  });

  it('optimizer tensors and hyper-parameters', async () => {
    const n = 64;
    const ok = { params: f32(n), grads: f32(n), expAvg: f32(n), expAvgSq: f32(n), step: 1 };
    await expect(hostKernels.adamw(ok)).resolves.toBeUndefined();
    await expectRejects(hostKernels.adamw({ ...ok, params: { data: new Uint16Array(n), dtype: 'f16' } as never }), /adamw: params has dtype f16 but must be f32/);
    await expectRejects(hostKernels.adamw({ ...ok, grads: new Float64Array(n) as never }), /adamw: grads has dtype f64 but must be f32, bf16 or f16/);
    await expectRejects(hostKernels.adamw({ ...ok, expAvg: f32(n + 1) }), /adamw: lengths differ: params has 64 elements, expAvg has 65/);
    await expectRejects(hostKernels.adamw({ ...ok, expAvg: ok.params }), /adamw: params and expAvg overlap/);
    await expectRejects(hostKernels.adamw({ ...ok, expAvgSq: undefined as never }), /adamw: expAvgSq must be a TypedArray/);
    await expectRejects(hostKernels.adamw({ ...ok, halfParams: { data: f32(n), dtype: 'f32' } as never }), /adamw: halfParams has dtype f32 but must be bf16 or f16/);
    await expectRejects(hostKernels.adamw({ ...ok, halfParams: bf16(n - 1) }), /adamw: lengths differ: params has 64 elements, halfParams has 63/);
    await expectRejects(hostKernels.adamw({ ...ok, halfParams: { data: new Uint16Array(ok.grads.buffer), dtype: 'bf16', length: n } }), /adamw: halfParams and grads overlap/);
    await expectRejects(hostKernels.adamw({ ...ok, step: undefined as never }), /adamw: step is required/);
    await expectRejects(hostKernels.adamw({ ...ok, step: 0 }), /adamw: step = 0 is not valid/);
    await expectRejects(hostKernels.adamw({ ...ok, step: 1.5 }), /adamw: step = 1.5 is not valid/);
    await expectRejects(hostKernels.adamw({ ...ok, beta1: 1 }), /adamw: beta1 = 1\.0+ is not valid: need 0 <= beta1 < 1/);
    await expectRejects(hostKernels.adamw({ ...ok, lr: -1 }), /adamw: lr = -1\.0+ is not valid/);
    await expectRejects(hostKernels.adamw({ ...ok, eps: NaN }), /adamw: eps = nan is not valid/);
    await expectRejects(hostKernels.adamw({ ...ok, gradScale: Infinity }), /adamw: gradScale = inf is not finite/);
    await expectRejects(hostKernels.adamw({ ...ok, weightDecay: '0.1' as never }), /adamw: weightDecay must be a number/);
    await expectRejects(hostKernels.adamw(undefined as never), /^adamw: an options object is required/);
    await expectRejects(hostKernels.sgd(null as never), /^sgd: an options object is required/);

    const sgd = { params: f32(n), grads: f32(n), step: 1, lr: 0.1 };
    await expect(hostKernels.sgd(sgd)).resolves.toBeUndefined();
    await expectRejects(hostKernels.sgd({ ...sgd, momentum: 0.9 }), /sgd: momentumBuffer is required when momentum != 0/);
    await expectRejects(hostKernels.sgd({ ...sgd, momentum: 0.9, momentumBuffer: f32(n - 1) }), /sgd: lengths differ: params has 64 elements, momentumBuffer has 63/);
    await expectRejects(hostKernels.sgd({ ...sgd, momentum: 0.9, momentumBuffer: sgd.grads }), /sgd: momentumBuffer and grads overlap/);
    await expectRejects(hostKernels.sgd({ ...sgd, momentum: 0.9, dampening: 0.1, nesterov: true, momentumBuffer: f32(n) }), /sgd: nesterov momentum requires a momentum > 0 and zero dampening/);
    await expectRejects(hostKernels.sgd({ ...sgd, grads: new Uint8Array(n) as never }), /sgd: grads has dtype u8 but must be f32, bf16 or f16/);
    await expectRejects(hostKernels.sgd({ ...sgd, momentum: -0.5 }), /sgd: momentum = -0\.50+ is not valid/);
  });

  it('memory a kernel cannot hold on to: SharedArrayBuffer, detached and resizable buffers (also straight to the addon)', async () => {
    const sab = new Float32Array(new SharedArrayBuffer(16));
    const detachedBuffer = new ArrayBuffer(16);
    const detached = new Float32Array(detachedBuffer);
    structuredClone(detachedBuffer, { transfer: [detachedBuffer] });
    // Node 20 has resizable ArrayBuffers; TypeScript's lib for it does not declare the option.
    const Resizable = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ArrayBuffer;
    const resizable = new Float32Array(new Resizable(16, { maxByteLength: 64 }));
    await expectRejects(hostKernels.scale(sab, 2), /scale: x: a TypedArray over a SharedArrayBuffer is not supported/);
    await expectRejects(hostKernels.accumulate(f32(4), sab), /accumulate: x: a TypedArray over a SharedArrayBuffer/);
    await expectRejects(hostKernels.scale(detached, 2), /scale: x: the TypedArray's ArrayBuffer is detached/);
    await expectRejects(hostKernels.scale(resizable, 2), /scale: x: a TypedArray over a resizable ArrayBuffer/);
    await expectRejects(hostKernels.checksum(sab), /checksum: x: a TypedArray over a SharedArrayBuffer/);
    await expectRejects(hostKernels.checksum(detached), /checksum: x: the TypedArray's ArrayBuffer is detached/);
    await expectRejects(hostKernels.checksum(new DataView(new SharedArrayBuffer(8))), /checksum: x: a TypedArray over a SharedArrayBuffer/);

    // The addon checks on its own too (no crash, a coded rejection), for callers that bypass lib/.
    const native = loadAddon().addon.hostKernels as NativeHostKernels;
    const code = async (promise: Promise<unknown>, message: RegExp) => {
      const error = await rejectionOf(promise);
      expect({ code: error.code, message: error.message }).toEqual({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(message) });
    };
    await code(native.scale({ data: sab, dtype: 'f32' }, 2), /scale: x: a TypedArray over a SharedArrayBuffer/);
    await code(native.scale({ data: detached, dtype: 'f32' }, 2), /scale: x: the TypedArray's ArrayBuffer is detached/);
    await code(native.scale({ data: resizable, dtype: 'f32' }, 2), /scale: x: a TypedArray over a resizable ArrayBuffer/);
    await code(native.scale({ data: new Float32Array(4), dtype: 'bf16' }, 2), /scale: x is a Float32Array but a bf16 tensor needs a Uint16Array/);
    await code(native.scale({ data: [1, 2] as never, dtype: 'f32' }, 2), /scale: x: data must be a Float32Array/);
    await code(native.scale({ data: new Float32Array(4), dtype: 'q8' as never }, 2), /dtype 'q8'|q8/);
    await code(native.scale(undefined as never, 2), /scale: x is required/);
    await code(native.adamw(7 as never), /adamw: an options object is required/);
    await code(native.checksum('bytes' as never), /checksum: x must be a TypedArray or DataView/);
  });
});
