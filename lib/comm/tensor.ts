/**
 * Buffers as the collectives see them: host tensors (TypedArrays and views, for
 * the CPU backend) and device tensors (DeviceTensor, for NCCL). Span is the little
 * algebra the hierarchical all-gather needs on either kind: sub-ranges without
 * copying, copies between ranges, and temporaries.
 */
import { DeviceTensor } from '../cuda/device-tensor';
import { bytesOf, resolveTensor, type DType, type HostArray, type HostTensor } from '../core/dtypes';
import { invalidArgument } from '../core/errors';

/** Anything a collective accepts: host memory, or device memory on the NCCL backend. */
export type Tensor = HostTensor | DeviceTensor;

/** Whether an argument is a tensor (and not an options object). */
export function isTensor(value: unknown): value is Tensor {
  return (
    ArrayBuffer.isView(value) ||
    value instanceof DeviceTensor ||
    (typeof value === 'object' && value !== null && 'data' in value)
  );
}

/** A tensor resolved for the addon: the native object, its dtype and element count. */
export interface ResolvedBuffer {
  native: object;
  dtype: DType;
  length: number;
  device: boolean;
}

/** Resolves a tensor argument; `role` names it in errors. */
export function resolveBuffer(tensor: Tensor, role: string): ResolvedBuffer {
  if (!ArrayBuffer.isView(tensor) && tensor instanceof DeviceTensor) {
    return { native: tensor.native, dtype: tensor.dtype, length: tensor.length, device: true };
  }
  const { array, dtype } = resolveTensor(tensor, role);
  return { native: array, dtype, length: array.length, device: false };
}

/** A contiguous range of a host or device tensor. */
export interface Span {
  readonly length: number;
  readonly dtype: DType;
  /** Elements [begin, begin + length) of this span, sharing memory. */
  sub(begin: number, length: number): Span;
  /** this <- source (same length). */
  copyFrom(source: Span): void;
  /** A new span holding a copy. */
  clone(): Span;
  /** Whether the two spans share any byte. */
  overlaps(other: Span): boolean;
  /** The tensor to hand to a collective. */
  readonly tensor: Tensor;
}

class HostSpan implements Span {
  constructor(
    readonly array: HostArray,
    readonly dtype: DType,
  ) {}
  get length(): number {
    return this.array.length;
  }
  get tensor(): Tensor {
    return { data: this.array, dtype: this.dtype };
  }
  sub(begin: number, length: number): Span {
    return new HostSpan(this.array.subarray(begin, begin + length) as HostArray, this.dtype);
  }
  copyFrom(source: Span): void {
    const from = (source as HostSpan).array;
    const same = from.buffer === this.array.buffer && from.byteOffset === this.array.byteOffset;
    if (!same) bytesOf(this.array).set(bytesOf(from));
  }
  clone(): Span {
    return new HostSpan(this.array.slice() as HostArray, this.dtype);
  }
  overlaps(other: Span): boolean {
    const a = this.array;
    const b = (other as HostSpan).array;
    return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
  }
}

class DeviceSpan implements Span {
  constructor(readonly device: DeviceTensor) {}
  get length(): number {
    return this.device.length;
  }
  get dtype(): DType {
    return this.device.dtype;
  }
  get tensor(): Tensor {
    return this.device;
  }
  sub(begin: number, length: number): Span {
    return new DeviceSpan(this.device.view(begin, length));
  }
  copyFrom(source: Span): void {
    const from = (source as DeviceSpan).device;
    // An identical range copies onto itself harmlessly; partial overlaps never occur here.
    if (from.native !== this.device.native) this.device.copyFrom(from);
  }
  clone(): Span {
    return new DeviceSpan(DeviceTensor.alloc(this.dtype, this.length, this.device.device).copyFrom(this.device));
  }
  overlaps(other: Span): boolean {
    // Offsets count from each view's allocation, and which allocation is not
    // visible here: intersecting ranges on one device count as overlapping
    // (at worst a small extra copy).
    const a = this.device;
    const b = (other as DeviceSpan).device;
    return a.device === b.device && a.offset < b.offset + b.length && b.offset < a.offset + a.length;
  }
}

/** The span of a whole tensor argument. */
export function spanOf(tensor: Tensor, role: string): Span {
  if (tensor instanceof DeviceTensor) return new DeviceSpan(tensor);
  const { array, dtype } = resolveTensor(tensor, role);
  return new HostSpan(array, dtype);
}

/** Throws unless both spans are host or both are device memory. */
export function sameKind(a: Span, b: Span, what: string): void {
  if (a instanceof DeviceSpan !== b instanceof DeviceSpan) {
    throw invalidArgument(`${what}: input and output must both be host tensors or both DeviceTensors`);
  }
}
