/**
 * The engine's kernels on host memory: the CPU counterparts of `cudaKernels`
 * (lib/cuda/device-tensor.ts), with the same names, options and defaults (torch's),
 * over TypedArrays and `{data, dtype, offset?, length?}` views instead of device
 * tensors.
 *
 * Every method returns a Promise: the arguments are checked at once (bad ones reject
 * with `MICS_INVALID_ARGUMENT` naming the argument), the work runs on libuv's thread
 * pool, so the JavaScript thread stays free, and the arrays must not be touched until
 * the Promise settles (the addon keeps them alive until then).
 *
 * Arithmetic is f32 without FMA contraction, exactly as on the GPU: results equal
 * lib/cuda/reference.ts and the CUDA kernels bit for bit (NaN payloads aside), except
 * sumOfSquares, which adds in its own order (relative error below 2^-45).
 */
import { resolveTensor, type DType, type HostArrayOf, type HostTensor } from '../core/dtypes';
import { MicsError, invalidArgument, rejecting, type MicsErrorCode } from '../core/errors';
import { loadAddon, type NativeHostKernels, type NativeHostTensor } from '../core/native';
import { keepAttached } from '../core/untransferable';
import type { AdamWOptions, FloatDType, HalfDType, SgdOptions } from '../cuda/device-tensor';

export type { AdamWOptions, SgdOptions, FloatDType, HalfDType } from '../cuda/device-tensor';

/** A zero-copy view of part of a TypedArray holding dtype `D` (bf16/f16: Uint16Array bits). */
export interface HostViewOf<D extends DType> {
  data: HostArrayOf<D>;
  /** Required for bf16 and f16 (a Uint16Array does not say which). */
  dtype?: D;
  /** First element of the view (default 0). */
  offset?: number;
  /** Number of elements (default: to the end of `data`). */
  length?: number;
}

/**
 * A host tensor of one of the dtypes `D`: its TypedArray itself (f32, f64), or a
 * view (always for bf16 / f16, which need their dtype named).
 */
export type HostTensorOf<D extends DType> = HostArrayOf<Exclude<D, HalfDType>> | HostViewOf<D>;

/** Arguments of `hostKernels.adamw`: fp32 master shard and states, with an optional half copy. */
export interface HostAdamWArgs extends AdamWOptions {
  params: HostTensorOf<'f32'>;
  grads: HostTensorOf<FloatDType>;
  expAvg: HostTensorOf<'f32'>;
  expAvgSq: HostTensorOf<'f32'>;
  /** Written with the updated params rounded to nearest even. */
  halfParams?: HostViewOf<HalfDType>;
}

/** Arguments of `hostKernels.sgd`. */
export interface HostSgdArgs extends SgdOptions {
  params: HostTensorOf<'f32'>;
  grads: HostTensorOf<FloatDType>;
  /** Required when momentum != 0; at step 1 it is overwritten, never read. */
  momentumBuffer?: HostTensorOf<'f32'>;
  halfParams?: HostViewOf<HalfDType>;
}

function kernels(what: string): NativeHostKernels {
  const loaded = loadAddon();
  const native = loaded.addon.hostKernels;
  if (native === undefined) {
    throw new MicsError(
      `hostKernels.${what}: the addon at ${loaded.file} has no hostKernels (built before they existed?): ` +
        'rebuild it with `npm run build:native`',
      'MICS_UNAVAILABLE',
    );
  }
  return native;
}

function options<T extends object>(args: T, what: string): T {
  if (typeof args !== 'object' || args === null) throw invalidArgument(`${what}: an options object is required`);
  return args;
}

function tensor(value: HostTensor, role: string): NativeHostTensor {
  const { array, dtype } = resolveTensor(value, role);
  // Every kernel runs on libuv's pool: its arrays must stay attached until it ends.
  keepAttached(array);
  return { data: array, dtype };
}

function optionalTensor(value: HostTensor | undefined | null, role: string): NativeHostTensor | undefined {
  return value === undefined || value === null ? undefined : tensor(value, role);
}

/** A native rejection as a MicsError, keeping its code (the addon sets one on every error it raises). */
function asMicsError(err: unknown): MicsError {
  if (err instanceof MicsError) return err;
  // Not `instanceof Error`: the addon's errors may come from another realm (vm contexts).
  const { code, message } = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  const known = typeof code === 'string' && code.startsWith('MICS_');
  return new MicsError(typeof message === 'string' ? message : String(err), (known ? code : 'MICS_INTERNAL') as MicsErrorCode, {
    cause: err,
  });
}

/** Starts a native kernel; a throw (bad input) or a rejection becomes a rejected MicsError. */
function run<T>(start: () => Promise<T>): Promise<T> {
  return rejecting(start).catch((err: unknown) => {
    throw asMicsError(err);
  });
}

/**
 * The CPU kernels, one Promise each (docs/cuda.md has the formulas). Tensor arguments
 * are TypedArrays or `{data, dtype?, offset?, length?}` views; bf16 and f16 travel as
 * their bits in a Uint16Array with an explicit dtype.
 */
export const hostKernels = {
  /** y += alpha * x (y f32; x f32, bf16 or f16; x may be y itself, not partly overlap it). */
  accumulate(y: HostTensorOf<'f32'>, x: HostTensorOf<FloatDType>, alpha = 1): Promise<void> {
    return run(() => kernels('accumulate').accumulate(tensor(y, 'accumulate: y'), tensor(x, 'accumulate: x'), alpha));
  },

  /** x *= alpha (f32, f64, bf16, f16; the halves computed in f32 and rounded to nearest even). */
  scale(x: HostTensorOf<'f32' | 'f64' | HalfDType>, alpha: number): Promise<void> {
    return run(() => kernels('scale').scale(tensor(x, 'scale: x'), alpha));
  },

  /** dst = src converted (f32 -> bf16/f16 rounding to nearest even, bf16/f16 -> f32 exactly). */
  cast(dst: HostTensorOf<FloatDType>, src: HostTensorOf<FloatDType>): Promise<void> {
    return run(() => kernels('cast').cast(tensor(dst, 'cast: dst'), tensor(src, 'cast: src')));
  },

  /** One AdamW step (PyTorch's formula) on an fp32 master shard; `step` counts from 1. */
  adamw(args: HostAdamWArgs): Promise<void> {
    return run(() => {
      const { params, grads, expAvg, expAvgSq, halfParams, ...hyper } = options(args, 'adamw');
      return kernels('adamw').adamw({
        ...hyper,
        params: tensor(params, 'adamw: params'),
        grads: tensor(grads, 'adamw: grads'),
        expAvg: tensor(expAvg, 'adamw: expAvg'),
        expAvgSq: tensor(expAvgSq, 'adamw: expAvgSq'),
        halfParams: optionalTensor(halfParams, 'adamw: halfParams'),
      });
    });
  },

  /** One SGD step (PyTorch's formula: weight decay, momentum, dampening, nesterov). */
  sgd(args: HostSgdArgs): Promise<void> {
    return run(() => {
      const { params, grads, momentumBuffer, halfParams, ...hyper } = options(args, 'sgd');
      return kernels('sgd').sgd({
        ...hyper,
        params: tensor(params, 'sgd: params'),
        grads: tensor(grads, 'sgd: grads'),
        momentumBuffer: optionalTensor(momentumBuffer, 'sgd: momentumBuffer'),
        halfParams: optionalTensor(halfParams, 'sgd: halfParams'),
      });
    });
  },

  /**
   * Sum of squares of x (f32, bf16, f16), accumulated in double: each square is exact,
   * blocks are summed in fixed lanes and the block sums with compensation, so the
   * relative error is below 2^-45 and the result is the same on every machine.
   */
  sumOfSquares(x: HostTensorOf<FloatDType>): Promise<number> {
    return run(() => kernels('sumOfSquares').sumOfSquares(tensor(x, 'sumOfSquares: x')));
  },

  /** Whether x (f32, f64, bf16, f16) holds an inf or NaN. */
  hasNonFinite(x: HostTensorOf<'f32' | 'f64' | HalfDType>): Promise<boolean> {
    return run(() => kernels('hasNonFinite').hasNonFinite(tensor(x, 'hasNonFinite: x')));
  },

  /**
   * A 64-bit checksum of the bytes of `x` (any TypedArray or DataView, or a tensor
   * view): XXH64 with seed 0, as 16 lowercase hex digits ("ef46db3751d8e999" for no
   * bytes), what any xxHash implementation gives for the same bytes (python:
   * `xxhash.xxh64(data).hexdigest()`). Equal bytes give equal
   * checksums on every machine, so replicas can compare parameters by exchanging 16
   * characters. Not cryptographic.
   */
  checksum(x: ArrayBufferView | HostTensor): Promise<string> {
    return run(() => {
      const bytes = ArrayBuffer.isView(x) ? x : resolveTensor(x, 'checksum: x').array;
      return kernels('checksum').checksum(bytes);
    });
  },
};
