/**
 * The copies between tfjs tensors and the engine's flat buffers, counted.
 *
 * Parameters in (once per optimizer step and variable): tfjs tensors are immutable
 * and own their memory, while the engine's gathered buffer is reused for the next
 * gather, so every variable gets a new tensor holding a copy of its slice. Backends
 * that copy in `write()` (wasm: into WebAssembly memory) take the engine's view
 * directly: one copy. The CPU backend would keep a reference to the view, so the
 * adapter copies first: also one copy. Half-precision and device buffers are widened
 * or downloaded into a fresh array, which is then the one copy handed over (plus the
 * wasm backend's own).
 *
 * Gradients out (every micro-step and variable): `dataSync()` returns the CPU
 * backend's own array (no copy; other backends copy out of their memory), then the
 * engine copies it into the unit's flat gradient buffer (one copy). A unit holds
 * several variables back to back, so that copy cannot be avoided.
 */
import type * as tfjs from '@tensorflow/tfjs';
import { fromFloat16Bits } from '../../core/dtypes';
import { DeviceTensor } from '../../cuda/device-tensor';
import type { FloatDType } from '../../engine/backend';
import type { EngineTensor } from '../../engine/types';
import { tf } from './tfjs';

/** The copies in one direction, since the trainer was created. */
export interface CopyCounters {
  /** Bytes copied (each copy of an element counts its bytes once). */
  bytes: number;
  /** Number of array copies. */
  copies: number;
  /** Milliseconds spent copying (and converting), on the JS thread. */
  ms: number;
}

/** The copies between tfjs and the engine, by direction. */
export interface CopyStatistics {
  /** Gathered parameters into the tf.Variables. */
  parametersIn: CopyCounters;
  /** Gradients from tf.variableGrads into the engine's gradient buffers. */
  gradientsOut: CopyCounters;
}

/** Backends whose write() copies the values at once (a view of an engine buffer can be handed over). */
const COPYING_WRITE = new Set(['wasm']);
/** Backends whose dataSync() returns the tensor's own array instead of a copy. */
const OWN_ARRAY_READ = new Set(['cpu']);

export function emptyCopyStatistics(): CopyStatistics {
  return { parametersIn: { bytes: 0, copies: 0, ms: 0 }, gradientsOut: { bytes: 0, copies: 0, ms: 0 } };
}

function count(counters: CopyCounters, bytes: number): void {
  counters.bytes += bytes;
  counters.copies += 1;
}

/** f32 values of half-precision bits (a new array). */
function widen(bits: Uint16Array, dtype: FloatDType): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === 'bf16') {
    // bf16 is the top half of an f32: shift the bits into place
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) words[i] = bits[i] << 16;
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = fromFloat16Bits(bits[i]);
  }
  return out;
}

/**
 * Replaces a variable's value with the engine's gathered values (a view into the
 * engine's buffer, in the gather dtype), counting every copy.
 */
export function writeVariable(variable: tfjs.Variable, view: EngineTensor, dtype: FloatDType, counters: CopyCounters): void {
  const started = performance.now();
  let values: Float32Array | Uint16Array = view instanceof DeviceTensor ? (view.download() as Float32Array | Uint16Array) : view;
  let fresh = view instanceof DeviceTensor;
  if (fresh) count(counters, values.byteLength);
  if (values instanceof Uint16Array) {
    values = widen(values, dtype);
    fresh = true;
    count(counters, values.byteLength);
  }
  const copying = COPYING_WRITE.has(tf.getBackend());
  if (!fresh && !copying) {
    values = values.slice();
    count(counters, values.byteLength);
  }
  if (copying) count(counters, values.byteLength);
  const tensor = tf.tensor(values, variable.shape, 'float32');
  variable.assign(tensor);
  tensor.dispose(); // the variable holds its own reference to the data
  counters.ms += performance.now() - started;
}

/** A gradient's values as f32 on the host (the backend's own array, or its copy on other backends), counted. */
export function readGradient(gradient: tfjs.Tensor, counters: CopyCounters): Float32Array {
  const started = performance.now();
  const values = gradient.dataSync() as Float32Array;
  if (!OWN_ARRAY_READ.has(tf.getBackend())) count(counters, values.byteLength);
  counters.ms += performance.now() - started;
  return values;
}

/** Copies a gradient into the engine's gradient buffer (a host view), counted. */
export function copyGradient(target: Float32Array, values: Float32Array, counters: CopyCounters): void {
  const started = performance.now();
  target.set(values);
  count(counters, values.byteLength);
  counters.ms += performance.now() - started;
}

/** Counts a copy the engine makes itself (a cast into a half-precision buffer, an upload to the device). */
export function countEngineCopy(values: Float32Array, counters: CopyCounters): void {
  count(counters, values.byteLength);
}
