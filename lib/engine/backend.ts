/**
 * Where the engine keeps its buffers and runs its kernels: host memory and the CPU
 * kernels (csrc/kernels) for the CPU backend, device memory and the CUDA kernels
 * for NCCL. The orchestration (engine.ts) is written once over this interface, so
 * the CPU tests exercise the logic that runs on GPUs.
 */
import type { DType, HostArrayOf, ReduceOp } from '../core/dtypes';
import { invalidArgument, valueText } from '../core/errors';
import type { Communicator } from '../comm/communicator';
import type { Tensor } from '../comm/tensor';
import { allocHost } from '../comm/host-memory';
import { cudaKernels, DeviceTensor } from '../cuda/device-tensor';
import { hostKernels } from '../kernels/host';
import type { Precision } from './types';

/** The dtypes the engine keeps floating-point buffers in. */
export type FloatDType = 'f32' | 'bf16' | 'f16';
export type HalfDType = 'bf16' | 'f16';

/** The dtype of the gathered parameters of each precision. */
const GATHER_DTYPES: Record<Precision, FloatDType> = { fp32: 'f32', bf16: 'bf16', fp16: 'f16' };

/**
 * The gather dtype of `precision` (left out: fp32); anything but 'fp32', 'bf16' or
 * 'fp16' (also a name Object.prototype has, such as 'toString') is MICS_INVALID_ARGUMENT.
 */
export function gatherDtypeOf(precision: unknown): FloatDType {
  const given = precision ?? 'fp32';
  if (typeof given !== 'string' || !Object.prototype.hasOwnProperty.call(GATHER_DTYPES, given)) {
    throw invalidArgument(`precision '${valueText(precision)}' is not valid: use 'fp32', 'bf16' or 'fp16'`);
  }
  return GATHER_DTYPES[given as Precision];
}

/** A half-precision copy the optimizer writes in the same pass. */
export interface HalfOutput<B> {
  buffer: B;
  dtype: HalfDType;
}

/** Hyper-parameters of one AdamW call (torch's names; `step` is 1-based). */
export interface AdamWCall {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  gradScale: number;
}

/** Hyper-parameters of one SGD call. */
export interface SgdCall {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  step: number;
  gradScale: number;
}

/** Buffers and kernels of one side (host or device). `B` is the buffer type. */
export interface EngineBackend<B> {
  readonly kind: 'host' | 'device';
  /** `length` zero-filled elements of `dtype`. */
  alloc(dtype: DType, length: number): B;
  /** Elements [offset, offset + length) sharing memory. */
  view(buffer: B, offset: number, length: number): B;
  length(buffer: B): number;
  /** The buffer as a collective argument. */
  tensor(buffer: B, dtype: DType): Tensor;
  /** buffer <- values (same length), host to this side; f32 and f64 buffers. */
  write(buffer: B, values: ArrayLike<number>): void;
  /** dst (dtype dstDtype) <- src (dtype srcDtype) converted, round to nearest even. */
  cast(dst: B, dstDtype: FloatDType, src: B, srcDtype: FloatDType): Promise<void>;
  /** A host copy of an f32 buffer. */
  read(buffer: B): Float32Array;
  /** A host copy of an f64 buffer. */
  read64(buffer: B): Float64Array;
  fill(buffer: B, value: number): void;
  /** dst <- src, same length. */
  copy(dst: B, src: B): void;
  /** y += x (y f32; x f32, bf16 or f16). */
  accumulate(y: B, x: B, xDtype: FloatDType): Promise<void>;
  /** Sum of squares of an f32 buffer, accumulated in double. */
  sumOfSquares(x: B): Promise<number>;
  /** Whether an f32 buffer holds an inf or NaN. */
  hasNonFinite(x: B): Promise<boolean>;
  /** A hash of the buffer's bytes (equal bytes, equal hash). */
  checksum(x: B): Promise<string>;
  adamw(params: B, grads: B, expAvg: B, expAvgSq: B, call: AdamWCall, half?: HalfOutput<B>): Promise<void>;
  sgd(params: B, grads: B, momentumBuffer: B | undefined, call: SgdCall, half?: HalfOutput<B>): Promise<void>;
}

/** A host buffer as a kernel argument: half types carry their dtype. */
function hostView(buffer: HostArrayOf<DType>, dtype: FloatDType): Float32Array | { data: Uint16Array; dtype: HalfDType } {
  return dtype === 'f32' ? (buffer as Float32Array) : { data: buffer as Uint16Array, dtype };
}

/** Host memory from allocHost (peers of the node read it in place) and the CPU kernels. */
export class HostBackend implements EngineBackend<HostArrayOf<DType>> {
  readonly kind = 'host' as const;

  alloc(dtype: DType, length: number): HostArrayOf<DType> {
    return allocHost(dtype, length);
  }
  view(buffer: HostArrayOf<DType>, offset: number, length: number): HostArrayOf<DType> {
    return buffer.subarray(offset, offset + length) as HostArrayOf<DType>;
  }
  length(buffer: HostArrayOf<DType>): number {
    return buffer.length;
  }
  tensor(buffer: HostArrayOf<DType>, dtype: DType): Tensor {
    return { data: buffer, dtype };
  }
  write(buffer: HostArrayOf<DType>, values: ArrayLike<number>): void {
    if (values.length !== buffer.length) {
      throw invalidArgument(`expected ${buffer.length} values, got ${values.length}`);
    }
    (buffer as Float32Array).set(values);
  }
  read(buffer: HostArrayOf<DType>): Float32Array {
    return Float32Array.from(buffer as Float32Array);
  }
  read64(buffer: HostArrayOf<DType>): Float64Array {
    return Float64Array.from(buffer as Float64Array);
  }
  fill(buffer: HostArrayOf<DType>, value: number): void {
    (buffer as Float32Array).fill(value);
  }
  copy(dst: HostArrayOf<DType>, src: HostArrayOf<DType>): void {
    (dst as Float32Array).set(src as Float32Array);
  }
  cast(dst: HostArrayOf<DType>, dstDtype: FloatDType, src: HostArrayOf<DType>, srcDtype: FloatDType): Promise<void> {
    return hostKernels.cast(hostView(dst, dstDtype), hostView(src, srcDtype));
  }
  accumulate(y: HostArrayOf<DType>, x: HostArrayOf<DType>, xDtype: FloatDType): Promise<void> {
    return hostKernels.accumulate(y as Float32Array, hostView(x, xDtype));
  }
  sumOfSquares(x: HostArrayOf<DType>): Promise<number> {
    return hostKernels.sumOfSquares(x as Float32Array);
  }
  hasNonFinite(x: HostArrayOf<DType>): Promise<boolean> {
    return hostKernels.hasNonFinite(x as Float32Array);
  }
  async checksum(x: HostArrayOf<DType>): Promise<string> {
    return String(await hostKernels.checksum(x));
  }
  adamw(
    params: HostArrayOf<DType>,
    grads: HostArrayOf<DType>,
    expAvg: HostArrayOf<DType>,
    expAvgSq: HostArrayOf<DType>,
    call: AdamWCall,
    half?: HalfOutput<HostArrayOf<DType>>,
  ): Promise<void> {
    return hostKernels.adamw({
      params: params as Float32Array,
      grads: grads as Float32Array,
      expAvg: expAvg as Float32Array,
      expAvgSq: expAvgSq as Float32Array,
      halfParams: half === undefined ? undefined : { data: half.buffer as Uint16Array, dtype: half.dtype },
      ...call,
    });
  }
  sgd(
    params: HostArrayOf<DType>,
    grads: HostArrayOf<DType>,
    momentumBuffer: HostArrayOf<DType> | undefined,
    call: SgdCall,
    half?: HalfOutput<HostArrayOf<DType>>,
  ): Promise<void> {
    return hostKernels.sgd({
      params: params as Float32Array,
      grads: grads as Float32Array,
      momentumBuffer: momentumBuffer as Float32Array | undefined,
      halfParams: half === undefined ? undefined : { data: half.buffer as Uint16Array, dtype: half.dtype },
      ...call,
    });
  }
}

/** Device memory (DeviceTensor) and the CUDA kernels, on one device. */
export class DeviceBackend implements EngineBackend<DeviceTensor> {
  readonly kind = 'device' as const;

  constructor(readonly device: number) {}

  alloc(dtype: DType, length: number): DeviceTensor {
    // Zero-filled like allocHost; fill of an empty tensor is skipped by the addon.
    return DeviceTensor.alloc(dtype, length, this.device).fill(0);
  }
  view(buffer: DeviceTensor, offset: number, length: number): DeviceTensor {
    return buffer.view(offset, length);
  }
  length(buffer: DeviceTensor): number {
    return buffer.length;
  }
  tensor(buffer: DeviceTensor): Tensor {
    return buffer;
  }
  write(buffer: DeviceTensor, values: ArrayLike<number>): void {
    const host = buffer.dtype === 'f64' ? Float64Array.from(values) : Float32Array.from(values);
    (buffer as DeviceTensor<'f32' | 'f64'>).upload(host);
  }
  read(buffer: DeviceTensor): Float32Array {
    return (buffer as DeviceTensor<'f32'>).download();
  }
  read64(buffer: DeviceTensor): Float64Array {
    return (buffer as DeviceTensor<'f64'>).download();
  }
  fill(buffer: DeviceTensor, value: number): void {
    buffer.fill(value);
  }
  copy(dst: DeviceTensor, src: DeviceTensor): void {
    dst.copyFrom(src);
  }
  async cast(dst: DeviceTensor, _dstDtype: FloatDType, src: DeviceTensor): Promise<void> {
    await cudaKernels.cast(dst as DeviceTensor<FloatDType>, src as DeviceTensor<FloatDType>);
  }
  async accumulate(y: DeviceTensor, x: DeviceTensor): Promise<void> {
    await cudaKernels.accumulate(y as DeviceTensor<'f32'>, x as DeviceTensor<FloatDType>);
  }
  async sumOfSquares(x: DeviceTensor): Promise<number> {
    return cudaKernels.sumOfSquares(x as DeviceTensor<'f32'>, 'f64');
  }
  async hasNonFinite(x: DeviceTensor): Promise<boolean> {
    return cudaKernels.hasNonFinite(x as DeviceTensor<'f32'>);
  }
  async checksum(x: DeviceTensor): Promise<string> {
    // One-off checks (replica verification): hash a host copy with the CPU kernel.
    return String(await hostKernels.checksum((x as DeviceTensor<'f32'>).download()));
  }
  async adamw(
    params: DeviceTensor,
    grads: DeviceTensor,
    expAvg: DeviceTensor,
    expAvgSq: DeviceTensor,
    call: AdamWCall,
    half?: HalfOutput<DeviceTensor>,
  ): Promise<void> {
    await cudaKernels.adamw({
      params: params as DeviceTensor<'f32'>,
      grads: grads as DeviceTensor<'f32'>,
      expAvg: expAvg as DeviceTensor<'f32'>,
      expAvgSq: expAvgSq as DeviceTensor<'f32'>,
      halfParams: half?.buffer as DeviceTensor<HalfDType> | undefined,
      ...call,
    });
  }
  async sgd(params: DeviceTensor, grads: DeviceTensor, momentumBuffer: DeviceTensor | undefined, call: SgdCall, half?: HalfOutput<DeviceTensor>): Promise<void> {
    await cudaKernels.sgd({
      params: params as DeviceTensor<'f32'>,
      grads: grads as DeviceTensor<'f32'>,
      momentumBuffer: momentumBuffer as DeviceTensor<'f32'> | undefined,
      halfParams: half?.buffer as DeviceTensor<HalfDType> | undefined,
      ...call,
    });
  }
}

/** The backend for buffers a communicator can carry: device memory on nccl, host memory on cpu. */
export function backendFor(comm: Communicator): EngineBackend<HostArrayOf<DType>> | EngineBackend<DeviceTensor> {
  return comm.backend === 'nccl' ? new DeviceBackend(comm.device ?? 0) : new HostBackend();
}

/**
 * Whether the engine adds later micro-steps' gradients in the reduce-scatter's own
 * pass (`reduceScatter(..., {accumulate: true})`: f32 on the CPU backend, S > 1)
 * rather than through a temporary and the accumulate kernel.
 */
export function accumulatesInReduceScatter(partition: Communicator, reduceDtype: FloatDType): boolean {
  return partition.size > 1 && reduceDtype === 'f32' && partition.backend === 'cpu';
}

/**
 * Reduces host numbers over `comm` in place: straight on a cpu communicator, through
 * device memory on nccl (which reduces device memory only). `run` issues the
 * collective (the engine passes its chain of collectives).
 */
export async function allReduceHostValues(
  comm: Communicator,
  values: Float64Array,
  op: ReduceOp,
  run: (launch: () => Promise<void>) => Promise<void> = (launch) => launch(),
): Promise<void> {
  if (comm.size === 1) return;
  if (comm.backend !== 'nccl') {
    await run(() => comm.allReduce(values, { op }));
    return;
  }
  const device = DeviceTensor.fromHost('f64', values, comm.device ?? 0);
  try {
    await run(() => comm.allReduce(device, { op }));
    device.download(values);
  } finally {
    device.release();
  }
}
