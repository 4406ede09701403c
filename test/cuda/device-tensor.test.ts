/**
 * DeviceTensor on a GPU: allocation, upload/download of every dtype (also as
 * Promises), zero-copy views, fill, device-to-device copy, release, and the error paths (mismatched dtypes and
 * lengths, bad ranges, wrong host arrays). Needs the CMake build with CUDA and a
 * device; elsewhere every case is skipped with the reason printed (fails with
 * MICS_REQUIRE_GPU=1).
 */
import { randomInt } from 'node:crypto';
import { toBFloat16Bits, toFloat16Bits, type HostArrayTypes as HostArrayOf } from '../../lib/core/dtypes';
import { cudaAvailable, cudaKernels, cudaTotalMemory, DeviceTensor } from '../../lib/cuda/device-tensor';
import { mulberry32 } from '../helpers/random';
import { gpuTest } from '../helpers/require-gpu';

const avail = cudaAvailable();
const gpuIt = gpuTest(avail.ok, avail.reason, 'the GPU DeviceTensor tests');

// Fresh inputs on every run; MICS_TEST_SEED=<n> replays a failing one.
const seed = process.env.MICS_TEST_SEED ? Number(process.env.MICS_TEST_SEED) : randomInt(2 ** 31);
if (avail.ok) console.log(`GPU DeviceTensor tests on ${avail.reason}; seed ${seed} (MICS_TEST_SEED=${seed} replays)`);

// Module-level bindings: global lookups inside hot loops are slow in jest's vm context.
const { floor } = Math;

const rand = mulberry32(seed);

type AnyHost = HostArrayOf[keyof HostArrayOf];

function randomHost<D extends keyof HostArrayOf>(dtype: D, n: number): HostArrayOf[D] {
  const u32 = () => floor(rand() * 2 ** 32);
  let out: AnyHost;
  switch (dtype) {
    case 'f32': out = Float32Array.from({ length: n }, () => (rand() - 0.5) * 100); break;
    case 'f64': out = Float64Array.from({ length: n }, () => (rand() - 0.5) * 1e6); break;
    case 'f16':
    case 'bf16': out = Uint16Array.from({ length: n }, () => u32() & 0xffff); break;
    case 'i8': out = Int8Array.from({ length: n }, () => (u32() & 0xff) - 128); break;
    case 'u8': out = Uint8Array.from({ length: n }, () => u32() & 0xff); break;
    case 'i32': out = Int32Array.from({ length: n }, () => u32() | 0); break;
    default: out = BigInt64Array.from({ length: n }, () => BigInt.asIntN(64, (BigInt(u32()) << 32n) | BigInt(u32()))); break;
  }
  return out as HostArrayOf[D];
}

/** Byte-wise equality (NaN payloads included: these are plain copies). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let error: (Error & { code?: string }) | undefined;
  try {
    fn();
  } catch (e) {
    error = e as Error & { code?: string };
  }
  expect(error).toBeDefined();
  expect({ code: error?.code, message: error?.message }).toEqual({ code, message: message ? expect.stringMatching(message) : expect.any(String) });
}

const allDtypes = ['f32', 'f64', 'f16', 'bf16', 'i8', 'u8', 'i32', 'i64'] as const;
const elemBytes = { f32: 4, f64: 8, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4, i64: 8 } as const;

describe('DeviceTensor (GPU)', () => {
  gpuIt("cudaTotalMemory is the device's memory (what partitionSize 'auto' plans with), and names a bad device", () => {
    const total = cudaTotalMemory(0);
    expect(total).toBeGreaterThan(2 ** 30);
    expect(cudaTotalMemory()).toBe(total); // the current device is 0 here
    expect(() => cudaTotalMemory(1 << 20)).toThrow(/device 1048576 is not valid: this process sees \d+ CUDA device/);
  });

  gpuIt('allocates every dtype and describes itself', () => {
    for (const dtype of allDtypes) {
      const t = DeviceTensor.alloc(dtype, 1001, 0);
      expect({ dtype: t.dtype, length: t.length, byteLength: t.byteLength, device: t.device, offset: t.offset, released: t.released })
        .toEqual({ dtype, length: 1001, byteLength: 1001 * elemBytes[dtype], device: 0, offset: 0, released: false });
      expect(t.toString()).toBe(`DeviceTensor ${dtype}[1001] on cuda:0`);
      t.release();
      expect(t.released).toBe(true);
    }
    expect(DeviceTensor.alloc('f32', 3).device).toBe(0); // the current device by default
  });

  gpuIt('round-trips every dtype through upload and download, bit for bit', () => {
    for (const dtype of allDtypes) {
      const n = 1 + randomInt(5000);
      const host = randomHost(dtype, n);
      const t = DeviceTensor.fromHost(dtype, host);
      const fresh = t.download();
      expect(fresh.constructor).toBe(host.constructor);
      expect(sameBytes(fresh, host)).toBe(true);
      // Into a caller's array: the same object comes back.
      const target = randomHost(dtype, n);
      expect(t.download(target)).toBe(target);
      expect(sameBytes(target, host)).toBe(true);
    }
  });

  gpuIt('handles empty tensors', async () => {
    const t = DeviceTensor.alloc('f32', 0);
    t.upload(new Float32Array(0)).fill(1);
    expect(t.download()).toEqual(new Float32Array(0));
    expect(t.view(0, 0).length).toBe(0);
    expect(await cudaKernels.sumOfSquares(t)).toBe(0);
    expect(await cudaKernels.hasNonFinite(t)).toBe(false);
    await t.uploadAsync(new Float32Array(0));
    expect(await t.downloadAsync()).toEqual(new Float32Array(0));
  });

  gpuIt('has Promise forms of upload, download, fill and copyFrom that settle once the data is in place', async () => {
    for (const dtype of allDtypes) {
      const n = 1 + randomInt(300000);
      const host = randomHost(dtype, n);
      const t = DeviceTensor.alloc(dtype, n);
      const uploading = t.uploadAsync(host);
      expect(uploading).toBeInstanceOf(Promise);
      expect(await uploading).toBe(t);
      expect(sameBytes(await t.downloadAsync(), host)).toBe(true);
      const target = randomHost(dtype, n);
      expect(await t.downloadAsync(target)).toBe(target);
      expect(sameBytes(target, host)).toBe(true);
      const copy = DeviceTensor.alloc(dtype, n);
      expect(await copy.copyFromAsync(t)).toBe(copy);
      expect(sameBytes(copy.download(), host)).toBe(true);
    }
    // Ordered after the work already queued: a fill issued before the download is in it.
    const f = DeviceTensor.alloc('f32', 1 << 20);
    const filling = f.fillAsync(3);
    const downloaded = await f.downloadAsync();
    await filling;
    expect(downloaded.every((v) => v === 3)).toBe(true);
    // Argument errors are thrown at the call; the host array must not be shared or resizable.
    expectCode(() => f.uploadAsync(new Float32Array(3)), 'MICS_INVALID_ARGUMENT', /uploadAsync: the source has 12 bytes/);
    expectCode(() => f.uploadAsync(new Float32Array(new SharedArrayBuffer(4 << 20))), 'MICS_INVALID_ARGUMENT', /SharedArrayBuffer/);
    expectCode(() => f.downloadAsync(new Float64Array(1 << 20) as never), 'MICS_INVALID_ARGUMENT', /needs a Float32Array/);
  });

  gpuIt('views share memory with their parent, at any offset, and outlive it', () => {
    const n = 4096 + randomInt(4096);
    const host = randomHost('f32', n);
    const parent = DeviceTensor.fromHost('f32', host);
    const offset = 1 + randomInt(Math.floor(n / 2));
    const length = 2 + randomInt(n - offset - 2);
    const v = parent.view(offset, length);
    expect({ offset: v.offset, length: v.length, dtype: v.dtype, device: v.device }).toEqual({ offset, length, dtype: 'f32', device: 0 });
    expect(v.download()).toEqual(host.subarray(offset, offset + length));
    // A view of a view: offsets add up.
    const vv = v.view(1, length - 2);
    expect(vv.offset).toBe(offset + 1);
    expect(vv.download()).toEqual(host.subarray(offset + 1, offset + 1 + vv.length));
    // Default length: to the end.
    expect(parent.view(n - 3).length).toBe(3);
    // Writing through the view changes the parent, only in the view's range.
    const patch = randomHost('f32', length);
    v.upload(patch);
    const expected = Float32Array.from(host);
    expected.set(patch, offset);
    expect(parent.download()).toEqual(expected);
    // Releasing the parent keeps the memory alive for the view.
    parent.release();
    expect(parent.released).toBe(true);
    expect(parent.toString()).toMatch(/\(released\)$/);
    expect(v.download()).toEqual(patch);
    expectCode(() => parent.download(), 'MICS_INVALID_ARGUMENT', /released/);
    expectCode(() => parent.view(0, 1), 'MICS_INVALID_ARGUMENT', /released/);
  });

  gpuIt('rejects views that do not fit', () => {
    const t = DeviceTensor.alloc('bf16', 100);
    expectCode(() => t.view(90, 11), 'MICS_INVALID_ARGUMENT', /view\(90, 11\): the range does not fit in bf16\[100\]/);
    expectCode(() => t.view(101), 'MICS_INVALID_ARGUMENT', /does not fit/);
    expectCode(() => t.view(-1, 2), 'MICS_INVALID_ARGUMENT', /offset = -1 is not a non-negative integer/);
    expectCode(() => t.view(1.5, 2), 'MICS_INVALID_ARGUMENT', /offset = 1.5/);
    expect(t.view(100, 0).length).toBe(0);
  });

  gpuIt('fills every dtype (floats round to nearest even, integers exact) and only the view it is given', () => {
    const cases: [keyof HostArrayOf, number | bigint, AnyHost][] = [
      ['f32', 1 / 3, Float32Array.of(1 / 3)],
      ['f64', Math.PI, Float64Array.of(Math.PI)],
      ['f16', 0.1, Uint16Array.of(toFloat16Bits(0.1))],
      ['f16', 70000, Uint16Array.of(0x7c00)], // overflow: inf
      ['bf16', -1 / 3, Uint16Array.of(toBFloat16Bits(-1 / 3))],
      ['i8', -128, Int8Array.of(-128)],
      ['u8', 255, Uint8Array.of(255)],
      ['i32', -2147483648, Int32Array.of(-2147483648)],
      ['i64', 2n ** 62n + 12345n, BigInt64Array.of(2n ** 62n + 12345n)],
      ['i64', -3, BigInt64Array.of(-3n)],
    ];
    for (const [dtype, value, one] of cases) {
      const n = 1 + randomInt(3000);
      const t = DeviceTensor.alloc(dtype, n).fill(value);
      const got = t.download();
      const expected = new (one.constructor as new (n: number) => AnyHost)(n);
      (expected as { fill(v: unknown): void }).fill(one[0]);
      expect({ dtype, value: String(value), same: sameBytes(got, expected) }).toEqual({ dtype, value: String(value), same: true });
    }
    const t = DeviceTensor.alloc('i32', 10).fill(7);
    t.view(2, 3).fill(-1);
    expect(Array.from(t.download())).toEqual([7, 7, -1, -1, -1, 7, 7, 7, 7, 7]);
  });

  gpuIt('refuses fill values the dtype cannot hold', () => {
    expectCode(() => DeviceTensor.alloc('i8', 4).fill(128), 'MICS_INVALID_ARGUMENT', /not an integer in the range of i8/);
    expectCode(() => DeviceTensor.alloc('u8', 4).fill(-1), 'MICS_INVALID_ARGUMENT', /range of u8/);
    expectCode(() => DeviceTensor.alloc('i32', 4).fill(1.5), 'MICS_INVALID_ARGUMENT', /not an integer/);
    expectCode(() => DeviceTensor.alloc('i64', 4).fill(2 ** 63), 'MICS_INVALID_ARGUMENT', /range of i64/);
    expectCode(() => DeviceTensor.alloc('i64', 4).fill(2n ** 64n), 'MICS_INVALID_ARGUMENT', /does not fit in int64/);
    expectCode(() => DeviceTensor.alloc('i32', 4).fill(2n ** 40n), 'MICS_INVALID_ARGUMENT', /out of the range of i32/);
  });

  gpuIt('copies device to device, between tensors and between disjoint views of one allocation', () => {
    const n = 2000 + randomInt(2000);
    const host = randomHost('f16', n);
    const src = DeviceTensor.fromHost('f16', host);
    const dst = DeviceTensor.alloc('f16', n).fill(0);
    expect(dst.copyFrom(src)).toBe(dst);
    expect(sameBytes(dst.download(), host)).toBe(true);
    // Within one allocation: the first half into the second half.
    const half = Math.floor(n / 2);
    src.view(half, half).copyFrom(src.view(0, half));
    const expected = Uint16Array.from(host);
    expected.copyWithin(half, 0, half);
    expect(sameBytes(src.download(), expected)).toBe(true);
    // The same range onto itself is a no-op.
    src.copyFrom(src);
    expect(sameBytes(src.download(), expected)).toBe(true);
  });

  gpuIt('refuses copies with mismatched dtypes or lengths, and partly overlapping ranges', () => {
    const a = DeviceTensor.alloc('f32', 100);
    expectCode(() => a.copyFrom(DeviceTensor.alloc('i32', 100) as never), 'MICS_INVALID_ARGUMENT', /dtypes differ: destination f32\[100\].*source i32\[100\]/);
    expectCode(() => a.copyFrom(DeviceTensor.alloc('f32', 99)), 'MICS_INVALID_ARGUMENT', /lengths differ/);
    expectCode(() => a.view(0, 50).copyFrom(a.view(10, 50)), 'MICS_INVALID_ARGUMENT', /partly overlaps/);
    expectCode(() => a.native.copyFrom({} as never), 'MICS_INVALID_ARGUMENT', /must be a DeviceTensor/);
  });

  gpuIt('refuses host arrays of the wrong type or length', () => {
    const t = DeviceTensor.alloc('f32', 8);
    expectCode(() => t.upload(new Float64Array(8) as never), 'MICS_INVALID_ARGUMENT', /is a Float64Array but a f32 tensor needs a Float32Array/);
    expectCode(() => t.upload(new Float32Array(7)), 'MICS_INVALID_ARGUMENT', /source has 28 bytes but f32\[8\] on cuda:0 has 32/);
    expectCode(() => t.download(new Float32Array(9)), 'MICS_INVALID_ARGUMENT', /destination has 36 bytes/);
    expectCode(() => t.upload([1, 2] as never), 'MICS_INVALID_ARGUMENT', /must be a Float32Array/);
    const h = DeviceTensor.alloc('bf16', 4);
    expectCode(() => h.upload(new Int16Array(4) as never), 'MICS_INVALID_ARGUMENT', /needs a Uint16Array/);
    const i = DeviceTensor.alloc('i64', 2);
    expectCode(() => i.upload(new BigUint64Array(2) as never), 'MICS_INVALID_ARGUMENT', /needs a BigInt64Array/);
  });

  gpuIt('refuses bad allocation arguments by name', () => {
    expectCode(() => DeviceTensor.alloc('f8' as never, 4), 'MICS_INVALID_ARGUMENT', /dtype 'f8' is not valid/);
    expectCode(() => DeviceTensor.alloc('f32', -1), 'MICS_INVALID_ARGUMENT', /length = -1/);
    expectCode(() => DeviceTensor.alloc('f32', 2.5), 'MICS_INVALID_ARGUMENT', /length = 2.5/);
    expectCode(() => DeviceTensor.alloc('f32', 4, 4096), 'MICS_INVALID_ARGUMENT', /device 4096 is not valid/);
  });
});
