// AdamW on fp32 master shards, writing the bf16/f16 parameter copy in the same pass.
// The formula (PyTorch's, operation by operation) is in kernels.h.
#include <cmath>

#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

using kernels::AdamWScalars;

template <typename G, typename H>
__global__ void AdamWKernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, H* __restrict__ half, std::size_t n, AdamWScalars s) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    float grad = device::ToFloat(g[i]);
    if (s.scaleGrad) grad = grad * s.gradScale;
    float param = p[i];
    if (s.decoupledDecay) param = param * s.decay;  // param.mul_(1 - lr * weight_decay)
    // exp_avg.lerp_(grad, 1 - beta1), ATen's two-sided lerp.
    float mi = m[i];
    const float w = s.lerpWeight;
    mi = (fabsf(w) < 0.5f) ? mi + w * (grad - mi) : grad - (grad - mi) * (1.0f - w);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    float vi = v[i] * s.beta2;
    vi = vi + s.oneMinusBeta2 * (grad * grad);
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    const float denom = sqrtf(vi) / s.bc2Sqrt + s.eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    param = param + s.negStepSize * (mi / denom);
    p[i] = param;
    m[i] = mi;
    v[i] = vi;
    device::StoreHalf<H>(half, i, param);
  }
}

template <typename G, typename H>
void Launch(const DeviceTensor& p, const DeviceTensor& g, const DeviceTensor& m, const DeviceTensor& v,
            const DeviceTensor& half, const AdamWScalars& s, cudaStream_t stream) {
  const std::size_t n = p.length();
  AdamWKernel<G, H><<<device::BlocksFor(n), device::kThreads, 0, stream>>>(
      static_cast<float*>(p.data()), static_cast<const G*>(g.data()), static_cast<float*>(m.data()),
      static_cast<float*>(v.data()), static_cast<H*>(half.data()), n, s);
  device::CheckLaunch("adamw");
}

template <typename G>
void LaunchForHalf(const DeviceTensor& p, const DeviceTensor& g, const DeviceTensor& m, const DeviceTensor& v,
                   const DeviceTensor& half, const AdamWScalars& s, cudaStream_t stream) {
  if (!half.defined()) Launch<G, device::NoOutput>(p, g, m, v, half, s, stream);
  else if (half.dtype() == DType::kBF16) Launch<G, __nv_bfloat16>(p, g, m, v, half, s, stream);
  else Launch<G, __half>(p, g, m, v, half, s, stream);
}

}  // namespace

void AdamW(const DeviceTensor& params, const DeviceTensor& grads, const DeviceTensor& expAvg,
           const DeviceTensor& expAvgSq, const DeviceTensor& halfParams, const AdamWOptions& o,
           const CudaStream& stream) {
  KernelArgs args("adamw");
  args.Tensor(params, "params", stream)
      .Tensor(grads, "grads", stream)
      .Tensor(expAvg, "expAvg", stream)
      .Tensor(expAvgSq, "expAvgSq", stream)
      .DTypeIn(params, "params", {DType::kF32})
      .DTypeIn(grads, "grads", {DType::kF32, DType::kBF16, DType::kF16})
      .DTypeIn(expAvg, "expAvg", {DType::kF32})
      .DTypeIn(expAvgSq, "expAvgSq", {DType::kF32})
      .SameLength(params, "params", grads, "grads")
      .SameLength(params, "params", expAvg, "expAvg")
      .SameLength(params, "params", expAvgSq, "expAvgSq")
      .Disjoint(params, "params", grads, "grads")
      .Disjoint(params, "params", expAvg, "expAvg")
      .Disjoint(params, "params", expAvgSq, "expAvgSq")
      .Disjoint(grads, "grads", expAvg, "expAvg")
      .Disjoint(grads, "grads", expAvgSq, "expAvgSq")
      .Disjoint(expAvg, "expAvg", expAvgSq, "expAvgSq");
  if (halfParams.defined()) {
    args.Tensor(halfParams, "halfParams", stream)
        .DTypeIn(halfParams, "halfParams", {DType::kBF16, DType::kF16})
        .SameLength(params, "params", halfParams, "halfParams")
        .Disjoint(halfParams, "halfParams", params, "params")
        .Disjoint(halfParams, "halfParams", grads, "grads")
        .Disjoint(halfParams, "halfParams", expAvg, "expAvg")
        .Disjoint(halfParams, "halfParams", expAvgSq, "expAvgSq");
  }
  kernels::CheckAdamWOptions(o, "adamw");
  if (params.length() == 0) return;
  DeviceGuard guard(stream.device());

  // Host scalars in double, as PyTorch computes them from Python floats.
  const AdamWScalars s = kernels::MakeAdamWScalars(o);

  cudaStream_t st = stream.native();
  switch (grads.dtype()) {
    case DType::kF32: LaunchForHalf<float>(params, grads, expAvg, expAvgSq, halfParams, s, st); break;
    case DType::kBF16: LaunchForHalf<__nv_bfloat16>(params, grads, expAvg, expAvgSq, halfParams, s, st); break;
    default: LaunchForHalf<__half>(params, grads, expAvg, expAvgSq, halfParams, s, st); break;
  }
}

}  // namespace mics::cuda
