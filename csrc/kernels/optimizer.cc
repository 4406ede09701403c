#include "kernels/optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "kernels/float_convert.h"

namespace mics::kernels {

namespace {

// Grads and half copies of other widths are handled a block at a time: widen the
// block's grads into a stack buffer, run the f32 update, narrow the block's params.
// Each of the three loops then has one element width and vectorises (GCC 12 at -O3
// on SSE2 does not vectorise the fused loop once 16-bit loads or stores and the
// loop-invariant selects meet). The buffers stay in L1, so memory traffic is that of
// one fused pass.
constexpr std::size_t kBlock = 512;

// "No half-precision copy" in the templates below.
struct NoHalf {};

template <class G>
const float* WidenBlock(const typename G::Storage* __restrict g, float* __restrict tmp, std::size_t n) {
  if constexpr (std::is_same_v<G, F32>) {
    return g;
  } else {
    for (std::size_t i = 0; i < n; ++i) tmp[i] = G::Load(g[i]);
    return tmp;
  }
}

// half[offset + i] = narrow(p[i]); nothing for NoHalf (half is then nullptr).
template <class H>
void NarrowBlock(const float* __restrict p, uint16_t* half, std::size_t offset, std::size_t n) {
  if constexpr (!std::is_same_v<H, NoHalf>) {
    uint16_t* __restrict out = half + offset;
    for (std::size_t i = 0; i < n; ++i) out[i] = H::Store(p[i]);
  }
}

// The loop-invariant flags are if-converted or unswitched by the compiler; every
// branch computes the reference's formula operation by operation. The scalars come
// by value: a local copy cannot alias the arrays, so nothing is reloaded after stores.
void AdamWLoop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
               std::size_t n, const AdamWScalars s) {
  for (std::size_t i = 0; i < n; ++i) {
    float grad = g[i];
    if (s.scaleGrad) grad = grad * s.gradScale;
    float param = p[i];
    if (s.decoupledDecay) param = param * s.decay;  // param.mul_(1 - lr * weight_decay)
    // exp_avg.lerp_(grad, 1 - beta1), ATen's two-sided lerp.
    const float mi = s.lerpFromStart ? m[i] + s.lerpWeight * (grad - m[i])
                                     : grad - (grad - m[i]) * s.oneMinusLerpWeight;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    float vi = v[i] * s.beta2;
    vi = vi + s.oneMinusBeta2 * (grad * grad);
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    const float denom = std::sqrt(vi) / s.bc2Sqrt + s.eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    param = param + s.negStepSize * (mi / denom);
    p[i] = param;
    m[i] = mi;
    v[i] = vi;
  }
}

template <bool kMomentum>
void SgdLoop(float* __restrict p, const float* __restrict g, float* __restrict buf, std::size_t n,
             const SgdScalars s) {
  for (std::size_t i = 0; i < n; ++i) {
    float d = g[i];
    if (s.scaleGrad) d = d * s.gradScale;
    float param = p[i];
    if (s.hasWeightDecay) d = d + s.weightDecay * param;  // grad.add(param, alpha=weight_decay)
    if constexpr (kMomentum) {
      // Step 1: torch.clone(grad); later: buf.mul_(momentum).add_(grad, alpha=1 - dampening).
      const float b = s.firstStep ? d : buf[i] * s.momentum + s.oneMinusDampening * d;
      buf[i] = b;
      d = s.nesterov ? d + s.momentum * b : b;  // grad.add(buf, alpha=momentum) or buf
    }
    p[i] = param + s.negLr * d;  // param.add_(grad, alpha=-lr)
  }
}

template <class G, class H>
void AdamWBlocks(float* p, const typename G::Storage* g, float* m, float* v, uint16_t* half, std::size_t n,
                 const AdamWScalars& s) {
  alignas(64) float tmp[kBlock];
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t len = std::min(kBlock, n - b);
    AdamWLoop(p + b, WidenBlock<G>(g + b, tmp, len), m + b, v + b, len, s);
    NarrowBlock<H>(p + b, half, b, len);
  }
}

template <class G, class H>
void SgdBlocks(float* p, const typename G::Storage* g, float* buf, uint16_t* half, std::size_t n,
               const SgdScalars& s) {
  alignas(64) float tmp[kBlock];
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t len = std::min(kBlock, n - b);
    const float* grads = WidenBlock<G>(g + b, tmp, len);
    if (s.hasMomentum) SgdLoop<true>(p + b, grads, buf + b, len, s);
    else SgdLoop<false>(p + b, grads, nullptr, len, s);
    NarrowBlock<H>(p + b, half, b, len);
  }
}

[[noreturn]] void BadDType(const char* op, const char* role, DType dtype, const char* valid) {
  throw Error(ErrorCode::kInvalidArgument,
              std::string(op) + ": " + role + " has dtype " + DTypeName(dtype) + " but must be " + valid);
}

// Calls fn with the element tag of a f32 / bf16 / f16 gradient.
template <class Fn>
void WithGradType(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32: fn(F32{}); return;
    case DType::kBF16: fn(BF16{}); return;
    case DType::kF16: fn(F16{}); return;
    default: BadDType(op, "grads", dtype, "f32, bf16 or f16");
  }
}

// Calls fn with the element tag of the half copy (NoHalf without one).
template <class Fn>
void WithHalfType(const char* op, const void* half, DType dtype, Fn&& fn) {
  if (half == nullptr) return fn(NoHalf{});
  switch (dtype) {
    case DType::kBF16: fn(BF16{}); return;
    case DType::kF16: fn(F16{}); return;
    default: BadDType(op, "halfParams", dtype, "bf16 or f16");
  }
}

}  // namespace

void AdamW(float* params, const void* grads, DType gradsDtype, float* expAvg, float* expAvgSq, void* halfParams,
           DType halfDtype, std::size_t n, const AdamWScalars& s) {
  WithGradType("adamw", gradsDtype, [&](auto gradTag) {
    using G = decltype(gradTag);
    WithHalfType("adamw", halfParams, halfDtype, [&](auto halfTag) {
      using H = decltype(halfTag);
      AdamWBlocks<G, H>(params, static_cast<const typename G::Storage*>(grads), expAvg, expAvgSq,
                        static_cast<uint16_t*>(halfParams), n, s);
    });
  });
}

void Sgd(float* params, const void* grads, DType gradsDtype, float* momentumBuffer, void* halfParams,
         DType halfDtype, std::size_t n, const SgdScalars& s) {
  WithGradType("sgd", gradsDtype, [&](auto gradTag) {
    using G = decltype(gradTag);
    WithHalfType("sgd", halfParams, halfDtype, [&](auto halfTag) {
      using H = decltype(halfTag);
      SgdBlocks<G, H>(params, static_cast<const typename G::Storage*>(grads), momentumBuffer,
                      static_cast<uint16_t*>(halfParams), n, s);
    });
  });
}

}  // namespace mics::kernels
