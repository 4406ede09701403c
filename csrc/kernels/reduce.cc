#include "kernels/reduce.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/half.h"

namespace mics::kernels {

namespace {

// Storage type -> accumulator type and conversions. Half types are stored as uint16_t.
template <DType D> struct Traits;
template <> struct Traits<DType::kF32> { using Store = float; using Acc = float; };
template <> struct Traits<DType::kF64> { using Store = double; using Acc = double; };
template <> struct Traits<DType::kI8> { using Store = int8_t; using Acc = int8_t; };
template <> struct Traits<DType::kU8> { using Store = uint8_t; using Acc = uint8_t; };
template <> struct Traits<DType::kI32> { using Store = int32_t; using Acc = int32_t; };
template <> struct Traits<DType::kI64> { using Store = int64_t; using Acc = int64_t; };
template <> struct Traits<DType::kF16> { using Store = uint16_t; using Acc = float; };
template <> struct Traits<DType::kBF16> { using Store = uint16_t; using Acc = float; };

template <DType D>
inline typename Traits<D>::Acc Widen(typename Traits<D>::Store v) {
  if constexpr (D == DType::kF16) return F16ToFloat(v);
  else if constexpr (D == DType::kBF16) return BF16ToFloat(v);
  else return v;
}

template <DType D>
inline typename Traits<D>::Store Narrow(typename Traits<D>::Acc v) {
  if constexpr (D == DType::kF16) return FloatToF16(v);
  else if constexpr (D == DType::kBF16) return FloatToBF16(v);
  else return v;
}

// Wrapping integer arithmetic: do it in the unsigned type (no UB on overflow).
template <typename T>
inline T Add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
inline T Mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    // uint8_t would promote to int: multiply in unsigned int width or wider.
    using W = std::conditional_t<(sizeof(U) < sizeof(unsigned)), unsigned, U>;
    return static_cast<T>(static_cast<W>(static_cast<U>(a)) * static_cast<W>(static_cast<U>(b)));
  } else {
    return a * b;
  }
}

template <DType D, ReduceOp Op>
void ReduceLoop(void* accRaw, const void* srcRaw, std::size_t n) {
  using S = typename Traits<D>::Store;
  using A = typename Traits<D>::Acc;
  A* __restrict acc = static_cast<A*>(accRaw);
  const S* __restrict src = static_cast<const S*>(srcRaw);
  for (std::size_t i = 0; i < n; ++i) {
    A v = Widen<D>(src[i]);
    if constexpr (Op == ReduceOp::kSum || Op == ReduceOp::kAvg) acc[i] = Add(acc[i], v);
    else if constexpr (Op == ReduceOp::kProd) acc[i] = Mul(acc[i], v);
    else if constexpr (Op == ReduceOp::kMax) acc[i] = v > acc[i] ? v : acc[i];
    else acc[i] = v < acc[i] ? v : acc[i];
  }
}

template <DType D, ReduceOp Op>
void ReduceTwoLoop(void* outRaw, const void* aRaw, const void* bRaw, std::size_t n) {
  using T = typename Traits<D>::Store;
  static_assert(std::is_same_v<T, typename Traits<D>::Acc>, "halves reduce through the accumulator");
  T* __restrict out = static_cast<T*>(outRaw);
  const T* __restrict a = static_cast<const T*>(aRaw);
  const T* __restrict b = static_cast<const T*>(bRaw);
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (Op == ReduceOp::kSum || Op == ReduceOp::kAvg) out[i] = Add(a[i], b[i]);
    else if constexpr (Op == ReduceOp::kProd) out[i] = Mul(a[i], b[i]);
    else if constexpr (Op == ReduceOp::kMax) out[i] = b[i] > a[i] ? b[i] : a[i];
    else out[i] = b[i] < a[i] ? b[i] : a[i];
  }
}

template <DType D>
void ReduceTwoDispatchOp(ReduceOp op, void* out, const void* a, const void* b, std::size_t n) {
  if constexpr (D == DType::kF16 || D == DType::kBF16) {
    throw Error(ErrorCode::kInternal, "ReduceTwo does not take half types");
  } else {
    switch (op) {
      case ReduceOp::kSum: return ReduceTwoLoop<D, ReduceOp::kSum>(out, a, b, n);
      case ReduceOp::kAvg: return ReduceTwoLoop<D, ReduceOp::kAvg>(out, a, b, n);
      case ReduceOp::kProd: return ReduceTwoLoop<D, ReduceOp::kProd>(out, a, b, n);
      case ReduceOp::kMax: return ReduceTwoLoop<D, ReduceOp::kMax>(out, a, b, n);
      case ReduceOp::kMin: return ReduceTwoLoop<D, ReduceOp::kMin>(out, a, b, n);
    }
  }
}

template <DType D>
void LoadLoop(void* accRaw, const void* srcRaw, std::size_t n) {
  using S = typename Traits<D>::Store;
  using A = typename Traits<D>::Acc;
  if constexpr (std::is_same_v<S, A>) {
    std::memcpy(accRaw, srcRaw, n * sizeof(S));
  } else {
    A* acc = static_cast<A*>(accRaw);
    const S* src = static_cast<const S*>(srcRaw);
    for (std::size_t i = 0; i < n; ++i) acc[i] = Widen<D>(src[i]);
  }
}

template <DType D>
void StoreLoop(ReduceOp op, int nranks, void* dstRaw, const void* accRaw, std::size_t n) {
  using S = typename Traits<D>::Store;
  using A = typename Traits<D>::Acc;
  S* dst = static_cast<S*>(dstRaw);
  const A* acc = static_cast<const A*>(accRaw);
  if (op == ReduceOp::kAvg) {
    const A divisor = static_cast<A>(nranks);
    for (std::size_t i = 0; i < n; ++i) dst[i] = Narrow<D>(static_cast<A>(acc[i] / divisor));
  } else if constexpr (std::is_same_v<S, A>) {
    if (static_cast<const void*>(dst) != accRaw) std::memmove(dst, acc, n * sizeof(S));
  } else {
    for (std::size_t i = 0; i < n; ++i) dst[i] = Narrow<D>(acc[i]);
  }
}

template <DType D>
void ReduceDispatchOp(ReduceOp op, void* acc, const void* src, std::size_t n) {
  switch (op) {
    case ReduceOp::kSum: return ReduceLoop<D, ReduceOp::kSum>(acc, src, n);
    case ReduceOp::kAvg: return ReduceLoop<D, ReduceOp::kAvg>(acc, src, n);
    case ReduceOp::kProd: return ReduceLoop<D, ReduceOp::kProd>(acc, src, n);
    case ReduceOp::kMax: return ReduceLoop<D, ReduceOp::kMax>(acc, src, n);
    case ReduceOp::kMin: return ReduceLoop<D, ReduceOp::kMin>(acc, src, n);
  }
}

// Runs STATEMENT with `D` bound to the runtime dtype as a constant expression.
#define MICS_DISPATCH_DTYPE(dtype, STATEMENT)                                      \
  switch (dtype) {                                                                \
    case DType::kF32: { constexpr DType D = DType::kF32; STATEMENT; return; }     \
    case DType::kF64: { constexpr DType D = DType::kF64; STATEMENT; return; }     \
    case DType::kF16: { constexpr DType D = DType::kF16; STATEMENT; return; }     \
    case DType::kBF16: { constexpr DType D = DType::kBF16; STATEMENT; return; }   \
    case DType::kI8: { constexpr DType D = DType::kI8; STATEMENT; return; }       \
    case DType::kU8: { constexpr DType D = DType::kU8; STATEMENT; return; }       \
    case DType::kI32: { constexpr DType D = DType::kI32; STATEMENT; return; }     \
    case DType::kI64: { constexpr DType D = DType::kI64; STATEMENT; return; }     \
  }                                                                               \
  throw Error(ErrorCode::kInternal, "unknown dtype")

}  // namespace

void LoadAccumulator(DType dtype, void* acc, const void* src, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, LoadLoop<D>(acc, src, count));
}

void ReduceIntoAccumulator(DType dtype, ReduceOp op, void* acc, const void* src, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, ReduceDispatchOp<D>(op, acc, src, count));
}

void ReduceTwo(DType dtype, ReduceOp op, void* out, const void* a, const void* b, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, ReduceTwoDispatchOp<D>(op, out, a, b, count));
}

void StoreAccumulator(DType dtype, ReduceOp op, int nranks, void* dst, const void* acc,
                      std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, StoreLoop<D>(op, nranks, dst, acc, count));
}

}  // namespace mics::kernels
