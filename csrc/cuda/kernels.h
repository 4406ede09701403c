// Host-callable launchers of the CUDA kernels the engine uses. Plain C++ (no CUDA
// types): csrc/napi and the engine call these. Every launcher validates its
// arguments (dtypes, lengths, devices, aliasing: Error kInvalidArgument naming the
// argument and what is valid), then enqueues the work on `stream` and returns
// without waiting. A tensor's device must be the stream's device.
//
// Arithmetic is IEEE single precision with no contraction into FMA (the .cu files
// are compiled with --fmad=false), so results are reproducible bit for bit against
// the formulas below evaluated in float (lib/cuda/reference.ts does exactly that).
// bf16/f16 values widen to f32 exactly and are written back rounded to nearest even.
#pragma once

#include <cstdint>

#include "cuda/cuda_stream.h"
#include "cuda/device_tensor.h"
#include "kernels/optimizer_scalars.h"

namespace mics::cuda {

// y[i] = y[i] + alpha * x[i]. y: f32; x: f32, bf16 or f16 (widened to f32); same
// length. x may be y itself (same range) but not partly overlap it.
void Accumulate(const DeviceTensor& y, const DeviceTensor& x, float alpha, const CudaStream& stream);

// x[i] = x[i] * alpha. x: f32, f64 (alpha as double), bf16 or f16 (computed in f32,
// rounded to nearest even).
void Scale(const DeviceTensor& x, double alpha, const CudaStream& stream);

// dst[i] = src[i] converted: f32 -> bf16 / f16 (round to nearest even; NaN stays NaN,
// overflow becomes inf), bf16 / f16 -> f32 (exact). Same length, no overlap.
void Cast(const DeviceTensor& dst, const DeviceTensor& src, const CudaStream& stream);

// AdamW and SGD hyper-parameters (torch.optim's names and defaults), checked and turned
// into the kernels' f32 scalars by the same host code as the CPU kernels.
using AdamWOptions = kernels::AdamWOptions;
using SgdOptions = kernels::SgdOptions;

// One AdamW step on fp32 master shards, exactly PyTorch's AdamW
// (torch.optim.AdamW, amsgrad=False, maximize=False; _single_tensor_adam):
//   g     = grad * gradScale                         (skipped when gradScale == 1)
//   p     = p * (1 - lr * weightDecay)                (skipped when weightDecay == 0)
//   m     = lerp(m, g, 1 - beta1)                     (ATen lerp: w < 0.5 ? m + w*(g - m)
//                                                                         : g - (g - m)*(1 - w))
//   v     = v * beta2 + (1 - beta2) * (g * g)
//   bc1   = 1 - beta1^step,  bc2 = 1 - beta2^step     (in double, on the host)
//   denom = sqrt(v) / sqrt(bc2) + eps
//   p     = p + (-(lr / bc1)) * (m / denom)
//   half[i] = round_to_nearest_even(p)                (when halfParams is defined)
// Scalars are computed in double on the host then rounded to float, like PyTorch's
// Python-float hyper-parameters. params, expAvg, expAvgSq: f32; grads: f32, bf16 or
// f16; halfParams: bf16 or f16 or undefined; all the same length and disjoint.
void AdamW(const DeviceTensor& params, const DeviceTensor& grads, const DeviceTensor& expAvg,
           const DeviceTensor& expAvgSq, const DeviceTensor& halfParams, const AdamWOptions& options,
           const CudaStream& stream);

// One SGD step, exactly PyTorch's SGD (torch.optim.SGD, maximize=False):
//   d = grad * gradScale                                     (skipped when gradScale == 1)
//   d = d + weightDecay * p                                   (when weightDecay != 0)
//   if momentum != 0:
//     buf = step == 1 ? d : buf * momentum + (1 - dampening) * d
//     d   = nesterov ? d + momentum * buf : buf
//   p = p + (-lr) * d;  half[i] = round_to_nearest_even(p)
// PyTorch initialises the buffer with a copy of d when it has none (its first step):
// pass step = 1 exactly then. momentumBuffer (f32) may be undefined when momentum == 0.
// nesterov needs momentum > 0 and dampening == 0 (as PyTorch).
void Sgd(const DeviceTensor& params, const DeviceTensor& grads, const DeviceTensor& momentumBuffer,
         const DeviceTensor& halfParams, const SgdOptions& options, const CudaStream& stream);

// Sum of squares of x (f32, bf16 or f16) for gradient-norm clipping across shards:
// out[0] = sum (or out[0] += sum when accumulate). out: f32 or f64, length >= 1; the
// accumulation is done in out's dtype. Two passes: per-block partial sums (fixed grid,
// no atomics: deterministic for a given length) then one block adds the partials.
void SumOfSquares(const DeviceTensor& x, const DeviceTensor& out, bool accumulate, const CudaStream& stream);

// Sets flag[0] = 1 when x (f32, f64, bf16 or f16) holds an inf or NaN. Without
// `accumulate` flag[0] is first set to 0; with it, earlier findings stay (check many
// tensors into one flag). flag: i32 or f32, length >= 1.
void CheckNonFinite(const DeviceTensor& x, const DeviceTensor& flag, bool accumulate, const CudaStream& stream);

}  // namespace mics::cuda
