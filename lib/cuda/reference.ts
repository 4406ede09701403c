/**
 * CPU references of the CUDA kernels: the same formulas, operation by operation, in
 * IEEE single precision (every intermediate rounded with Math.fround). The kernels
 * are compiled without FMA contraction and use only correctly rounded operations
 * (+ - * / sqrt), and a double result of one such operation on floats rounds to the
 * same float as the single-precision operation, so these match the GPU bit for bit.
 * Slow (plain loops); for tests and for documenting the semantics.
 */
import { fromBFloat16Bits, fromFloat16Bits, toBFloat16Bits, toFloat16Bits } from '../core/dtypes';
import type { AdamWOptions, SgdOptions } from './device-tensor';

// Module-level bindings: global lookups inside hot loops are slow in vm contexts (jest).
const fr = Math.fround;
const { abs, sqrt } = Math;
const { isFinite } = Number;

export type FloatDTypeName = 'f32' | 'bf16' | 'f16';
export type HalfDTypeName = 'bf16' | 'f16';

/** Widens element i of a f32 / bf16 / f16 array (half types as Uint16Array bits). */
export function widen(data: Float32Array | Uint16Array, dtype: FloatDTypeName, i: number): number {
  if (dtype === 'f32') return data[i];
  return dtype === 'bf16' ? fromBFloat16Bits(data[i]) : fromFloat16Bits(data[i]);
}

/** Rounds a float to bf16 / f16 bits, nearest even. */
export function narrow(value: number, dtype: HalfDTypeName): number {
  return dtype === 'bf16' ? toBFloat16Bits(value) : toFloat16Bits(value);
}

/** y + alpha * x, element-wise (y f32). */
export function accumulateRef(y: Float32Array, x: Float32Array | Uint16Array, xDtype: FloatDTypeName, alpha: number): Float32Array {
  const a = fr(alpha);
  const out = new Float32Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = fr(y[i] + fr(a * widen(x, xDtype, i)));
  return out;
}

/** x * alpha for f32 / bf16 / f16 (computed in f32); f64 multiplies in double. */
export function scaleRef(x: Float32Array | Float64Array | Uint16Array, dtype: FloatDTypeName | 'f64', alpha: number) {
  if (dtype === 'f64') return (x as Float64Array).map((v) => v * alpha);
  const a = fr(alpha);
  if (dtype === 'f32') return (x as Float32Array).map((v) => fr(v * a));
  return (x as Uint16Array).map((_, i) => narrow(fr(widen(x as Uint16Array, dtype, i) * a), dtype));
}

/** AdamW hyper-parameters: the kernel's own options (torch.optim.AdamW's names and defaults). */
export type AdamWHyper = AdamWOptions;

/** The state one AdamW step reads and writes. */
export interface AdamWState {
  params: Float32Array;
  grads: Float32Array | Uint16Array;
  gradsDtype: FloatDTypeName;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/**
 * One AdamW step, PyTorch's formula (torch.optim.AdamW, amsgrad=False,
 * maximize=False). Scalars in double as PyTorch's Python floats, then float.
 * Returns new arrays; `half` is the updated params rounded to `halfDtype`.
 */
export function adamwRef(state: AdamWState, hyper: AdamWHyper, halfDtype?: HalfDTypeName) {
  const lr = hyper.lr ?? 1e-3;
  const beta1 = hyper.beta1 ?? 0.9;
  const beta2 = hyper.beta2 ?? 0.999;
  const eps = hyper.eps ?? 1e-8;
  const wd = hyper.weightDecay ?? 1e-2;
  const gradScale = hyper.gradScale ?? 1;
  const bc1 = 1 - beta1 ** hyper.step;
  const bc2 = 1 - beta2 ** hyper.step;
  const s = {
    gradScale: fr(gradScale),
    decay: fr(1 - lr * wd),
    w: fr(1 - beta1),
    beta2: fr(beta2),
    oneMinusBeta2: fr(1 - beta2),
    bc2Sqrt: fr(sqrt(bc2)),
    eps: fr(eps),
    negStepSize: fr(-(lr / bc1)),
  };
  const n = state.params.length;
  const params = new Float32Array(n);
  const expAvg = new Float32Array(n);
  const expAvgSq = new Float32Array(n);
  const half = halfDtype ? new Uint16Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    let g = widen(state.grads, state.gradsDtype, i);
    if (gradScale !== 1) g = fr(g * s.gradScale);
    let p = state.params[i];
    if (wd !== 0) p = fr(p * s.decay);
    let m = state.expAvg[i];
    m = abs(s.w) < 0.5 ? fr(m + fr(s.w * fr(g - m))) : fr(g - fr(fr(g - m) * fr(1 - s.w)));
    let v = fr(state.expAvgSq[i] * s.beta2);
    v = fr(v + fr(s.oneMinusBeta2 * fr(g * g)));
    const denom = fr(fr(fr(sqrt(v)) / s.bc2Sqrt) + s.eps);
    p = fr(p + fr(s.negStepSize * fr(m / denom)));
    params[i] = p;
    expAvg[i] = m;
    expAvgSq[i] = v;
    if (half && halfDtype) half[i] = narrow(p, halfDtype);
  }
  return { params, expAvg, expAvgSq, half };
}

/** SGD hyper-parameters: the kernel's own options (torch.optim.SGD's names and defaults). */
export type SgdHyper = SgdOptions;

/** One SGD step, PyTorch's formula (torch.optim.SGD, maximize=False). Returns new arrays. */
export function sgdRef(
  state: { params: Float32Array; grads: Float32Array | Uint16Array; gradsDtype: FloatDTypeName; momentumBuffer?: Float32Array },
  hyper: SgdHyper,
  halfDtype?: HalfDTypeName,
) {
  const lr = fr(-(hyper.lr ?? 1e-3));
  const momentum = hyper.momentum ?? 0;
  const wd = hyper.weightDecay ?? 0;
  const gradScale = hyper.gradScale ?? 1;
  const mom = fr(momentum);
  const oneMinusDampening = fr(1 - (hyper.dampening ?? 0));
  const n = state.params.length;
  const params = new Float32Array(n);
  const momentumBuffer = momentum !== 0 ? new Float32Array(n) : undefined;
  const half = halfDtype ? new Uint16Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    let d = widen(state.grads, state.gradsDtype, i);
    if (gradScale !== 1) d = fr(d * fr(gradScale));
    let p = state.params[i];
    if (wd !== 0) d = fr(d + fr(fr(wd) * p));
    if (momentumBuffer) {
      let b: number;
      if (hyper.step === 1) {
        b = d;
      } else {
        if (!state.momentumBuffer) throw new Error('sgdRef: momentumBuffer is required after step 1');
        b = fr(state.momentumBuffer[i] * mom);
        b = fr(b + fr(oneMinusDampening * d));
      }
      momentumBuffer[i] = b;
      d = hyper.nesterov ? fr(d + fr(mom * b)) : b;
    }
    p = fr(p + fr(lr * d));
    params[i] = p;
    if (half && halfDtype) half[i] = narrow(p, halfDtype);
  }
  return { params, momentumBuffer, half };
}

/** Sum of squares in double with Neumaier compensation (error about 2^-52 of the sum). */
export function sumOfSquaresRef(x: Float32Array | Uint16Array, dtype: FloatDTypeName): number {
  let sum = 0;
  let comp = 0;
  for (let i = 0; i < x.length; i++) {
    const v = widen(x, dtype, i);
    const sq = v * v; // exact: a float's square has at most 48 significant bits
    const t = sum + sq;
    comp += abs(sum) >= sq ? sum - t + sq : sq - t + sum;
    sum = t;
  }
  return sum + comp;
}

/** Whether any element is inf or NaN. */
export function hasNonFiniteRef(x: Float32Array | Float64Array | Uint16Array, dtype: FloatDTypeName | 'f64'): boolean {
  for (let i = 0; i < x.length; i++) {
    const v = dtype === 'f64' || dtype === 'f32' ? (x as Float32Array)[i] : widen(x as Uint16Array, dtype, i);
    if (!isFinite(v)) return true;
  }
  return false;
}
