// Scalar conversions between f32 and the 16/8-bit float formats, rounding to nearest even
// exactly as PyTorch's casts do (bf16 NaN -> 0x7FC0; fp8 e4m3fn has no inf: overflow and inf
// become NaN; fp8 e5m2 overflow becomes inf). Vectorised casts live in kernels/.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace qdit {

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline uint16_t f32_to_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  uint32_t u = f32_bits(f);
  uint32_t bias = ((u >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((u + bias) >> 16);
}
inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_f16(float f) {
  _Float16 h = static_cast<_Float16>(f);  // IEEE RNE on x86-64 (GCC/Clang)
  uint16_t u; std::memcpy(&u, &h, 2); return u;
}
inline float f16_to_f32(uint16_t u) {
  _Float16 h; std::memcpy(&h, &u, 2); return static_cast<float>(h);
}

namespace detail {
// Round |f| (finite, >= the format's smallest normal) to (exponent, mantissa) bits, nearest even.
inline uint32_t round_mantissa(uint32_t abs_bits, int man_bits) {
  const int shift = 23 - man_bits;
  const uint32_t half_minus_one = (1u << (shift - 1)) - 1u;
  return (abs_bits + half_minus_one + ((abs_bits >> shift) & 1u)) >> shift;
}
}  // namespace detail

inline uint8_t f32_to_fp8_e4m3fn(float f) {
  uint32_t u = f32_bits(f);
  uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return sign | 0x7F;          // inf / NaN -> NaN
  float af = f32_from_bits(a);
  if (af < 0.015625f) {                               // below 2^-6: subnormal, step 2^-9
    return sign | static_cast<uint8_t>(std::nearbyint(af * 512.0f));
  }
  uint32_t code = detail::round_mantissa(a, 3) - ((127u - 7u) << 3);
  if (code > 0x7Eu) return sign | 0x7F;               // beyond 448 after rounding -> NaN
  return sign | static_cast<uint8_t>(code);
}

inline uint8_t f32_to_fp8_e5m2(float f) {
  uint32_t u = f32_bits(f);
  uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7F;            // NaN
  float af = f32_from_bits(a);
  if (af < 6.103515625e-05f) {                        // below 2^-14: subnormal, step 2^-16
    return sign | static_cast<uint8_t>(std::nearbyint(af * 65536.0f));
  }
  if (a == 0x7F800000u) return sign | 0x7C;
  uint32_t code = detail::round_mantissa(a, 2) - ((127u - 15u) << 2);
  if (code >= 0x7Cu) return sign | 0x7C;              // overflow -> inf
  return sign | static_cast<uint8_t>(code);
}

inline float fp8_e4m3fn_to_f32(uint8_t c) {
  float sign = (c & 0x80) ? -1.0f : 1.0f;
  int e = (c >> 3) & 0xF, m = c & 7;
  if (e == 0xF && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -9);
  return sign * std::ldexp(1.0f + m / 8.0f, e - 7);
}

inline float fp8_e5m2_to_f32(uint8_t c) {
  float sign = (c & 0x80) ? -1.0f : 1.0f;
  int e = (c >> 2) & 0x1F, m = c & 3;
  if (e == 0x1F) return m == 0 ? sign * INFINITY : std::nanf("");
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -16);
  return sign * std::ldexp(1.0f + m / 4.0f, e - 15);
}

}  // namespace qdit
