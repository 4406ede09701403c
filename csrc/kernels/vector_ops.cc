#include "kernels/vector_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "kernels/float_convert.h"

namespace mics::kernels {

namespace {

[[noreturn]] void BadDType(const char* op, const char* role, DType dtype, const char* valid) {
  throw Error(ErrorCode::kInvalidArgument,
              std::string(op) + ": " + role + " has dtype " + DTypeName(dtype) + " but must be " + valid);
}

template <class X>
void AccumulateLoop(float* __restrict y, const typename X::Storage* __restrict x, float alpha, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = y[i] + alpha * X::Load(x[i]);
}

// x is y: y + alpha * y, element by element (no __restrict: the pointers alias).
void AccumulateSelf(float* y, float alpha, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = y[i] + alpha * y[i];
}

template <class T>
void ScaleLoop(typename T::Storage* __restrict x, float alpha, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] = T::Store(T::Load(x[i]) * alpha);
}

void ScaleF64(double* __restrict x, double alpha, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] = x[i] * alpha;
}

template <class Dst, class Src>
void CastLoop(typename Dst::Storage* __restrict dst, const typename Src::Storage* __restrict src, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = Dst::Store(Src::Load(src[i]));
}

constexpr std::size_t kSumLanes = 8;
constexpr std::size_t kSumBlock = 1024;

// Sum of squares of one block (len <= kSumBlock) in kSumLanes interleaved lanes,
// then the lanes and the tail in order. Fixed lanes: the result does not depend on
// how the compiler vectorises them.
template <class T>
double BlockSumOfSquares(const typename T::Storage* __restrict x, std::size_t len) {
  double lane[kSumLanes] = {};
  const std::size_t whole = len - len % kSumLanes;
  for (std::size_t i = 0; i < whole; i += kSumLanes) {
    for (std::size_t j = 0; j < kSumLanes; ++j) {
      const double v = T::Load(x[i + j]);
      lane[j] += v * v;  // exact square: a float has 24 significant bits
    }
  }
  double sum = 0;
  for (std::size_t j = 0; j < kSumLanes; ++j) sum += lane[j];
  for (std::size_t i = whole; i < len; ++i) {
    const double v = T::Load(x[i]);
    sum += v * v;
  }
  return sum;
}

template <class T>
double SumOfSquaresLoop(const typename T::Storage* __restrict x, std::size_t n) {
  double sum = 0, comp = 0;
  for (std::size_t start = 0; start < n; start += kSumBlock) {
    const double block = BlockSumOfSquares<T>(x + start, std::min(kSumBlock, n - start));
    // Neumaier: the rounding error of each addition is collected in comp.
    const double t = sum + block;
    comp += std::fabs(sum) >= std::fabs(block) ? (sum - t) + block : (block - t) + sum;
    sum = t;
  }
  return sum + comp;
}

// Non-finite means all exponent bits set. Blocks of 4096: stop at the first block
// that has one, without a branch per element.
template <typename Bits, Bits kExponent>
bool HasNonFiniteLoop(const Bits* __restrict x, std::size_t n) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t end = std::min(n, start + kBlock);
    Bits found = 0;
    for (std::size_t i = start; i < end; ++i) found |= static_cast<Bits>((x[i] & kExponent) == kExponent);
    if (found != 0) return true;
  }
  return false;
}

}  // namespace

void Accumulate(float* y, const void* x, DType xDtype, float alpha, std::size_t n) {
  if (static_cast<const void*>(y) == x && xDtype == DType::kF32) return AccumulateSelf(y, alpha, n);
  switch (xDtype) {
    case DType::kF32: return AccumulateLoop<F32>(y, static_cast<const float*>(x), alpha, n);
    case DType::kBF16: return AccumulateLoop<BF16>(y, static_cast<const uint16_t*>(x), alpha, n);
    case DType::kF16: return AccumulateLoop<F16>(y, static_cast<const uint16_t*>(x), alpha, n);
    default: BadDType("accumulate", "x", xDtype, "f32, bf16 or f16");
  }
}

void Scale(void* x, DType dtype, double alpha, std::size_t n) {
  const float alpha32 = static_cast<float>(alpha);
  switch (dtype) {
    case DType::kF32: return ScaleLoop<F32>(static_cast<float*>(x), alpha32, n);
    case DType::kF64: return ScaleF64(static_cast<double*>(x), alpha, n);
    case DType::kBF16: return ScaleLoop<BF16>(static_cast<uint16_t*>(x), alpha32, n);
    case DType::kF16: return ScaleLoop<F16>(static_cast<uint16_t*>(x), alpha32, n);
    default: BadDType("scale", "x", dtype, "f32, f64, bf16 or f16");
  }
}

void Cast(void* dst, DType dstDtype, const void* src, DType srcDtype, std::size_t n) {
  auto* half = static_cast<uint16_t*>(dst);
  const auto* halfIn = static_cast<const uint16_t*>(src);
  if (srcDtype == DType::kF32 && dstDtype == DType::kBF16) return CastLoop<BF16, F32>(half, static_cast<const float*>(src), n);
  if (srcDtype == DType::kF32 && dstDtype == DType::kF16) return CastLoop<F16, F32>(half, static_cast<const float*>(src), n);
  if (srcDtype == DType::kBF16 && dstDtype == DType::kF32) return CastLoop<F32, BF16>(static_cast<float*>(dst), halfIn, n);
  if (srcDtype == DType::kF16 && dstDtype == DType::kF32) return CastLoop<F32, F16>(static_cast<float*>(dst), halfIn, n);
  throw Error(ErrorCode::kInvalidArgument, std::string("cast: casting ") + DTypeName(srcDtype) + " to " +
                                               DTypeName(dstDtype) +
                                               " is not supported: use f32 -> bf16/f16 or bf16/f16 -> f32");
}

double SumOfSquares(const void* x, DType dtype, std::size_t n) {
  switch (dtype) {
    case DType::kF32: return SumOfSquaresLoop<F32>(static_cast<const float*>(x), n);
    case DType::kBF16: return SumOfSquaresLoop<BF16>(static_cast<const uint16_t*>(x), n);
    case DType::kF16: return SumOfSquaresLoop<F16>(static_cast<const uint16_t*>(x), n);
    default: BadDType("sumOfSquares", "x", dtype, "f32, bf16 or f16");
  }
}

bool HasNonFinite(const void* x, DType dtype, std::size_t n) {
  switch (dtype) {
    case DType::kF32: return HasNonFiniteLoop<uint32_t, 0x7f800000u>(static_cast<const uint32_t*>(x), n);
    case DType::kF64:
      return HasNonFiniteLoop<uint64_t, 0x7ff0000000000000ull>(static_cast<const uint64_t*>(x), n);
    case DType::kBF16: return HasNonFiniteLoop<uint16_t, 0x7f80u>(static_cast<const uint16_t*>(x), n);
    case DType::kF16: return HasNonFiniteLoop<uint16_t, 0x7c00u>(static_cast<const uint16_t*>(x), n);
    default: BadDType("hasNonFinite", "x", dtype, "f32, f64, bf16 or f16");
  }
}

}  // namespace mics::kernels
