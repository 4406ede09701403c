// y += alpha * x, with x in f32 or widened from bf16 / f16.
#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

template <typename X>
__global__ void AccumulateKernel(float* y, const X* x, std::size_t n, float alpha) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    y[i] = y[i] + alpha * device::ToFloat(x[i]);
  }
}

template <typename X>
void Launch(const DeviceTensor& y, const DeviceTensor& x, float alpha, cudaStream_t stream) {
  const std::size_t n = y.length();
  AccumulateKernel<X><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(
      static_cast<float*>(y.data()), static_cast<const X*>(x.data()), n, alpha);
  device::CheckLaunch("accumulate");
}

}  // namespace

void Accumulate(const DeviceTensor& y, const DeviceTensor& x, float alpha, const CudaStream& stream) {
  KernelArgs("accumulate")
      .Tensor(y, "y", stream)
      .Tensor(x, "x", stream)
      .DTypeIn(y, "y", {DType::kF32})
      .DTypeIn(x, "x", {DType::kF32, DType::kBF16, DType::kF16})
      .SameLength(y, "y", x, "x")
      .SameOrDisjoint(y, "y", x, "x");
  if (y.length() == 0) return;
  DeviceGuard guard(stream.device());
  switch (x.dtype()) {
    case DType::kF32: Launch<float>(y, x, alpha, stream.native()); break;
    case DType::kBF16: Launch<__nv_bfloat16>(y, x, alpha, stream.native()); break;
    default: Launch<__half>(y, x, alpha, stream.native()); break;
  }
}

}  // namespace mics::cuda
