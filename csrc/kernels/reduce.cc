#include "kernels/reduce.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "kernels/float_convert.h"

// Every loop below is written once and compiled twice: for the baseline target
// (SSE2 on x86-64) and, on x86-64, for AVX2, chosen at run time (the addon is
// built for baseline x86-64). always_inline puts each loop into the public entry
// point of each target, so the AVX2 entry really runs AVX2 code. The half
// conversions are float_convert.h's branch-free ones, so half loops vectorise too.
#define MICS_INLINE inline __attribute__((always_inline))

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

// Bit for bit core/half.h's conversions (float_convert.h says how that was checked).
template <DType D>
MICS_INLINE typename Traits<D>::Acc Widen(typename Traits<D>::Store v) {
  if constexpr (D == DType::kF16) return F16::Load(v);
  else if constexpr (D == DType::kBF16) return BF16::Load(v);
  else return v;
}

template <DType D>
MICS_INLINE typename Traits<D>::Store Narrow(typename Traits<D>::Acc v) {
  if constexpr (D == DType::kF16) return F16::Store(v);
  else if constexpr (D == DType::kBF16) return BF16::Store(v);
  else return v;
}

// Wrapping integer arithmetic: do it in the unsigned type (no UB on overflow).
template <typename T>
MICS_INLINE T Add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
MICS_INLINE T Mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    // uint8_t would promote to int: multiply in unsigned int width or wider.
    using W = std::conditional_t<(sizeof(U) < sizeof(unsigned)), unsigned, U>;
    return static_cast<T>(static_cast<W>(static_cast<U>(a)) * static_cast<W>(static_cast<U>(b)));
  } else {
    return a * b;
  }
}

// Floating-point max/min as IEEE 754-2019 maximum/minimum (and torch, and JS
// Math.max): a NaN anywhere gives NaN, and -0 < +0. Both make the result
// independent of the order in which ranks are combined, which differs between
// the shared-memory (rank order) and ring (ring order) algorithms. Written
// branch-free so the loops still vectorise: equal values differ only as +-0,
// where AND of the bits picks +0 for max and OR picks -0 for min.
template <typename T>
MICS_INLINE T FloatBits(T a, T b, bool isMax) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U x, y;
  std::memcpy(&x, &a, sizeof(T));
  std::memcpy(&y, &b, sizeof(T));
  U r = isMax ? (x & y) : (x | y);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

template <bool IsMax, typename T>
MICS_INLINE T MaxMin(T acc, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    T r = IsMax ? (v > acc ? v : acc) : (v < acc ? v : acc);  // a NaN acc stays
    r = v == acc ? FloatBits(acc, v, IsMax) : r;
    return v != v ? v : r;  // a NaN v wins
  } else {
    return IsMax ? (v > acc ? v : acc) : (v < acc ? v : acc);
  }
}

template <ReduceOp Op, typename T>
MICS_INLINE T Combine(T acc, T v) {
  if constexpr (Op == ReduceOp::kSum || Op == ReduceOp::kAvg) return Add(acc, v);
  else if constexpr (Op == ReduceOp::kProd) return Mul(acc, v);
  else if constexpr (Op == ReduceOp::kMax) return MaxMin<true>(acc, v);
  else return MaxMin<false>(acc, v);
}

template <DType D, ReduceOp Op>
MICS_INLINE void ReduceLoop(void* accRaw, const void* srcRaw, std::size_t n) {
  using S = typename Traits<D>::Store;
  using A = typename Traits<D>::Acc;
  A* __restrict acc = static_cast<A*>(accRaw);
  const S* __restrict src = static_cast<const S*>(srcRaw);
  for (std::size_t i = 0; i < n; ++i) acc[i] = Combine<Op>(acc[i], Widen<D>(src[i]));
}

// Block by block: a block's accumulator lives in registers while every source is
// read once, then it is stored once (so `out` may alias a source). Halves widen
// into an f32 block and narrow once at the end. avg divides by nsources there.
template <DType D, ReduceOp Op>
MICS_INLINE void ReduceManyLoop(void* outRaw, const void* const* sources, int nsources, std::size_t n) {
  using S = typename Traits<D>::Store;
  using A = typename Traits<D>::Acc;
  constexpr std::size_t kBlock = 256 / sizeof(A);
  S* out = static_cast<S*>(outRaw);
  const A divisor = static_cast<A>(nsources);
  for (std::size_t i = 0; i < n; i += kBlock) {
    const std::size_t m = n - i < kBlock ? n - i : kBlock;
    A acc[kBlock];
    const S* a = static_cast<const S*>(sources[0]) + i;
    const S* b = static_cast<const S*>(sources[1]) + i;
    if (m == kBlock) {  // constant trip counts: the compiler keeps acc in vector registers
      for (std::size_t j = 0; j < kBlock; ++j) acc[j] = Combine<Op>(Widen<D>(a[j]), Widen<D>(b[j]));
      for (int r = 2; r < nsources; ++r) {
        const S* s = static_cast<const S*>(sources[r]) + i;
        for (std::size_t j = 0; j < kBlock; ++j) acc[j] = Combine<Op>(acc[j], Widen<D>(s[j]));
      }
      if constexpr (Op == ReduceOp::kAvg) {
        for (std::size_t j = 0; j < kBlock; ++j) out[i + j] = Narrow<D>(static_cast<A>(acc[j] / divisor));
      } else {
        for (std::size_t j = 0; j < kBlock; ++j) out[i + j] = Narrow<D>(acc[j]);
      }
    } else {
      for (std::size_t j = 0; j < m; ++j) acc[j] = Combine<Op>(Widen<D>(a[j]), Widen<D>(b[j]));
      for (int r = 2; r < nsources; ++r) {
        const S* s = static_cast<const S*>(sources[r]) + i;
        for (std::size_t j = 0; j < m; ++j) acc[j] = Combine<Op>(acc[j], Widen<D>(s[j]));
      }
      if constexpr (Op == ReduceOp::kAvg) {
        for (std::size_t j = 0; j < m; ++j) out[i + j] = Narrow<D>(static_cast<A>(acc[j] / divisor));
      } else {
        for (std::size_t j = 0; j < m; ++j) out[i + j] = Narrow<D>(acc[j]);
      }
    }
  }
}

template <DType D>
MICS_INLINE void ReduceManyDispatchOp(ReduceOp op, void* out, const void* const* sources, int nsources, std::size_t n) {
  if (nsources < 2) throw Error(ErrorCode::kInternal, "ReduceMany needs at least two sources");
  switch (op) {
    case ReduceOp::kSum: return ReduceManyLoop<D, ReduceOp::kSum>(out, sources, nsources, n);
    case ReduceOp::kAvg: return ReduceManyLoop<D, ReduceOp::kAvg>(out, sources, nsources, n);
    case ReduceOp::kProd: return ReduceManyLoop<D, ReduceOp::kProd>(out, sources, nsources, n);
    case ReduceOp::kMax: return ReduceManyLoop<D, ReduceOp::kMax>(out, sources, nsources, n);
    case ReduceOp::kMin: return ReduceManyLoop<D, ReduceOp::kMin>(out, sources, nsources, n);
  }
}

template <DType D>
MICS_INLINE void LoadLoop(void* accRaw, const void* srcRaw, std::size_t n) {
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
MICS_INLINE void StoreLoop(ReduceOp op, int nranks, void* dstRaw, const void* accRaw, std::size_t n) {
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
MICS_INLINE void ReduceDispatchOp(ReduceOp op, void* acc, const void* src, std::size_t n) {
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

// One body per entry point, instantiated for each target below.
MICS_INLINE void LoadImpl(DType dtype, void* acc, const void* src, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, LoadLoop<D>(acc, src, count));
}
MICS_INLINE void ReduceIntoImpl(DType dtype, ReduceOp op, void* acc, const void* src, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, ReduceDispatchOp<D>(op, acc, src, count));
}
MICS_INLINE void ReduceManyImpl(DType dtype, ReduceOp op, void* out, const void* const* sources, int nsources,
                                std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, ReduceManyDispatchOp<D>(op, out, sources, nsources, count));
}
MICS_INLINE void StoreImpl(DType dtype, ReduceOp op, int nranks, void* dst, const void* acc, std::size_t count) {
  MICS_DISPATCH_DTYPE(dtype, StoreLoop<D>(op, nranks, dst, acc, count));
}

#define MICS_KERNEL_SET(SUFFIX, ATTRIBUTES)                                                                        \
  ATTRIBUTES void Load##SUFFIX(DType dtype, void* acc, const void* src, std::size_t count) {                     \
    LoadImpl(dtype, acc, src, count);                                                                            \
  }                                                                                                              \
  ATTRIBUTES void ReduceInto##SUFFIX(DType dtype, ReduceOp op, void* acc, const void* src, std::size_t count) {  \
    ReduceIntoImpl(dtype, op, acc, src, count);                                                                  \
  }                                                                                                              \
  ATTRIBUTES void ReduceMany##SUFFIX(DType dtype, ReduceOp op, void* out, const void* const* sources,            \
                                     int nsources, std::size_t count) {                                          \
    ReduceManyImpl(dtype, op, out, sources, nsources, count);                                                    \
  }                                                                                                              \
  ATTRIBUTES void Store##SUFFIX(DType dtype, ReduceOp op, int nranks, void* dst, const void* acc,                \
                                std::size_t count) {                                                             \
    StoreImpl(dtype, op, nranks, dst, acc, count);                                                               \
  }

MICS_KERNEL_SET(Baseline, )
#if defined(__x86_64__)
MICS_KERNEL_SET(Avx2, __attribute__((target("avx2"))))

// bf16 sums, averages and products by hand: 8 lanes per register, widening by a
// shift and narrowing with BF16::Store's rounding (ties to even, NaN quieted), so
// the bits equal the loops above; max and min keep the generic loop (their
// NaN and signed-zero rules).
__attribute__((target("avx2"))) inline __m256 LoadBf16x8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

__attribute__((target("avx2"))) inline void StoreBf16x8(uint16_t* p, __m256 value) {
  const __m256i u = _mm256_castps_si256(value);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i bits = _mm256_blendv_epi8(rounded, quiet, nan);  // each lane < 2^16: packs without saturating
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm_packus_epi32(_mm256_castsi256_si128(bits), _mm256_extracti128_si256(bits, 1)));
}

template <ReduceOp Op>
__attribute__((target("avx2"))) inline __m256 CombineBf16x8(__m256 acc, __m256 v) {
  if constexpr (Op == ReduceOp::kProd) return _mm256_mul_ps(acc, v);
  else return _mm256_add_ps(acc, v);
}

// Blocks of 32 elements (4 registers), every source read once per block, in order.
template <ReduceOp Op>
__attribute__((target("avx2"))) void ReduceManyBf16Avx2(void* outRaw, const void* const* sources, int nsources,
                                                         std::size_t n) {
  uint16_t* out = static_cast<uint16_t*>(outRaw);
  const __m256 divisor = _mm256_set1_ps(static_cast<float>(nsources));
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint16_t* a = static_cast<const uint16_t*>(sources[0]) + i;
    const uint16_t* b = static_cast<const uint16_t*>(sources[1]) + i;
    __m256 acc[4];
    for (int k = 0; k < 4; ++k) acc[k] = CombineBf16x8<Op>(LoadBf16x8(a + 8 * k), LoadBf16x8(b + 8 * k));
    for (int r = 2; r < nsources; ++r) {
      const uint16_t* s = static_cast<const uint16_t*>(sources[r]) + i;
      for (int k = 0; k < 4; ++k) acc[k] = CombineBf16x8<Op>(acc[k], LoadBf16x8(s + 8 * k));
    }
    for (int k = 0; k < 4; ++k) {
      if constexpr (Op == ReduceOp::kAvg) acc[k] = _mm256_div_ps(acc[k], divisor);
      StoreBf16x8(out + i + 8 * k, acc[k]);
    }
  }
  if (i < n) {  // the tail, through the generic loop
    thread_local std::vector<const void*> rest;
    rest.resize(nsources);
    for (int r = 0; r < nsources; ++r) rest[r] = static_cast<const uint16_t*>(sources[r]) + i;
    ReduceManyLoop<DType::kBF16, Op>(out + i, rest.data(), nsources, n - i);
  }
}

__attribute__((target("avx2"))) void ReduceManyAvx2Fast(DType dtype, ReduceOp op, void* out,
                                                         const void* const* sources, int nsources, std::size_t count) {
  if (dtype == DType::kBF16 && nsources >= 2) {
    switch (op) {
      case ReduceOp::kSum: return ReduceManyBf16Avx2<ReduceOp::kSum>(out, sources, nsources, count);
      case ReduceOp::kAvg: return ReduceManyBf16Avx2<ReduceOp::kAvg>(out, sources, nsources, count);
      case ReduceOp::kProd: return ReduceManyBf16Avx2<ReduceOp::kProd>(out, sources, nsources, count);
      default: break;
    }
  }
  ReduceManyAvx2(dtype, op, out, sources, nsources, count);
}
#endif

}  // namespace

const char* ReduceKernelTarget() {
#if defined(__x86_64__)
  // MICS_KERNELS=baseline keeps the baseline loops (for comparisons).
  static const bool avx2 = [] {
    const char* env = std::getenv("MICS_KERNELS");
    return __builtin_cpu_supports("avx2") && !(env && std::strcmp(env, "baseline") == 0);
  }();
  return avx2 ? "avx2" : "baseline";
#else
  return "baseline";
#endif
}

#if defined(__x86_64__)
#define MICS_PICK(NAME, ...) \
  (ReduceKernelTarget()[0] == 'a' ? NAME##Avx2(__VA_ARGS__) : NAME##Baseline(__VA_ARGS__))
#else
#define MICS_PICK(NAME, ...) NAME##Baseline(__VA_ARGS__)
#endif

void LoadAccumulator(DType dtype, void* acc, const void* src, std::size_t count) {
  MICS_PICK(Load, dtype, acc, src, count);
}

void ReduceIntoAccumulator(DType dtype, ReduceOp op, void* acc, const void* src, std::size_t count) {
  MICS_PICK(ReduceInto, dtype, op, acc, src, count);
}

void ReduceMany(DType dtype, ReduceOp op, void* out, const void* const* sources, int nsources, std::size_t count) {
#if defined(__x86_64__)
  if (ReduceKernelTarget()[0] == 'a') return ReduceManyAvx2Fast(dtype, op, out, sources, nsources, count);
#endif
  ReduceManyBaseline(dtype, op, out, sources, nsources, count);
}

void AddInto(DType dtype, void* dst, const void* src, std::size_t count) {
  const void* sources[2] = {dst, src};
  ReduceMany(dtype, ReduceOp::kSum, dst, sources, 2, count);
}

void StoreAccumulator(DType dtype, ReduceOp op, int nranks, void* dst, const void* acc, std::size_t count) {
  MICS_PICK(Store, dtype, op, nranks, dst, acc, count);
}

}  // namespace mics::kernels
