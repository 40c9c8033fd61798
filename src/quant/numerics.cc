#include "qdit/quant/numerics.h"

#include <algorithm>

namespace qdit::quant {

float MiniFloat::max_normal() const {
  const int emax = (1 << ebits) - 1 - bias();
  return std::ldexp(static_cast<float>((1 << (mbits + 1)) - 1) / static_cast<float>(1 << mbits), emax);
}

uint8_t MiniFloat::encode(float v) const {
  const uint8_t sign = std::signbit(v) ? static_cast<uint8_t>(1u << (ebits + mbits)) : 0;
  float a = std::fabs(v);
  if (std::isnan(a)) return sign;  // no NaN code: NaN weights become zero
  const float maxv = max_normal();
  const uint8_t max_code = static_cast<uint8_t>((1u << (ebits + mbits)) - 1);
  if (a >= maxv) return sign | max_code;
  // Subnormal step is 2^(1-bias-mbits); normals of exponent e have step 2^(e-bias-mbits).
  const int min_exp = 1 - bias();
  int e = std::max(std::ilogb(a), min_exp);  // unbiased exponent of the binade holding a
  if (a == 0.0f) e = min_exp;
  const float step = std::ldexp(1.0f, e - mbits);
  float m = std::nearbyint(a / step);  // exact division by a power of two, then RNE
  // Rounding up may carry into the next binade (m == 2^(mbits+1)); re-encode from the value.
  const float q = m * step;
  if (q >= maxv) return sign | max_code;
  if (q == 0.0f) return sign;
  int qe = std::ilogb(q);
  if (qe < min_exp) return sign | static_cast<uint8_t>(q / std::ldexp(1.0f, min_exp - mbits));  // subnormal
  const uint32_t exp_field = static_cast<uint32_t>(qe + bias());
  const uint32_t man_field = static_cast<uint32_t>(q / std::ldexp(1.0f, qe - mbits)) - (1u << mbits);
  return sign | static_cast<uint8_t>((exp_field << mbits) | man_field);
}

float MiniFloat::decode(uint8_t code) const {
  const bool neg = (code >> (ebits + mbits)) & 1;
  const int exp_field = (code >> mbits) & ((1 << ebits) - 1);
  const int man = code & ((1 << mbits) - 1);
  float v = exp_field == 0 ? std::ldexp(static_cast<float>(man), 1 - bias() - mbits)
                           : std::ldexp(1.0f + static_cast<float>(man) / static_cast<float>(1 << mbits),
                                        exp_field - bias());
  return neg ? -v : v;
}

const std::array<float, 16>& nf4_table() {
  static const std::array<float, 16> t = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
      -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
      0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
      0.7229568362236023f, 1.0f};
  return t;
}

const std::array<float, 16>& fp4_table() {
  // sign bit 3 + magnitude code: 000=0, 001=0.0625, 010=8, 011=12, 100=4, 101=6, 110=2, 111=3, all /12.
  static const std::array<float, 16> t = [] {
    const float mag[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
    std::array<float, 16> r{};
    for (int i = 0; i < 8; ++i) {
      r[i] = mag[i] / 12.0f;
      r[i + 8] = -mag[i] / 12.0f;
    }
    return r;
  }();
  return t;
}

std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(steps));
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    out[i] = i < half ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - i - 1);
  return out;
}

const std::array<float, 256>& bnb_dynamic_map() {
  static const std::array<float, 256> t = [] {
    std::vector<float> data;
    for (int i = 0; i < 7; ++i) {
      std::vector<float> b = torch_linspace_f32(0.1f, 1.0f, (int64_t{1} << i) + 1);
      const float scale = static_cast<float>(std::pow(10.0, i - 6));
      for (size_t j = 0; j + 1 < b.size(); ++j) {
        const float mean = (b[j] + b[j + 1]) / 2.0f;
        data.push_back(scale * mean);
        data.push_back(-scale * mean);
      }
    }
    data.push_back(0.0f);
    data.push_back(1.0f);
    std::sort(data.begin(), data.end());
    std::array<float, 256> r{};
    std::copy(data.begin(), data.end(), r.begin());
    return r;
  }();
  return t;
}

int nearest_sorted(const float* table, int n, float v) {
  // First midpoint strictly above v decides the bucket (bucketize with right=False on midpoints).
  int lo = 0;
  for (int i = 0; i + 1 < n; ++i) {
    const float mid = (table[i] + table[i + 1]) / 2.0f;
    if (v > mid) lo = i + 1;
    else break;
  }
  return lo;
}

}  // namespace qdit::quant
