/**
 * Device tensors and the CUDA kernels, typed.
 *
 * The native side (csrc/napi/device_tensor_wrap.cc) exists only in the CMake build
 * with CUDA (`npm run build:cmake` where nvcc is found).
 *
 * Kernels never block the event loop: each checks its arguments (errors are thrown
 * at the call), enqueues its work on the device's stream and returns a Promise that
 * settles once the device has run it (rejected with the CUDA error as a MicsError).
 * Await it before reading the result or handing the tensors to a collective.
 * `DeviceTensor.uploadAsync/downloadAsync/fillAsync/copyFromAsync` work the same way
 * (argument errors at the call, the work through the Promise).
 * `upload`, `download`, `fill` and `copyFrom` are synchronous (the data is in place
 * when they return): copies from and to JavaScript memory are synchronous in CUDA
 * anyway (pageable memory goes through a staging buffer on the calling thread), and
 * fill/copyFrom serve code that needs the data in place at once.
 *
 * Without a usable device (no CUDA build, no driver, no GPU) every call throws an
 * error with `code === 'MICS_UNAVAILABLE'` naming why; `cudaAvailable()` says so
 * without throwing.
 */
import { loadAddon, type NativeCudaKernels, type NativeCudaParts, type NativeDeviceTensor } from '../core/native';
import type { DType, HostArrayOf } from '../core/dtypes';
import { MicsError } from '../core/errors';
import { keepAttached } from '../core/untransferable';

export type { NativeDeviceTensor } from '../core/native';

/** Options of `cudaKernels.adamw` (names and defaults of torch.optim.AdamW). */
export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** 1-based: the step being taken (PyTorch's state['step'] after its increment). */
  step: number;
  /** Grads are multiplied by this first (loss-scale undo, clipping); default 1. */
  gradScale?: number;
}

/** Options of `cudaKernels.sgd` (names and defaults of torch.optim.SGD). */
export interface SgdOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** 1-based; at step 1 the momentum buffer is set to the (decayed) gradient. */
  step: number;
  gradScale?: number;
}

/** Whether device tensors can be used here, and why not. */
export interface CudaAvailability {
  ok: boolean;
  /** Why not (when !ok), else what was found ("1 CUDA device, driver 12.4, runtime 13.0"). */
  reason: string;
}

function cudaVersion(code: number): string {
  return `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 10)}`;
}

/** Whether the loaded addon can use a CUDA device, and why not. Never throws. */
export function cudaAvailable(): CudaAvailability {
  let loaded;
  try {
    loaded = loadAddon();
  } catch (e) {
    return { ok: false, reason: `the mics addon did not load: ${(e as Error).message}` };
  }
  const cuda = loaded.addon.capabilities().cuda;
  if (!cuda.compiled) {
    return {
      ok: false,
      reason: `${cuda.reason ?? 'this build has no CUDA parts'} [addon: ${loaded.file}]`,
    };
  }
  if (cuda.deviceCount <= 0) return { ok: false, reason: cuda.reason ?? 'no CUDA device' };
  const parts = loaded.addon as unknown as NativeCudaParts;
  if (parts.DeviceTensor === undefined || parts.cudaKernels === undefined) {
    return {
      ok: false,
      reason: `the addon at ${loaded.file} has CUDA but does not register DeviceTensor (a build older than csrc/napi/device_tensor_wrap.cc?)`,
    };
  }
  const n = cuda.deviceCount;
  return {
    ok: true,
    reason: `${n} CUDA device${n === 1 ? '' : 's'}, driver ${cudaVersion(cuda.driverVersion)}, runtime ${cudaVersion(cuda.runtimeVersion)}`,
  };
}

function unavailable(what: string): MicsError {
  return new MicsError(`${what}: CUDA is unavailable: ${cudaAvailable().reason}`, 'MICS_UNAVAILABLE');
}

/** The native CUDA parts; throws MICS_UNAVAILABLE (naming why) where the build lacks them. */
function cudaParts(what: string): Required<NativeCudaParts> {
  const parts = loadAddon().addon as unknown as NativeCudaParts;
  if (parts.DeviceTensor === undefined || parts.cudaKernels === undefined) throw unavailable(what);
  return parts as Required<NativeCudaParts>;
}

/**
 * Bytes of memory of CUDA device `device` (default: the calling thread's current
 * device). Throws MICS_UNAVAILABLE, naming why, where CUDA is not usable.
 */
export function cudaTotalMemory(device?: number): number {
  const query = (cudaParts('cudaTotalMemory') as NativeCudaParts).cudaTotalMemory;
  if (query === undefined) {
    throw new MicsError('cudaTotalMemory: the loaded addon predates it; rebuild mics (npm rebuild mics)', 'MICS_UNAVAILABLE');
  }
  return query(device);
}

/**
 * A 1-D tensor in device memory. Views share the memory (zero-copy); it is freed
 * when the last tensor referring to it is garbage-collected or released. The JS
 * garbage collector does not see device memory: call `release()` on large tensors
 * you are done with.
 */
export class DeviceTensor<D extends DType = DType> {
  private constructor(readonly native: NativeDeviceTensor) {}

  /** Wraps a native tensor (from another module of the addon). */
  static fromNative<D extends DType = DType>(native: NativeDeviceTensor): DeviceTensor<D> {
    return new DeviceTensor<D>(native);
  }

  /** Allocates `length` uninitialised elements on `device` (default: the current device, 0). */
  static alloc<D extends DType>(dtype: D, length: number, device?: number): DeviceTensor<D> {
    const native = cudaParts('DeviceTensor.alloc').DeviceTensor.alloc(dtype, length, device);
    return new DeviceTensor<D>(native);
  }

  /** Allocates a tensor holding a copy of `data` (bf16/f16 data as Uint16Array bits). */
  static fromHost<D extends DType>(dtype: D, data: HostArrayOf<D>, device?: number): DeviceTensor<D> {
    return DeviceTensor.alloc(dtype, data.length, device).upload(data);
  }

  get dtype(): D {
    return this.native.dtype as D;
  }
  get length(): number {
    return this.native.length;
  }
  get byteLength(): number {
    return this.native.byteLength;
  }
  get device(): number {
    return this.native.device;
  }
  /** Elements from the start of the allocation (non-zero for views). */
  get offset(): number {
    return this.native.offset;
  }
  get released(): boolean {
    return this.native.released;
  }

  /** Copies `src` (same element count, the dtype's TypedArray) to the device; returns when done. */
  upload(src: HostArrayOf<D>): this {
    this.native.upload(src);
    return this;
  }

  /** Copies the tensor into `dst` (or a new TypedArray) and returns it, when done. */
  download(dst?: HostArrayOf<D>): HostArrayOf<D> {
    return this.native.download(dst) as HostArrayOf<D>;
  }

  /** Elements [offset, offset + length) sharing this tensor's memory (length: to the end). */
  view(offset: number, length?: number): DeviceTensor<D> {
    return new DeviceTensor<D>(this.native.view(offset, length));
  }

  /** Sets every element (floats rounded to nearest even; integers range-checked; i64 takes a bigint). */
  fill(value: number | bigint): this {
    this.native.fill(value);
    return this;
  }

  /** this <- src (same dtype and length; may be on another device; no partial overlap). */
  copyFrom(src: DeviceTensor<D>): this {
    this.native.copyFrom(src?.native);
    return this;
  }

  /**
   * Like `upload`, without blocking: the copy runs on a per-device copy thread after
   * the work already queued on this device. Do not modify `src` until it resolves.
   */
  uploadAsync(src: HostArrayOf<D>): Promise<this> {
    const promise = this.native.uploadAsync(src).then(() => this);
    keepAttached(src); // copied on a stream after this returns (core/untransferable)
    return promise;
  }

  /** Like `download`, without blocking; resolves to `dst` (or a new TypedArray) once filled. */
  downloadAsync(dst?: HostArrayOf<D>): Promise<HostArrayOf<D>> {
    const promise = this.native.downloadAsync(dst) as Promise<HostArrayOf<D>>;
    keepAttached(dst);
    return promise;
  }

  /** Like `fill`, without blocking: resolves once the device has run it. */
  fillAsync(value: number | bigint): Promise<this> {
    return this.native.fillAsync(value).then(() => this);
  }

  /** Like `copyFrom`, without blocking: resolves once the device has run it. */
  copyFromAsync(src: DeviceTensor<D>): Promise<this> {
    return this.native.copyFromAsync(src?.native).then(() => this);
  }

  /** Drops this object's hold on the device memory now (views keep it alive). */
  release(): void {
    this.native.release();
  }

  toString(): string {
    return this.native.toString();
  }
}

/** Half-precision parameter copies and gradients the kernels read. */
export type FloatDType = 'f32' | 'bf16' | 'f16';
export type HalfDType = 'bf16' | 'f16';

/** Arguments of `cudaKernels.adamw`: fp32 master shard and states, with optional half copy. */
export interface AdamWArgs extends AdamWOptions {
  params: DeviceTensor<'f32'>;
  grads: DeviceTensor<FloatDType>;
  expAvg: DeviceTensor<'f32'>;
  expAvgSq: DeviceTensor<'f32'>;
  /** Written with the updated params rounded to nearest even. */
  halfParams?: DeviceTensor<HalfDType>;
}

/** Arguments of `cudaKernels.sgd`. */
export interface SgdArgs extends SgdOptions {
  params: DeviceTensor<'f32'>;
  grads: DeviceTensor<FloatDType>;
  /** Required when momentum != 0. */
  momentumBuffer?: DeviceTensor<'f32'>;
  halfParams?: DeviceTensor<HalfDType>;
}

function kernels(what: string): NativeCudaKernels {
  return cudaParts(`cudaKernels.${what}`).cudaKernels;
}

/**
 * The engine's kernels (docs/cuda.md has the formulas). Each checks its arguments
 * and throws at the call (MICS_UNAVAILABLE first, else MICS_INVALID_ARGUMENT naming
 * the argument), then returns a Promise that settles once the device has run the
 * work: no call blocks the event loop. Calls on one device run in call order, so
 * several may be issued before awaiting the last.
 * Tensor arguments are read with `?.` so that untyped JavaScript callers passing
 * nothing get the addon's error rather than a TypeError.
 * Arithmetic is f32 without FMA contraction: results match lib/cuda/reference.ts bit
 * for bit (except the order of summation in sumOfSquares).
 */
export const cudaKernels = {
  /** y += alpha * x (y f32; x f32, bf16 or f16). */
  accumulate(y: DeviceTensor<'f32'>, x: DeviceTensor<FloatDType>, alpha = 1): Promise<void> {
    return kernels('accumulate').accumulate(y?.native, x?.native, alpha);
  },
  /** x *= alpha (f32, f64, bf16, f16). */
  scale(x: DeviceTensor<'f32' | 'f64' | HalfDType>, alpha: number): Promise<void> {
    return kernels('scale').scale(x?.native, alpha);
  },
  /** dst = src converted (f32 -> bf16/f16 rounding to nearest even, bf16/f16 -> f32). */
  cast(dst: DeviceTensor<FloatDType>, src: DeviceTensor<FloatDType>): Promise<void> {
    return kernels('cast').cast(dst?.native, src?.native);
  },
  /** One AdamW step (PyTorch's formula) on an fp32 master shard. */
  adamw(args: AdamWArgs): Promise<void> {
    const { params, grads, expAvg, expAvgSq, halfParams, ...options } = args;
    return kernels('adamw').adamw({
      ...options,
      params: params?.native,
      grads: grads?.native,
      expAvg: expAvg?.native,
      expAvgSq: expAvgSq?.native,
      halfParams: halfParams?.native,
    });
  },
  /** One SGD step (PyTorch's formula: weight decay, momentum, dampening, nesterov). */
  sgd(args: SgdArgs): Promise<void> {
    const { params, grads, momentumBuffer, halfParams, ...options } = args;
    return kernels('sgd').sgd({
      ...options,
      params: params?.native,
      grads: grads?.native,
      momentumBuffer: momentumBuffer?.native,
      halfParams: halfParams?.native,
    });
  },
  /** Sum of squares of x (f32, bf16, f16), accumulated in `dtype` (default f64). */
  sumOfSquares(x: DeviceTensor<FloatDType>, dtype: 'f32' | 'f64' = 'f64'): Promise<number> {
    return kernels('sumOfSquares').sumOfSquares(x?.native, dtype);
  },
  /** out[0] = (accumulate ? out[0] : 0) + sum of squares of x; out f32 or f64. */
  sumOfSquaresInto(out: DeviceTensor<'f32' | 'f64'>, x: DeviceTensor<FloatDType>, accumulate = false): Promise<void> {
    return kernels('sumOfSquaresInto').sumOfSquaresInto(out?.native, x?.native, accumulate);
  },
  /** Whether x (f32, f64, bf16, f16) holds an inf or NaN. */
  hasNonFinite(x: DeviceTensor<'f32' | 'f64' | HalfDType>): Promise<boolean> {
    return kernels('hasNonFinite').hasNonFinite(x?.native);
  },
  /** flag[0] = 1 when x holds an inf or NaN; without `accumulate` flag[0] is cleared first. flag: i32 or f32. */
  checkNonFiniteInto(flag: DeviceTensor<'i32' | 'f32'>, x: DeviceTensor<'f32' | 'f64' | HalfDType>, accumulate = false): Promise<void> {
    return kernels('checkNonFiniteInto').checkNonFiniteInto(flag?.native, x?.native, accumulate);
  },
};
