// Device-side helpers shared by the .cu files: element conversions and launch shape.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "cuda/cuda_error.h"

namespace mics::cuda::device {

// Widening loads: bf16 and f16 convert to f32 exactly.
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }

// Narrowing stores: round to nearest even.
template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half_rn(v); }

// Marks "no half-precision copy to write" in templated kernels.
struct NoOutput {};

template <typename H>
__device__ __forceinline__ void StoreHalf(H* out, std::size_t i, float v) { out[i] = FromFloat<H>(v); }
template <>
__device__ __forceinline__ void StoreHalf<NoOutput>(NoOutput*, std::size_t, float) {}

constexpr unsigned kThreads = 256;
// Grid-stride loops cover any length; this many blocks keep every SM of an A100/H100
// busy with several resident blocks.
constexpr unsigned kMaxBlocks = 4096;

inline unsigned BlocksFor(std::size_t n) {
  std::size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), kMaxBlocks));
}

// Throws the launch error (bad configuration, no kernel image for this GPU, ...).
inline void CheckLaunch(const char* op) { CheckCuda(cudaGetLastError(), std::string(op) + ": kernel launch"); }

}  // namespace mics::cuda::device
