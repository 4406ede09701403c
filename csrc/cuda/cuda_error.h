// CUDA runtime errors -> mics::Error. Internal to csrc/cuda (it includes the CUDA
// runtime header); the public headers of csrc/cuda name no CUDA types.
//
// Codes: kUnavailable where the machine lacks what CUDA needs (no driver, no device,
// a driver too old for this runtime, no kernel image for this GPU's architecture);
// kSystem where the device or OS refused a resource (out of memory, not permitted,
// not supported, ECC); kInternal otherwise (a bug or a failed kernel). The message
// always carries the CUDA error name: "cudaMalloc(4096 bytes) on device 0:
// cudaErrorMemoryAllocation: out of memory".
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"

namespace mics::cuda {

ErrorCode ErrorCodeForCuda(cudaError_t err);

// Builds the Error for err; clears CUDA's last-error slot for non-sticky errors.
Error CudaError(cudaError_t err, const std::string& what);

// Throws CudaError(err, what) unless err is cudaSuccess.
inline void CheckCuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw CudaError(err, what);
}
inline void CheckCuda(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) throw CudaError(err, what);
}

}  // namespace mics::cuda
