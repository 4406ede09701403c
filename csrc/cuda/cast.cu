// f32 <-> bf16 / f16 casts (narrowing rounds to nearest even; widening is exact).
#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

template <typename Dst, typename Src>
__global__ void CastKernel(Dst* dst, const Src* src, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i] = device::FromFloat<Dst>(device::ToFloat(src[i]));
  }
}

template <typename Dst, typename Src>
void Launch(const DeviceTensor& dst, const DeviceTensor& src, cudaStream_t stream) {
  const std::size_t n = dst.length();
  CastKernel<Dst, Src><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(
      static_cast<Dst*>(dst.data()), static_cast<const Src*>(src.data()), n);
  device::CheckLaunch("cast");
}

}  // namespace

void Cast(const DeviceTensor& dst, const DeviceTensor& src, const CudaStream& stream) {
  KernelArgs args("cast");
  args.Tensor(dst, "dst", stream)
      .Tensor(src, "src", stream)
      .DTypeIn(dst, "dst", {DType::kF32, DType::kBF16, DType::kF16})
      .DTypeIn(src, "src", {DType::kF32, DType::kBF16, DType::kF16})
      .SameLength(dst, "dst", src, "src")
      .Disjoint(dst, "dst", src, "src");
  const bool dstF32 = dst.dtype() == DType::kF32, srcF32 = src.dtype() == DType::kF32;
  if (dstF32 == srcF32) {
    args.Fail(std::string("casting ") + DTypeName(src.dtype()) + " to " + DTypeName(dst.dtype()) +
              " is not supported: use f32 -> bf16/f16 or bf16/f16 -> f32");
  }
  if (dst.length() == 0) return;
  DeviceGuard guard(stream.device());
  cudaStream_t s = stream.native();
  if (srcF32) {
    if (dst.dtype() == DType::kBF16) Launch<__nv_bfloat16, float>(dst, src, s);
    else Launch<__half, float>(dst, src, s);
  } else {
    if (src.dtype() == DType::kBF16) Launch<float, __nv_bfloat16>(dst, src, s);
    else Launch<float, __half>(dst, src, s);
  }
}

}  // namespace mics::cuda
