// Weight values for `qdit make-model`: a counter-based generator (splitmix64 of a per-tensor key
// plus the element index), so any element can be computed independently and the output is
// identical for every thread count and chunking. Normal values use the Irwin-Hall sum of four
// 16-bit uniforms (unit variance, support +-3.46): no transcendental per element, which keeps a
// 4.7B-parameter encoder to seconds of CPU.
#include <algorithm>
#include <cmath>

#include "qdit/api/make_model.h"
#include "qdit/core/error.h"
#include "qdit/nn/embeddings.h"

namespace qdit::api {

namespace {

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// Sum of four uniforms on (0, 1) minus 2, scaled by sqrt(3): mean 0, variance 1.
inline float unit_normal(uint64_t bits) {
  constexpr float kScale = 1.7320508075688772f / 65536.0f;
  const int64_t sum = static_cast<int64_t>(bits & 0xFFFF) + static_cast<int64_t>((bits >> 16) & 0xFFFF) +
                      static_cast<int64_t>((bits >> 32) & 0xFFFF) + static_cast<int64_t>(bits >> 48);
  return static_cast<float>(sum - 131070) * kScale;  // 4 * 32767.5 = 131070 (the mean of the sum)
}

}  // namespace

uint64_t weight_stream_key(uint64_t seed, const std::string& component, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a over "component/name"
  for (char c : component + "/" + name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return mix64(mix64(seed) ^ h);
}

Tensor sincos_pos_table(const WeightSpec& w) {
  QDIT_CHECK(w.init == WeightInit::SinCosPosEmbed && w.shape.size() == 3, "[make-model] ", w.name,
             " is not a sin-cos position table");
  return nn::sincos_2d_pos_embed(w.shape[2], w.sincos_grid, w.sincos_grid, w.sincos_base, 1.0f);
}

void fill_weight(const WeightSpec& w, uint64_t key, int64_t begin, int64_t end, float* out) {
  QDIT_CHECK(0 <= begin && begin <= end && end <= w.numel(), "[make-model] ", w.name, ": range [", begin, ", ", end,
             ") outside its ", w.numel(), " elements");
  switch (w.init) {
    case WeightInit::Normal:
      for (int64_t i = begin; i < end; ++i)
        out[i - begin] = w.std * unit_normal(mix64(key + static_cast<uint64_t>(i + 1) * kGamma));
      break;
    case WeightInit::Ones:
      std::fill(out, out + (end - begin), 1.0f);
      break;
    case WeightInit::Zeros:
      std::fill(out, out + (end - begin), 0.0f);
      break;
    case WeightInit::SinCosPosEmbed: {
      const Tensor t = sincos_pos_table(w);  // the whole table per call: make_model builds it once instead
      std::copy(t.data<float>() + begin, t.data<float>() + end, out);
      break;
    }
  }
}

}  // namespace qdit::api
