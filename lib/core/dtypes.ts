/**
 * Element types, reductions and host tensors.
 *
 * A host tensor is a TypedArray, or a view `{data, dtype?, offset?, length?}` of one
 * (offset and length in elements). Views never copy: they become `subarray`s.
 * bf16 and f16 live in Uint16Array and always need an explicit dtype.
 */

/** Element types every backend supports. */
export type DType = 'f32' | 'f64' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i32' | 'i64';
/** Reductions; f16/bf16 accumulate in f32, integer sums wrap. */
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'prod';

/** The TypedArrays that can carry a tensor. */
export type HostArray = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

/** A zero-copy view of part of a TypedArray, with an explicit dtype where needed. */
export interface TensorView {
  data: HostArray;
  /** Required for Uint16Array (f16 or bf16); otherwise must agree with the array type. */
  dtype?: DType;
  /** First element of the view (default 0). */
  offset?: number;
  /** Number of elements (default: to the end of `data`). */
  length?: number;
}

/** Anything a collective accepts as a host buffer. */
export type HostTensor = HostArray | TensorView;

export const DTYPES: readonly DType[] = ['f32', 'f64', 'f16', 'bf16', 'i8', 'u8', 'i32', 'i64'];
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'avg', 'max', 'min', 'prod'];

const ELEMENT_BYTES: Record<DType, number> = { f32: 4, f64: 8, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4, i64: 8 };

/** Bytes per element of a dtype. */
export function elementBytes(dtype: DType): number {
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(ELEMENT_BYTES, dtype)) {
    throw invalidArgument(`elementBytes: dtype ${describeValue(dtype)} is not valid: use one of ${DTYPES.join(', ')}`);
  }
  return ELEMENT_BYTES[dtype];
}

import { describeValue, invalidArgument, valueText } from './errors';

/** The dtype an array's class implies, subclasses included; undefined for Uint16Array (f16 or bf16: the caller must say). */
function dtypeOfArray(data: HostArray): DType | undefined {
  for (const [Type, dtype] of NATURAL_DTYPES) {
    if (data instanceof Type) return dtype;
  }
  return undefined;
}

/** The TypedArray constructor that holds each dtype (f16 and bf16 as their bits). */
export const ARRAY_TYPES = {
  f32: Float32Array,
  f64: Float64Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i8: Int8Array,
  u8: Uint8Array,
  i32: Int32Array,
  i64: BigInt64Array,
} as const;

/** The TypedArray of each dtype (f16 and bf16 as their bits in a Uint16Array). */
export interface HostArrayTypes {
  f32: Float32Array;
  f64: Float64Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i8: Int8Array;
  u8: Uint8Array;
  i32: Int32Array;
  i64: BigInt64Array;
}

/** The TypedArray that holds a dtype (f16 and bf16 as their bits in a Uint16Array). */
export type HostArrayOf<D extends DType> = HostArrayTypes[D];

/** A tensor resolved to the exact TypedArray range and dtype handed to the addon. */
export interface ResolvedTensor {
  array: HostArray;
  dtype: DType;
}

function isView(t: HostTensor): t is TensorView {
  return !ArrayBuffer.isView(t) && typeof t === 'object' && t !== null && 'data' in t;
}

/**
 * Refuses memory a collective cannot safely hold on to while it runs on another
 * thread: a SharedArrayBuffer (other threads may write it mid-op; growable ones
 * may move), a resizable ArrayBuffer (shrinking it mid-op unmaps pages the
 * progress thread is reading), and a detached one (its memory is gone).
 */
function checkBacking(data: ArrayBufferView, role: string): void {
  const buffer = data.buffer;
  // The common case first, cheaply (small collectives check two arrays per call):
  // a fixed-length ArrayBuffer with memory behind it.
  if (buffer instanceof ArrayBuffer && !isResizable(buffer) && data.byteLength !== 0) return;
  if (typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer) {
    throw invalidArgument(
      `${role}: a TypedArray over a SharedArrayBuffer is not supported: use an ArrayBuffer-backed array or allocHost()`,
    );
  }
  if (isResizable(buffer)) {
    throw invalidArgument(
      `${role}: a TypedArray over a resizable ArrayBuffer (maxByteLength ${valueText(intrinsic(maxByteLengthGetter, buffer))}) is not supported: ` +
        'it could shrink while an op reads it; use a fixed-length ArrayBuffer or allocHost()',
    );
  }
  if (data.byteLength === 0 && isDetached(buffer as ArrayBuffer)) {
    throw invalidArgument(`${role}: the TypedArray's ArrayBuffer is detached (transferred or freed): its memory is gone`);
  }
}

// ArrayBuffer.prototype's own getters, not the buffer's properties: an own
// `resizable` property (or a getter that throws) must not decide, or break, the check.
const resizableGetter = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;
const maxByteLengthGetter = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'maxByteLength')?.get;

/** The getter's value for `buffer`; undefined where this Node lacks it or `buffer` is no ArrayBuffer. */
function intrinsic(getter: (() => unknown) | undefined, buffer: ArrayBufferLike): unknown {
  if (getter === undefined) return undefined;
  try {
    return getter.call(buffer);
  } catch {
    return undefined; // a SharedArrayBuffer, or an object that only claims to be an ArrayBuffer
  }
}

function isResizable(buffer: ArrayBufferLike): boolean {
  return intrinsic(resizableGetter, buffer) === true;
}

/** Node 20 has no ArrayBuffer.prototype.detached; constructing a view over a detached buffer throws. */
function isDetached(buffer: ArrayBuffer): boolean {
  try {
    new Uint8Array(buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

// The TypedArray classes that imply their dtype (all of ARRAY_TYPES but Uint16Array,
// which holds f16 and bf16 alike): keyed by the exact class, the common case of
// resolveTensor is one lookup (subclasses such as Buffer take the full path).
const NATURAL_DTYPES = new Map<Function, DType>(
  (Object.entries(ARRAY_TYPES) as [DType, (typeof ARRAY_TYPES)[DType]][])
    .filter(([, Type]) => Type !== Uint16Array)
    .map(([dtype, Type]) => [Type, dtype]),
);

/** Resolves a tensor argument; `role` names it in errors ("input", "output"). */
export function resolveTensor(tensor: HostTensor, role: string): ResolvedTensor {
  // Per-call cost matters for small collectives, which run this twice per call.
  if (ArrayBuffer.isView(tensor)) {
    const dtype = NATURAL_DTYPES.get(tensor.constructor);
    if (dtype !== undefined) {
      checkBacking(tensor, role);
      return { array: tensor as HostArray, dtype };
    }
  }
  const view: TensorView = isView(tensor) ? tensor : { data: tensor as HostArray };
  const { data } = view;
  if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    throw invalidArgument(`${role} must be a TypedArray or {data: TypedArray, dtype?, offset?, length?}`);
  }
  checkBacking(data, role);
  const natural = dtypeOfArray(data);
  if (natural === undefined && !(data instanceof Uint16Array)) {
    throw invalidArgument(
      `${role}: ${data.constructor.name} is not supported: use Float32Array, Float64Array, Uint16Array (f16/bf16), ` +
        'Int8Array, Uint8Array, Int32Array or BigInt64Array',
    );
  }
  const dtype = view.dtype ?? natural;
  if (dtype === undefined) {
    throw invalidArgument(`${role}: a Uint16Array needs an explicit dtype: pass {data, dtype: 'f16' | 'bf16'}`);
  }
  if (!DTYPES.includes(dtype)) {
    throw invalidArgument(`${role}: dtype '${valueText(dtype)}' is not valid: use one of ${DTYPES.join(', ')}`);
  }
  const fits = dtype === 'f16' || dtype === 'bf16' ? data instanceof Uint16Array : natural === dtype;
  if (!fits) {
    throw invalidArgument(`${role}: dtype '${dtype}' needs a ${ARRAY_TYPES[dtype].name}, got ${data.constructor.name}`);
  }
  const offset: unknown = view.offset ?? 0;
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset > data.length) {
    throw invalidArgument(`${role}: offset ${valueText(offset)} is not valid: use an integer in [0, ${data.length}]`);
  }
  const length: unknown = view.length ?? data.length - offset;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || offset + length > data.length) {
    throw invalidArgument(`${role}: length ${valueText(length)} is not valid at offset ${offset}: use an integer in [0, ${data.length - offset}]`);
  }
  const array = offset === 0 && length === data.length ? data : (data.subarray(offset, offset + length) as HostArray);
  return { array, dtype };
}

/** The bytes of a view (no copy): for byte-wise copies between same-dtype views. */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

// ---- half-precision conversions (round to nearest even), for callers and tests ----

function checkNumber(what: string, value: unknown): void {
  if (typeof value !== 'number') throw invalidArgument(`${what}: ${describeValue(value)} is not valid: use a number`);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> bfloat16 bits. */
export function toBFloat16Bits(value: number): number {
  checkNumber('toBFloat16Bits', value);
  f32[0] = value;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float. */
export function fromBFloat16Bits(bits: number): number {
  checkNumber('fromBFloat16Bits', bits);
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** float -> IEEE binary16 bits. */
export function toFloat16Bits(value: number): number {
  checkNumber('toFloat16Bits', value);
  f32[0] = value;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    u32[0] = abs;
    const scaled = f32[0] * 16777216;
    let q = Math.floor(scaled);
    const rest = scaled - q;
    if (rest > 0.5 || (rest === 0.5 && (q & 1) === 1)) q += 1;
    return sign | q;
  }
  const mant = abs & 0x7fffff;
  const exp = (abs >>> 23) - 112;
  let half = (exp << 10) | (mant >>> 13);
  const dropped = mant & 0x1fff;
  if (dropped > 0x1000 || (dropped === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** IEEE binary16 bits -> float. */
export function fromFloat16Bits(bits: number): number {
  checkNumber('fromFloat16Bits', bits);
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
