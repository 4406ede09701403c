// Inf/NaN check: sets a device flag when any element is not finite.
#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

__device__ __forceinline__ bool Finite(double v) { return isfinite(v); }
template <typename T>
__device__ __forceinline__ bool Finite(T v) { return isfinite(device::ToFloat(v)); }

template <typename T, typename F>
__global__ void NonFiniteKernel(const T* __restrict__ x, std::size_t n, F* flag) {
  bool bad = false;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    bad |= !Finite(x[i]);
  }
  // One store per block that found something; every writer stores the same value.
  if (__syncthreads_or(bad) && threadIdx.x == 0) *flag = F(1);
}

template <typename F>
void Launch(const DeviceTensor& x, F* flag, cudaStream_t stream) {
  const std::size_t n = x.length();
  const unsigned blocks = device::BlocksFor(n);
  switch (x.dtype()) {
    case DType::kF32:
      NonFiniteKernel<float, F><<<blocks, device::kThreads, 0, stream>>>(static_cast<const float*>(x.data()), n, flag);
      break;
    case DType::kF64:
      NonFiniteKernel<double, F><<<blocks, device::kThreads, 0, stream>>>(static_cast<const double*>(x.data()), n,
                                                                          flag);
      break;
    case DType::kBF16:
      NonFiniteKernel<__nv_bfloat16, F><<<blocks, device::kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x.data()), n, flag);
      break;
    default:
      NonFiniteKernel<__half, F><<<blocks, device::kThreads, 0, stream>>>(static_cast<const __half*>(x.data()), n,
                                                                          flag);
      break;
  }
  device::CheckLaunch("checkNonFinite");
}

}  // namespace

void CheckNonFinite(const DeviceTensor& x, const DeviceTensor& flag, bool accumulate, const CudaStream& stream) {
  KernelArgs("checkNonFinite")
      .Tensor(x, "x", stream)
      .Tensor(flag, "flag", stream)
      .DTypeIn(x, "x", {DType::kF32, DType::kF64, DType::kBF16, DType::kF16})
      .DTypeIn(flag, "flag", {DType::kI32, DType::kF32})
      .MinLength(flag, "flag", 1)
      .Disjoint(x, "x", flag, "flag");
  DeviceGuard guard(stream.device());
  if (!accumulate) {
    CheckCuda(cudaMemsetAsync(flag.data(), 0, ElementSize(flag.dtype()), stream.native()),
              "checkNonFinite: cudaMemsetAsync");
  }
  if (x.length() == 0) return;
  if (flag.dtype() == DType::kI32) Launch<int>(x, static_cast<int*>(flag.data()), stream.native());
  else Launch<float>(x, static_cast<float*>(flag.data()), stream.native());
}

}  // namespace mics::cuda
