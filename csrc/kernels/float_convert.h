// Element types of the CPU kernels and their conversions to and from f32, written
// without branches so the loops that use them auto-vectorise. Results equal
// core/half.h bit for bit (round to nearest even; NaN stays NaN with half.h's
// payload rule; overflow to inf; subnormals exact), checked over all 2^32 floats and
// 2^16 halves when this file was written. They rely on the default floating-point
// environment (round to nearest, no flush-to-zero), which Node.js never changes.
#pragma once

#include <cstdint>
#include <cstring>

namespace mics::kernels {

inline float AsFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t AsBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// Signed compares: SSE2 has no unsigned 32-bit compare; every operand is < 2^31.
inline bool Below(uint32_t a, uint32_t b) { return static_cast<int32_t>(a) < static_cast<int32_t>(b); }

// cond ? x : y through an all-ones / all-zeros mask. A ternary would let GCC sink the
// float addition computing x into a branch, and then refuse to if-convert that branch
// (the addition might raise an FP exception under -ftrapping-math): no vectorisation.
inline uint32_t Select(bool cond, uint32_t x, uint32_t y) {
  const uint32_t mask = 0u - static_cast<uint32_t>(cond);
  return (x & mask) | (y & ~mask);
}

// Element tags: Storage is the C++ type in memory, Load widens to f32 (exact), Store
// narrows from f32 (round to nearest even).
struct F32 {
  using Storage = float;
  static float Load(float v) { return v; }
  static float Store(float v) { return v; }
};

struct BF16 {
  using Storage = uint16_t;
  static float Load(uint16_t h) { return AsFloat(static_cast<uint32_t>(h) << 16); }
  static uint16_t Store(float f) {
    const uint32_t u = AsBits(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quietNaN = (u >> 16) | 0x40u;
    return static_cast<uint16_t>(Below(0x7f800000u, u & 0x7fffffffu) ? quietNaN : rounded);
  }
};

struct F16 {
  using Storage = uint16_t;
  static float Load(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    const uint32_t normal = ((exp + 112u) << 23) | (mant << 13);
    const uint32_t infNaN = 0x7f800000u | (mant << 13);
    // Subnormal: mant * 2^-24, exact in f32 (an int below 2^10 times a power of two).
    const uint32_t subnormal = AsBits(static_cast<float>(static_cast<int32_t>(mant)) * (1.0f / 16777216.0f));
    uint32_t bits = exp == 0x1fu ? infNaN : normal;
    bits = Select(exp == 0, subnormal, bits);
    return AsFloat(bits | sign);
  }
  static uint16_t Store(float f) {
    const uint32_t u = AsBits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    // Normal result: rebias the exponent, round the 13 dropped bits to nearest even
    // (a carry moves into the exponent, which is right).
    const uint32_t normal = (a - 0x38000000u + 0x0fffu + ((a >> 13) & 1u)) >> 13;
    // Subnormal result: adding 0.5 puts the binary point at f16's 2^-24 step, so the
    // float addition itself rounds to nearest even; the low bits are the result.
    const uint32_t subnormal = AsBits(AsFloat(a) + 0.5f) - 0x3f000000u;
    uint32_t r = Select(Below(a, 0x38800000u), subnormal, normal);
    r = Select(Below(a, 0x477ff000u), r, 0x7c00u);  // rounds to >= 65520: inf
    r = Select(Below(0x7f800000u, a), 0x7e00u, r);  // NaN
    return static_cast<uint16_t>(sign | r);
  }
};

}  // namespace mics::kernels
