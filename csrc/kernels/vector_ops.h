// Element-wise CPU kernels on host memory with the CUDA kernels' semantics
// (csrc/cuda/kernels.h): f32 arithmetic without FMA contraction, bf16/f16 widened
// exactly and narrowed to nearest even, so results match lib/cuda/reference.ts bit
// for bit (sumOfSquares excepted: its order of summation differs, see below).
// Callers validate lengths and aliasing; an unsupported dtype throws
// Error(kInvalidArgument) naming `role`'s dtype and the valid ones.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace mics::kernels {

// y[i] = y[i] + alpha * x[i]. y: f32; x: f32, bf16 or f16. x may be y itself (the
// same range) but must not partly overlap it.
void Accumulate(float* y, const void* x, DType xDtype, float alpha, std::size_t n);

// x[i] = x[i] * alpha: f32 and bf16/f16 in f32 (alpha rounded to float first), f64 in double.
void Scale(void* x, DType dtype, double alpha, std::size_t n);

// dst[i] = src[i] converted: f32 -> bf16/f16 (round to nearest even; NaN stays NaN;
// overflow becomes inf) or bf16/f16 -> f32 (exact). Disjoint ranges.
void Cast(void* dst, DType dstDtype, const void* src, DType srcDtype, std::size_t n);

// Sum of x[i]^2 (x f32, bf16 or f16) in double. Each square is exact in double;
// blocks of 1024 elements are summed in 8 interleaved lanes (128 terms each) that
// are then added in order, and the block sums are added with Neumaier compensation.
// All terms are non-negative, so the relative error is below (127 + 7 + 3) * 2^-53
// < 2^-45.9 (about 1.6e-14), independent of n and deterministic for given input.
double SumOfSquares(const void* x, DType dtype, std::size_t n);

// Whether x (f32, f64, bf16 or f16) holds an inf or NaN (tested on the exponent bits).
bool HasNonFinite(const void* x, DType dtype, std::size_t n);

}  // namespace mics::kernels
