// Every scheme's fast codec (quantize / decoder: vectorised, multi-threaded) against its reference
// codec (the definition): bit-identical parts and decoded values, for f32, bf16 and f16 weights,
// odd shapes (vector tails, rows starting inside a byte or a block), rows that are all zero, tiny
// or huge, under every kernel ISA variant this CPU runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qdit/core/float_cast.h"
#include "qdit/kernels/quant_kernels.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {
namespace {

using kernels::qk::Isa;

std::vector<Isa> isas() {
  std::vector<Isa> v{Isa::Avx2};
  if (kernels::qk::isa_available(Isa::Avx512)) v.push_back(Isa::Avx512);
  return v;
}

// Rows of different magnitudes, including rows that are all zero, tiny (denormal scales), huge,
// constant, and values on rounding boundaries.
Tensor weight(int64_t n, int64_t k, uint32_t seed, DType dtype) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Tensor w = Tensor::empty({n, k}, DType::F32);
  float* p = w.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float mag = i % 5 == 1 ? 1e-37f : i % 5 == 2 ? 3e4f : i % 5 == 3 ? 0.02f : 1.0f;
    for (int64_t j = 0; j < k; ++j) p[i * k + j] = mag * u(rng);
    if (i % 7 == 4)
      for (int64_t j = 0; j < k; ++j) p[i * k + j] = 0.0f;
    if (i % 7 == 5)
      for (int64_t j = 0; j < k; ++j) p[i * k + j] = 0.25f;
    if (i % 7 == 6 && k >= 4) {
      p[i * k] = 1.0f;  // amax 1: halves of the code steps land exactly
      p[i * k + 1] = 0.5f;
      p[i * k + 2] = -0.25f / 127.0f;
      p[i * k + 3] = 1.5f / 127.5f;
    }
  }
  return dtype == DType::F32 ? w : w.to(dtype);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

void expect_same_decode(const Scheme& s, const QuantizedWeight& q, const std::string& what) {
  const int64_t n = q.out, k = q.in;
  std::vector<float> ref(static_cast<size_t>(n * k)), got(ref.size());
  std::vector<uint16_t> got16(ref.size());
  s.reference_decoder(q)->decode_rows(0, n, ref.data());
  auto fast = s.decoder(q);
  fast->decode_rows(0, n, got.data());
  fast->decode_rows_bf16(0, n, got16.data());
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool nan = std::isnan(ref[i]);
    ASSERT_TRUE(nan ? std::isnan(got[i]) : f32_bits(ref[i]) == f32_bits(got[i]))
        << what << " f32 at " << i << ": " << ref[i] << " vs " << got[i];
    ASSERT_EQ(got16[i], f32_to_bf16(ref[i])) << what << " bf16 at " << i;
  }
  // A row range not starting at 0 (rows starting mid-block / mid-byte).
  if (n > 2) {
    std::vector<uint16_t> part(static_cast<size_t>((n - 1) * k));
    fast->decode_rows_bf16(1, n, part.data());
    ASSERT_EQ(0, std::memcmp(part.data(), got16.data() + k, part.size() * 2)) << what << " rows [1, n)";
  }
}

class FastCodecs : public ::testing::TestWithParam<std::string> {};

TEST_P(FastCodecs, QuantizeAndDecodeMatchTheReferenceBitForBit) {
  const Scheme& s = find_scheme(GetParam());
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 64}, {3, 130}, {7, 33}, {13, 256}, {33, 200}, {9, 1152}};
  for (Isa isa : isas()) {
    kernels::qk::ScopedIsa pin(isa);
    for (auto [n, k] : shapes) {
      if (!s.applies_to(n, k)) continue;
      for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
        const std::string what = s.name() + " " + kernels::qk::isa_name() + " " + dtype_name(dt) + " [" +
                                 std::to_string(n) + ", " + std::to_string(k) + "]";
        Tensor w = weight(n, k, static_cast<uint32_t>(n * 31 + k), dt);
        QuantizedWeight ref = s.reference_quantize(w);
        QuantizedWeight got = quantize_weight(s, w);
        ASSERT_EQ(ref.parts.size(), got.parts.size()) << what;
        for (const auto& [name, t] : ref.parts) {
          ASSERT_TRUE(got.has(name)) << what << " lacks " << name;
          EXPECT_TRUE(same_bits(t, got.part(name))) << what << " part " << name << ": " << t.desc() << " vs "
                                                    << got.part(name).desc();
        }
        s.validate(got);
        expect_same_decode(s, ref, what);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, FastCodecs, ::testing::ValuesIn(scheme_names()),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Families, FastCodecs, ::testing::Values("int4wo-32", "int4wo-64", "fp6_e3m2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace qdit::quant
