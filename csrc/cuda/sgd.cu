// SGD with momentum (PyTorch semantics: dampening, nesterov, weight decay) on fp32
// master shards, writing the bf16/f16 parameter copy in the same pass. The formula is
// in kernels.h.
#include <cmath>

#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

using kernels::SgdScalars;

template <typename G, typename H>
__global__ void SgdKernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ buf,
                          H* __restrict__ half, std::size_t n, SgdScalars s) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    float d = device::ToFloat(g[i]);
    if (s.scaleGrad) d = d * s.gradScale;
    float param = p[i];
    if (s.hasWeightDecay) d = d + s.weightDecay * param;  // grad.add(param, alpha=weight_decay)
    if (s.hasMomentum) {
      float b;
      if (s.firstStep) {
        b = d;  // torch.clone(grad).detach()
      } else {
        b = buf[i] * s.momentum;           // buf.mul_(momentum)
        b = b + s.oneMinusDampening * d;   // .add_(grad, alpha=1 - dampening)
      }
      buf[i] = b;
      d = s.nesterov ? d + s.momentum * b : b;  // grad.add(buf, alpha=momentum) or buf
    }
    param = param + s.negLr * d;  // param.add_(grad, alpha=-lr)
    p[i] = param;
    device::StoreHalf<H>(half, i, param);
  }
}

template <typename G, typename H>
void Launch(const DeviceTensor& p, const DeviceTensor& g, float* buf, const DeviceTensor& half,
            const SgdScalars& s, cudaStream_t stream) {
  const std::size_t n = p.length();
  SgdKernel<G, H><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(
      static_cast<float*>(p.data()), static_cast<const G*>(g.data()), buf,
      static_cast<H*>(half.data()), n, s);
  device::CheckLaunch("sgd");
}

template <typename G>
void LaunchForHalf(const DeviceTensor& p, const DeviceTensor& g, float* buf, const DeviceTensor& half,
                   const SgdScalars& s, cudaStream_t stream) {
  if (!half.defined()) Launch<G, device::NoOutput>(p, g, buf, half, s, stream);
  else if (half.dtype() == DType::kBF16) Launch<G, __nv_bfloat16>(p, g, buf, half, s, stream);
  else Launch<G, __half>(p, g, buf, half, s, stream);
}

}  // namespace

void Sgd(const DeviceTensor& params, const DeviceTensor& grads, const DeviceTensor& momentumBuffer,
         const DeviceTensor& halfParams, const SgdOptions& o, const CudaStream& stream) {
  KernelArgs args("sgd");
  args.Tensor(params, "params", stream)
      .Tensor(grads, "grads", stream)
      .DTypeIn(params, "params", {DType::kF32})
      .DTypeIn(grads, "grads", {DType::kF32, DType::kBF16, DType::kF16})
      .SameLength(params, "params", grads, "grads")
      .Disjoint(params, "params", grads, "grads");
  kernels::CheckSgdOptions(o, "sgd");
  const bool hasMomentum = o.momentum != 0.0;
  if (hasMomentum) {
    if (!momentumBuffer.defined()) args.Fail("momentumBuffer is required when momentum != 0");
    args.Tensor(momentumBuffer, "momentumBuffer", stream)
        .DTypeIn(momentumBuffer, "momentumBuffer", {DType::kF32})
        .SameLength(params, "params", momentumBuffer, "momentumBuffer")
        .Disjoint(momentumBuffer, "momentumBuffer", params, "params")
        .Disjoint(momentumBuffer, "momentumBuffer", grads, "grads");
  }
  if (halfParams.defined()) {
    args.Tensor(halfParams, "halfParams", stream)
        .DTypeIn(halfParams, "halfParams", {DType::kBF16, DType::kF16})
        .SameLength(params, "params", halfParams, "halfParams")
        .Disjoint(halfParams, "halfParams", params, "params")
        .Disjoint(halfParams, "halfParams", grads, "grads");
    if (hasMomentum) args.Disjoint(halfParams, "halfParams", momentumBuffer, "momentumBuffer");
  }
  if (params.length() == 0) return;
  DeviceGuard guard(stream.device());

  const SgdScalars s = kernels::MakeSgdScalars(o);

  float* buf = hasMomentum ? static_cast<float*>(momentumBuffer.data()) : nullptr;  // unused without momentum
  cudaStream_t st = stream.native();
  switch (grads.dtype()) {
    case DType::kF32: LaunchForHalf<float>(params, grads, buf, halfParams, s, st); break;
    case DType::kBF16: LaunchForHalf<__nv_bfloat16>(params, grads, buf, halfParams, s, st); break;
    default: LaunchForHalf<__half>(params, grads, buf, halfParams, s, st); break;
  }
}

}  // namespace mics::cuda
