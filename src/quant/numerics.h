// Scalar numerics shared by the quantization codecs: rounding to the weight's dtype (the Python
// libraries compute scales and quotients in the weight dtype, so bf16 weights see bf16 rounding at
// every step), round-half-even, torchao's minifloat (fpX) codes, bitsandbytes' 4-bit tables and its
// signed dynamic map, and torch's float32 linspace.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "qdit/core/dtype.h"
#include "qdit/core/float_cast.h"

namespace qdit::quant {

// Rounds a float to the precision of `dtype` (f32: unchanged; bf16/f16: RNE to that format).
struct DTypeRounder {
  DType dtype = DType::F32;
  float operator()(float v) const {
    switch (dtype) {
      case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
      case DType::F16: return f16_to_f32(f32_to_f16(v));
      default: return v;
    }
  }
};

// torch.round: half to even (the default FP rounding mode).
inline float round_half_even(float v) { return std::nearbyint(v); }

// A minifloat with E exponent and M mantissa bits, torchao's fpX: sign|exp|man right-aligned in a
// byte, bias 2^(E-1)-1, subnormals, no inf/NaN codes (the top binade is finite), saturating.
struct MiniFloat {
  int ebits, mbits;
  int bias() const { return (1 << (ebits - 1)) - 1; }
  float max_normal() const;
  uint8_t encode(float v) const;  // RNE from f32, saturating to +-max_normal
  float decode(uint8_t code) const;
};

// bitsandbytes' NF4 and FP4 code tables (quant_map), indexed by the 4-bit code.
const std::array<float, 16>& nf4_table();
const std::array<float, 16>& fp4_table();
// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted f32 values.
const std::array<float, 256>& bnb_dynamic_map();
// Index of the entry of a sorted table nearest to v; a value on a midpoint takes the lower entry.
int nearest_sorted(const float* table, int n, float v);

// torch.linspace(start, end, steps) in float32 (the symmetric two-sided formula of its CPU kernel).
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps);

}  // namespace qdit::quant
