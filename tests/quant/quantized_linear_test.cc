// Every scheme: its dequantization stays close to the weight (an SNR floor by bit width), its
// Linear kernel equals "fake-quantize the activation, dequantize the weight, float GEMM", and a
// checkpoint part of the wrong shape is refused naming the part.
#include <gtest/gtest.h>

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/gemm.h"
#include "qdit/quant/quantized_linear.h"
#include "qdit/quant/scheme.h"
#include "support/random.h"

namespace qdit::quant {
namespace {

double snr_db(const Tensor& ref, const Tensor& got) {
  std::vector<float> a = ref.to_vector(), b = got.to_vector();
  double sig = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sig += double(a[i]) * a[i];
    err += double(a[i] - b[i]) * (a[i] - b[i]);
  }
  return 10.0 * std::log10(sig / std::max(err, 1e-30));
}

// Minimum dequantization SNR (dB) of a random-uniform weight per bits per code (e5m2 keeps only
// two mantissa bits).
double snr_floor(const Scheme& s) {
  const double bits = s.bits();
  if (s.name().find("e5m2") != std::string::npos) return 22;
  if (bits >= 8) return 30;
  if (bits >= 6) return 22;
  if (bits >= 4) return 12;
  if (bits >= 3) return 8;
  if (bits >= 2) return 2;
  return -1;  // 1-bit: only the sign survives
}

class EveryScheme : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryScheme, DequantizationIsCloseToTheWeight) {
  const Scheme& s = find_scheme(GetParam());
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor w = qdit::testing::random_tensor({48, 256}, 11).to(dt);
    QuantizedWeight q = quantize_weight(s, w);
    s.validate(q);
    Tensor d = s.dequantize(q);
    EXPECT_GE(snr_db(w.to(DType::F32), d), snr_floor(s)) << s.name() << " " << dtype_name(dt);
    // int4dq keeps one code per int8 (torchao's PlainLayout); the others pack their bits.
    const double container_bits = s.name() == "int4dq" ? 8 : s.bits();
    EXPECT_LT(q.bytes(), w.to(DType::F32).nbytes() * (container_bits + 4.5) / 32.0) << "stored bytes follow the bits";
  }
}

TEST_P(EveryScheme, KernelMatchesDequantizeThenFloatGemm) {
  const Scheme& s = find_scheme(GetParam());
  const int64_t m = 37, k = 256, n = 72;  // odd M, N not a multiple of the tile
  Tensor w = qdit::testing::random_tensor({n, k}, 3, -0.5f, 0.5f);
  Tensor b = qdit::testing::random_tensor({n}, 4);
  Tensor x = qdit::testing::random_tensor({m, k}, 5, -2.0f, 2.0f);
  QuantizedWeight q = quantize_weight(s, w);
  Tensor xq = x.clone();
  fake_quantize_activation(s.activation(), xq.data<float>(), m, k);
  Tensor ref = kernels::linear_reference(xq, s.dequantize(q), b, kernels::Activation::GeluTanh);
  auto kernel = make_quantized_linear(q, b, DType::F32);
  Tensor y = kernel->forward(x, {kernels::Activation::GeluTanh});
  EXPECT_LE(qdit::testing::max_abs_diff(ref, y), 2e-4f * std::max(1.0f, qdit::testing::max_abs(ref))) << s.name();
  // Residual accumulate: y += result.
  Tensor acc = Tensor::full({m, n}, 1.0f);
  kernel->forward_into(x, acc, {kernels::Activation::None, true});
  Tensor plain = kernel->forward(x);
  std::vector<float> a = acc.to_vector(), p = plain.to_vector();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], p[i] + 1.0f, 1e-4f) << s.name();
}

TEST_P(EveryScheme, Bf16ComputeRoundsBothOperands) {
  const Scheme& s = find_scheme(GetParam());
  const int64_t m = 16, k = 128, n = 40;
  Tensor w = qdit::testing::random_tensor({n, k}, 7, -0.5f, 0.5f);
  Tensor x = qdit::testing::random_tensor({m, k}, 8);
  QuantizedWeight q = quantize_weight(s, w);
  Tensor xq = x.clone();
  fake_quantize_activation(s.activation(), xq.data<float>(), m, k);
  Tensor ref = kernels::linear_reference(xq.to(DType::BF16).to(DType::F32), s.dequantize(q).to(DType::BF16).to(DType::F32),
                                         Tensor());
  Tensor y = make_quantized_linear(q, Tensor(), DType::BF16)->forward(x);
  // int8dq runs integer codes, so only the float32 GEMM tolerance applies; others hold bf16 operands.
  EXPECT_LE(qdit::testing::max_abs_diff(ref, y), 1e-2f * std::max(1.0f, qdit::testing::max_abs(ref))) << s.name();
}

TEST_P(EveryScheme, WrongShapedPartIsRefusedByName) {
  const Scheme& s = find_scheme(GetParam());
  QuantizedWeight q = quantize_weight(s, qdit::testing::random_tensor({32, 128}, 9));
  q.out = 33;  // a checkpoint whose parts do not match the layer
  try {
    s.validate(q);
    FAIL() << s.name() << " accepted parts of the wrong shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(s.name()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("part"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(All, EveryScheme, ::testing::ValuesIn(scheme_names()),
                         [](const auto& info) { return info.param; });

TEST(Int8Dynamic, ActivationQuantizationMatchesTorchaoPerToken) {
  // amax 2.55 -> scale 0.02; 1.01/0.02 = 50.5 rounds half to even -> 50; -2.55 -> -127.5 -> -128.
  std::vector<float> x = {1.01f, -2.55f, 0.0f, 0.03f};
  std::vector<int8_t> q(4);
  float s = 0;
  kernels::quantize_rows_s8(x.data(), 1, 4, 127.5f, q.data(), &s);
  EXPECT_FLOAT_EQ(s, 0.02f);
  EXPECT_EQ(std::vector<int>(q.begin(), q.end()), (std::vector<int>{50, -128, 0, 2}));
}

TEST(Int8Dynamic, LongRowsUseTheVectorPathIdentically) {
  Tensor x = qdit::testing::random_tensor({3, 67}, 21, -3.0f, 3.0f);
  std::vector<int8_t> q(3 * 67);
  std::vector<float> s(3);
  kernels::quantize_rows_s8(x.data<float>(), 3, 67, 127.5f, q.data(), s.data());
  for (int r = 0; r < 3; ++r) {
    float amax = 0;
    for (int j = 0; j < 67; ++j) amax = std::max(amax, std::fabs(x.data<float>()[r * 67 + j]));
    ASSERT_FLOAT_EQ(s[r], amax / 127.5f);
    for (int j = 0; j < 67; ++j)
      ASSERT_EQ(q[r * 67 + j], static_cast<int8_t>(std::nearbyint(x.data<float>()[r * 67 + j] * (1.0f / s[r]))));
  }
}

TEST(LlmInt8, OutlierColumnsStayInFloat) {
  std::vector<float> x = {0.5f, 7.0f, -0.25f, 1.0f, -0.1f, 0.3f};  // column 1 holds an outlier
  fake_quantize_activation(ActivationQuant::LlmInt8, x.data(), 2, 3);
  EXPECT_EQ(x[1], 7.0f);
  EXPECT_EQ(x[4], -0.1f);
  EXPECT_NEAR(x[0], std::nearbyint(0.5f * 127 / 0.5f) * 0.5f / 127, 1e-7f);
  EXPECT_NEAR(x[2], std::nearbyint(-0.25f * 127 / 0.5f) * 0.5f / 127, 1e-7f);
}

TEST(Registry, UnknownSchemeListsTheKnownOnes) {
  try {
    find_scheme("int3wo");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("int8wo"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int3wo"), std::string::npos) << e.what();
  }
  EXPECT_EQ(find_scheme("int4wo-64").name(), "int4wo-64");
  EXPECT_EQ(find_scheme("fp5").name(), "fp5_e2m2");
  EXPECT_EQ(find_scheme("qfloat8_e4m3fn").name(), "qfloat8");
  EXPECT_THROW(find_scheme("fp6_e3m3"), Error);
}

}  // namespace
}  // namespace qdit::quant
