// Element-wise reduction loops used by every CPU algorithm. They work in the
// accumulator type (f32 for f16/bf16, the type itself otherwise):
//   LoadAccumulator:   acc  = widen(src)
//   ReduceIntoAccumulator: acc = acc (op) widen(src)
//   StoreAccumulator:  dst  = narrow(finalize(acc)), finalize divides by nranks for avg
// Integer sums wrap (two's complement), as NCCL's do. Each is compiled for the
// baseline target and for AVX2, picked at run time.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace mics::kernels {

void LoadAccumulator(DType dtype, void* acc, const void* src, std::size_t count);
void ReduceIntoAccumulator(DType dtype, ReduceOp op, void* acc, const void* src, std::size_t count);
// out = finalize(s[0] (op) s[1] (op) ... (op) s[n-1]), left to right, in one pass
// over the sources (halves widened to f32 and narrowed once at the end, as the
// three calls above would); n >= 2; avg divides by nsources. `out` may be one of
// the sources.
void ReduceMany(DType dtype, ReduceOp op, void* out, const void* const* sources, int nsources, std::size_t count);
// dst += src, element-wise (a two-source ReduceMany sum into dst): what accumulating
// a reduction's result into an existing output adds.
void AddInto(DType dtype, void* dst, const void* src, std::size_t count);
void StoreAccumulator(DType dtype, ReduceOp op, int nranks, void* dst, const void* acc,
                      std::size_t count);

// Which compilation of these loops runs: "avx2" (x86-64 with AVX2, unless
// MICS_KERNELS=baseline) or "baseline".
const char* ReduceKernelTarget();

}  // namespace mics::kernels
