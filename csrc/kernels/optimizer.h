// AdamW and SGD steps on fp32 master shards in host memory, optionally writing the
// bf16/f16 copy of the updated parameters in the same pass. The same arithmetic as
// the CUDA kernels (csrc/cuda/kernels.h has the formulas), in f32 without FMA
// contraction (the build passes -ffp-contract=off), so results match the GPU and
// lib/cuda/reference.ts bit for bit. Callers validate: pointers to `n` elements of
// the given dtypes, all ranges disjoint.
#pragma once

#include <cstddef>

#include "core/dtype.h"
#include "kernels/optimizer_scalars.h"

namespace mics::kernels {

// grads: f32, bf16 or f16. halfParams: nullptr or halfDtype (bf16 or f16) elements.
// Unsupported dtypes throw Error(kInvalidArgument).
void AdamW(float* params, const void* grads, DType gradsDtype, float* expAvg, float* expAvgSq, void* halfParams,
           DType halfDtype, std::size_t n, const AdamWScalars& scalars);

// momentumBuffer is read and written only when scalars.hasMomentum (it may be nullptr otherwise).
void Sgd(float* params, const void* grads, DType gradsDtype, float* momentumBuffer, void* halfParams,
         DType halfDtype, std::size_t n, const SgdScalars& scalars);

}  // namespace mics::kernels
