// x *= alpha (f32, f64; bf16 / f16 computed in f32 and rounded to nearest even).
#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

template <typename T>
__global__ void ScaleKernel(T* x, std::size_t n, float alpha) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    x[i] = device::FromFloat<T>(device::ToFloat(x[i]) * alpha);
  }
}

__global__ void ScaleF64Kernel(double* x, std::size_t n, double alpha) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    x[i] = x[i] * alpha;
  }
}

template <typename T>
void Launch(const DeviceTensor& x, float alpha, cudaStream_t stream) {
  const std::size_t n = x.length();
  ScaleKernel<T><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(static_cast<T*>(x.data()), n, alpha);
  device::CheckLaunch("scale");
}

}  // namespace

void Scale(const DeviceTensor& x, double alpha, const CudaStream& stream) {
  KernelArgs("scale").Tensor(x, "x", stream).DTypeIn(x, "x", {DType::kF32, DType::kF64, DType::kBF16, DType::kF16});
  const std::size_t n = x.length();
  if (n == 0) return;
  DeviceGuard guard(stream.device());
  const float alpha32 = static_cast<float>(alpha);
  switch (x.dtype()) {
    case DType::kF32: Launch<float>(x, alpha32, stream.native()); break;
    case DType::kBF16: Launch<__nv_bfloat16>(x, alpha32, stream.native()); break;
    case DType::kF16: Launch<__half>(x, alpha32, stream.native()); break;
    default:
      ScaleF64Kernel<<<device::BlocksFor(n), device::kThreads, 0, stream.native()>>>(static_cast<double*>(x.data()),
                                                                                      n, alpha);
      device::CheckLaunch("scale");
      break;
  }
}

}  // namespace mics::cuda
