// The worked vectors of quant-formats.md §7: codes, scales and packed bytes bit-exact per scheme.
#include <gtest/gtest.h>

#include <cstring>

#include "qdit/quant/numerics.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {
namespace {

Tensor mat(const std::vector<float>& v, int64_t rows, int64_t cols, DType dtype = DType::F32) {
  Tensor t = Tensor::from_vector(v, {rows, cols});
  return dtype == DType::F32 ? t : t.to(dtype);
}

template <typename T>
std::vector<int> ints(const Tensor& t) {
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<int>(t.data<T>()[i]));
  return out;
}

std::vector<float> floats(const Tensor& t) { return t.to_vector(); }

QuantizedWeight quantize(const std::string& scheme, const Tensor& w) {
  return quantize_weight(find_scheme(scheme), w);
}

TEST(QuantoVectors, Qint8PerAxisF32) {
  auto q = quantize("qint8", mat({0.5f, -1.27f, 0.01f, 0.635f, 2, 0, -0.9f, 1}, 2, 4));
  EXPECT_EQ(ints<int8_t>(q.part("weight._data")), (std::vector<int>{50, -127, 1, 64, 127, 0, -57, 64}));
  std::vector<float> s = floats(q.part("weight._scale"));
  EXPECT_FLOAT_EQ(s[0], 0.01f);
  EXPECT_FLOAT_EQ(s[1], 0.015748031f);
  Tensor d = find_scheme("qint8").dequantize(q);
  const std::vector<float> want = {0.5f, -1.27f, 0.01f, 0.64f};
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(d.to_vector()[j], want[j], 1e-6f);
}

TEST(QuantoVectors, Qint8Bf16WeightRoundsEachStepToBf16) {
  auto q = quantize("qint8", mat({1.0f, 0.5f, -0.25f, 0.9921875f}, 1, 4, DType::BF16));
  EXPECT_EQ(q.part("weight._scale").dtype(), DType::BF16);
  EXPECT_EQ(q.part("weight._scale").dim(), 0);  // one output row: per-tensor scale
  EXPECT_FLOAT_EQ(floats(q.part("weight._scale"))[0], 0.00787353515625f);
  EXPECT_EQ(ints<int8_t>(q.part("weight._data")), (std::vector<int>{127, 64, -32, 126}));
}

TEST(QuantoVectors, Qint4PerAxisPlanarPacking) {
  auto q = quantize("qint4", mat({-1, -0.5f, 0, 0.25f, 0.5f, 0.75f, 1, 2, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, 2, 8));
  EXPECT_EQ(q.part("weight._data._data").shape(), (Shape{1, 8}));
  EXPECT_EQ(ints<uint8_t>(q.part("weight._data._data")),
            (std::vector<int>{0x00, 0x22, 0x45, 0x66, 0x98, 0xb9, 0xda, 0xff}));
  std::vector<float> s = floats(q.part("weight._scale")), sh = floats(q.part("weight._shift"));
  EXPECT_FLOAT_EQ(s[0], 0.2f);
  EXPECT_NEAR(s[1], 0.046666667f, 1e-8f);
  EXPECT_FLOAT_EQ(sh[0], 1.0f);
  EXPECT_FLOAT_EQ(sh[1], -0.1f);
  std::vector<float> d = find_scheme("qint4").dequantize(q).to_vector();
  const std::vector<float> want = {-1, -0.6f, 0, 0.2f, 0.6f, 0.8f, 1, 2};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[j], want[j], 1e-6f) << j;
}

TEST(QuantoVectors, Qfloat8E4m3fn) {
  auto q = quantize("qfloat8", mat({0.1f, -0.2f, 0.3f, 4.48f, 1, 1.0625f, -0.5f, 0.001f}, 2, 4));
  EXPECT_EQ(q.part("weight._data").dtype(), DType::F8E4M3);
  EXPECT_EQ(ints<uint8_t>(q.part("weight._data")), (std::vector<int>{0x52, 0xda, 0x5f, 0x7e, 0x7d, 0x7e, 0xf5, 0x2d}));
  std::vector<float> s = floats(q.part("weight._scale"));
  EXPECT_FLOAT_EQ(s[0], 0.01f);
  EXPECT_NEAR(s[1], 0.0023716518f, 1e-9f);
}

TEST(TorchaoVectors, Int8PerRowUsesAmaxOver127p5) {
  auto q = quantize("int8wo", mat({0.5f, -1.275f, 0.01f, 0.635f, 2, 0, -0.9f, 1}, 2, 4));
  EXPECT_EQ(ints<int8_t>(q.part("_weight_qdata")), (std::vector<int>{50, -128, 1, 64, 127, 0, -57, 64}));
  std::vector<float> s = floats(q.part("_weight_scale"));
  EXPECT_FLOAT_EQ(s[0], 0.01f);
  EXPECT_NEAR(s[1], 0.015686275f, 1e-9f);
  EXPECT_EQ(ints<int8_t>(q.part("_weight_zero_point")), (std::vector<int>{0, 0}));
}

TEST(TorchaoVectors, Int8Bf16WeightMultipliesByBf16Reciprocal) {
  auto q = quantize("int8wo", mat({1.0f, -0.30078125f, 0.76953125f, 0.050048828125f}, 1, 4, DType::BF16));
  EXPECT_FLOAT_EQ(floats(q.part("_weight_scale"))[0], 0.00787353515625f);
  EXPECT_EQ(ints<int8_t>(q.part("_weight_qdata")), (std::vector<int>{127, -38, 98, 6}));
}

TEST(TorchaoVectors, Int4PlainGroupOf8) {
  // Rows of 8 elements are one group each (the group size is larger than the row).
  auto q = quantize("int4wo-32", mat({-1, -0.5f, 0, 0.25f, 0.5f, 0.75f, 1, 2, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, 2, 8));
  EXPECT_EQ(ints<uint8_t>(q.part("_weight_qdata")),
            (std::vector<int>{0xa8, 0xed, 0x10, 0x72, 0xa8, 0xec, 0x31, 0x75}));
  EXPECT_EQ(q.part("_weight_scale").shape(), (Shape{1, 2}));
  std::vector<float> s = floats(q.part("_weight_scale")), z = floats(q.part("_weight_zero_point"));
  EXPECT_FLOAT_EQ(s[0], 0.2f);
  EXPECT_NEAR(s[1], 0.046666667f, 1e-8f);
  EXPECT_FLOAT_EQ(z[0], 0.6f);
  EXPECT_NEAR(z[1], 0.47333333f, 1e-7f);
  // Dequantization reproduces quanto's qint4 values.
  std::vector<float> d = find_scheme("int4wo-32").dequantize(q).to_vector();
  const std::vector<float> want = {-1, -0.6f, 0, 0.2f, 0.6f, 0.8f, 1, 2};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[j], want[j], 1e-6f) << j;
}

TEST(TorchaoVectors, Float8PerRowAndPerTensor) {
  Tensor w = mat({0.1f, -0.2f, 0.3f, 4.48f, 1, 1.0625f, -0.5f, 0.001f}, 2, 4);
  auto row = quantize("float8wo", w);
  EXPECT_EQ(ints<uint8_t>(row.part("_weight_qdata")), (std::vector<int>{0x52, 0xda, 0x5f, 0x7e, 0x7d, 0x7e, 0xf5, 0x2d}));
  auto tensor = quantize("float8dq", w);
  EXPECT_EQ(tensor.part("_weight_scale").shape(), (Shape{1, 1}));
  EXPECT_FLOAT_EQ(floats(tensor.part("_weight_scale"))[0], 0.01f);
  std::vector<int> codes = ints<uint8_t>(tensor.part("_weight_qdata"));
  EXPECT_EQ(std::vector<int>(codes.begin() + 4, codes.end()), (std::vector<int>{0x6c, 0x6d, 0xe4, 0x1d}));
}

TEST(TorchaoVectors, UInt4Group8ForcesZeroIntoRange) {
  auto q = quantize("uint4wo", mat({0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, 1, 8));
  EXPECT_NEAR(floats(q.part("_weight_scale"))[0], 0.053333335f, 1e-9f);
  EXPECT_EQ(ints<int32_t>(q.part("_weight_zero_point")), (std::vector<int>{0}));
  EXPECT_EQ(ints<uint8_t>(q.part("_weight_int4_shard")), (std::vector<int>{0x92, 0xb4, 0xd6, 0xf8}));
  std::vector<float> d = find_scheme("uint4wo").dequantize(q).to_vector();
  const std::vector<int> codes = {2, 4, 6, 8, 9, 11, 13, 15};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[j], codes[j] * 0.053333335f, 1e-6f);
}

TEST(TorchaoVectors, Fp6E3m2) {
  // Pad the row to 8 columns with zeros (the vector has 5 values; zeros do not change amax).
  auto q = quantize("fp6_e3m2", mat({0.1f, -0.35f, 1, 2.8f, 0.013f, 0, 0, 0}, 1, 8));
  EXPECT_FLOAT_EQ(floats(q.part("_weight_scale"))[0], 0.1f);
  std::vector<int> c = ints<uint8_t>(q.part("_weight_qdata"));
  EXPECT_EQ(std::vector<int>(c.begin(), c.begin() + 5), (std::vector<int>{0b001100, 0b110011, 0b011001, 0b011111, 0b000010}));
  std::vector<float> d = find_scheme("fp6_e3m2").dequantize(q).to_vector();
  const std::vector<float> want = {0.1f, -0.35f, 1.0f, 2.8f, 0.0125f};
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(d[j], want[j], 1e-6f) << j;
}

TEST(TorchaoVectors, MiniFloatSpotChecks) {
  MiniFloat e2m1{2, 1}, e2m2{2, 2}, e3m2{3, 2};
  EXPECT_FLOAT_EQ(e3m2.max_normal(), 28.0f);
  EXPECT_FLOAT_EQ(MiniFloat({2, 3}).max_normal(), 7.5f);
  EXPECT_FLOAT_EQ(e2m1.max_normal(), 6.0f);
  auto rt = [](const MiniFloat& f, float v) { return f.decode(f.encode(v)); };
  EXPECT_EQ(rt(e2m1, 0.25f), 0.0f);
  EXPECT_EQ(rt(e2m1, 0.75f), 1.0f);
  EXPECT_EQ(rt(e2m1, 2.5f), 2.0f);
  EXPECT_EQ(rt(e2m1, 5.0f), 4.0f);
  EXPECT_EQ(rt(e2m1, 7.0f), 6.0f);
  EXPECT_EQ(rt(e2m1, -1.25f), -1.0f);
  EXPECT_EQ(rt(e2m2, 0.125f), 0.0f);
  EXPECT_EQ(rt(e2m2, 0.3f), 0.25f);
  EXPECT_EQ(rt(e2m2, 6.9f), 7.0f);
  EXPECT_EQ(rt(e2m2, 8.0f), 7.0f);
}

TEST(BnbVectors, Nf4OnePartialBlock) {
  auto q = quantize("nf4", mat({0.5f, -1, 0.25f, 0, 0.9f, -0.05f, 0.12f, 0.7f}, 1, 8));
  EXPECT_EQ(ints<uint8_t>(q.part("weight")), (std::vector<int>{0xc0, 0xa7, 0xf6, 0x8e}));
  EXPECT_EQ(floats(q.part("weight.absmax")), (std::vector<float>{1.0f}));
  std::vector<float> d = find_scheme("nf4").dequantize(q).to_vector();
  const std::vector<float> want = {0.4407f, -1, 0.2461f, 0, 1, -0.0911f, 0.0796f, 0.7230f};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[j], want[j], 1e-4f) << j;
  const Tensor& st = q.part("weight.quant_state.bitsandbytes__nf4");
  EXPECT_EQ(std::string(st.data<char>(), st.numel()),
            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [1, 8]}");
}

TEST(BnbVectors, Fp4OnePartialBlock) {
  auto q = quantize("fp4", mat({0.5f, -1, 0.25f, 0, 0.9f, -0.05f, 0.12f, 0.7f}, 1, 8));
  EXPECT_EQ(ints<uint8_t>(q.part("weight")), (std::vector<int>{0x5b, 0x70, 0x39, 0x62}));
  std::vector<float> d = find_scheme("fp4").dequantize(q).to_vector();
  const std::vector<float> want = {0.5f, -1, 0.25f, 0, 1, -0.0052083f, 0.16667f, 0.66667f};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[j], want[j], 1e-5f) << j;
}

TEST(BnbVectors, DynamicMapEnds) {
  const auto& m = bnb_dynamic_map();
  EXPECT_FLOAT_EQ(m[0], -0.99296875f);
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  for (int i = 1; i < 256; ++i) EXPECT_LT(m[i - 1], m[i]);
}

TEST(BnbVectors, DoubleQuantOfAbsmax) {
  // Four blocks of 64 whose absmax are 0.5, 0.75, 1.25 and 2.0.
  std::vector<float> v(256, 0.0f);
  v[0] = 0.5f;
  v[64] = -0.75f;
  v[128] = 1.25f;
  v[192] = 2.0f;
  auto q = quantize("nf4_dq", mat(v, 4, 64));
  EXPECT_EQ(ints<uint8_t>(q.part("weight.absmax")), (std::vector<int>{20, 40, 194, 255}));
  EXPECT_FLOAT_EQ(floats(q.part("weight.nested_absmax"))[0], 0.875f);
  const Tensor& st = q.part("weight.quant_state.bitsandbytes__nf4");
  EXPECT_NE(std::string(st.data<char>(), st.numel()).find("\"nested_offset\": 1.125"), std::string::npos);
  std::vector<float> d = find_scheme("nf4_dq").dequantize(q).to_vector();
  EXPECT_NEAR(d[0], 0.50225f, 1e-5f);
  EXPECT_NEAR(d[64], -0.74834f, 1e-5f);
  EXPECT_NEAR(d[128], 1.25557f, 1e-5f);
  EXPECT_NEAR(d[192], 2.0f, 1e-6f);
}

TEST(BnbVectors, LlmInt8CastsToFp16First) {
  auto q = quantize("llm_int8", mat({0.5f, -1.27f, 0.01f, 0.635f, 2, 0, -0.9f, 1}, 2, 4));
  EXPECT_EQ(floats(q.part("SCB")), (std::vector<float>{1.26953125f, 2.0f}));
  EXPECT_EQ(ints<int8_t>(q.part("weight")), (std::vector<int>{50, -127, 1, 64, 127, 0, -57, 64}));
}

TEST(Float8Encodings, SpecExamples) {
  EXPECT_EQ(f32_to_fp8_e4m3fn(448.0f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3fn(0.3f), 0x2a);
  EXPECT_EQ(f32_to_fp8_e4m3fn(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3fn(1.1875f), 0x3a);
  EXPECT_EQ(f32_to_fp8_e4m3fn(-17.0f), 0xd8);
  EXPECT_EQ(f32_to_fp8_e4m3fn(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3fn(0.001f), 0x01);
  EXPECT_EQ(f32_to_fp8_e5m2(57344.0f), 0x7b);
  EXPECT_EQ(f32_to_fp8_e5m2(1.125f), 0x3c);
  EXPECT_EQ(f32_to_fp8_e5m2(3.0f), 0x42);
}

}  // namespace
}  // namespace qdit::quant
