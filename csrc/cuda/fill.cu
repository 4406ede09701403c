// DeviceTensor::Fill: one element pattern repeated (memset for 1-byte types).
#include "cuda/fill.h"

#include <cstdint>

#include "cuda/kernel_util.cuh"

namespace mics::cuda {

namespace {

template <typename T>
__global__ void FillKernel(T* dst, std::size_t n, T value) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i] = value;
  }
}

template <typename T>
void Launch(void* dst, std::size_t n, uint64_t pattern, cudaStream_t stream) {
  FillKernel<T><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(static_cast<T*>(dst), n,
                                                                        static_cast<T>(pattern));
  device::CheckLaunch("DeviceTensor.fill");
}

}  // namespace

void LaunchFillPattern(void* dst, std::size_t count, std::size_t elementBytes, uint64_t pattern,
                       CUstream_st* stream) {
  if (count == 0) return;
  switch (elementBytes) {
    case 1:
      CheckCuda(cudaMemsetAsync(dst, static_cast<int>(pattern & 0xff), count, stream),
                "DeviceTensor.fill: cudaMemsetAsync");
      return;
    case 2: Launch<uint16_t>(dst, count, pattern, stream); return;
    case 4: Launch<uint32_t>(dst, count, pattern, stream); return;
    default: Launch<unsigned long long>(dst, count, pattern, stream); return;
  }
}

}  // namespace mics::cuda
