#include <gtest/gtest.h>

#include <cmath>

#include "qdit/core/dtype.h"
#include "qdit/core/float_cast.h"

using namespace qdit;

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F8E5M2), 1u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(*dtype_from_safetensors("F8_E4M3"), DType::F8E4M3);
  EXPECT_EQ(*dtype_from_safetensors("BOOL"), DType::Bool);
  EXPECT_FALSE(dtype_from_safetensors("F128").has_value());
  EXPECT_EQ(*dtype_from_name("bfloat16"), DType::BF16);
}

TEST(FloatCast, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3F80);
  // 1 + 3*2^-8 is between 1.0078125 (odd mantissa) and 1.015625: ties to even (up).
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3F82);
  EXPECT_EQ(f32_to_bf16(1.0f + 1e-3f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_bf16(NAN), 0x7FC0);
  EXPECT_EQ(f32_to_bf16(3.4e38f), 0x7F80);  // rounds up to inf, as PyTorch
  EXPECT_FLOAT_EQ(bf16_to_f32(0x3FC0), 1.5f);
}

TEST(FloatCast, F16) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048), 0x3C00);  // tie to even
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.333251953125f);
}

TEST(FloatCast, Fp8E4M3fnVectorsFromQuantFormatsGuide) {
  // ../shared/guides/quant-formats.md section 7 "Float8 encodings".
  EXPECT_EQ(f32_to_fp8_e4m3fn(448.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3fn(0.3f), 0x2A);
  EXPECT_EQ(f32_to_fp8_e4m3fn(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3fn(1.1875f), 0x3A);
  EXPECT_EQ(f32_to_fp8_e4m3fn(-17.0f), 0xD8);
  EXPECT_EQ(f32_to_fp8_e4m3fn(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3fn(0.001f), 0x01);
  // quanto qfloat8 vector: values 10,-20,30,448 -> 52 da 5f 7e
  EXPECT_EQ(f32_to_fp8_e4m3fn(10.0f), 0x52);
  EXPECT_EQ(f32_to_fp8_e4m3fn(-20.0f), 0xDA);
  EXPECT_EQ(f32_to_fp8_e4m3fn(30.0f), 0x5F);
  // Non-saturating: past the rounding boundary and inf become NaN (0x7F).
  EXPECT_EQ(f32_to_fp8_e4m3fn(464.0f), 0x7E);  // tie -> even (448)
  EXPECT_EQ(f32_to_fp8_e4m3fn(470.0f), 0x7F);
  EXPECT_EQ(f32_to_fp8_e4m3fn(-INFINITY), 0xFF);
  EXPECT_FLOAT_EQ(fp8_e4m3fn_to_f32(0x2D), 0.40625f);
  EXPECT_TRUE(std::isnan(fp8_e4m3fn_to_f32(0x7F)));
}

TEST(FloatCast, Fp8RoundTripsEveryCode) {
  for (int c = 0; c < 256; ++c) {
    float v = fp8_e4m3fn_to_f32(static_cast<uint8_t>(c));
    if (!std::isnan(v)) { EXPECT_EQ(f32_to_fp8_e4m3fn(v), c) << c; }
    float w = fp8_e5m2_to_f32(static_cast<uint8_t>(c));
    if (!std::isnan(w)) { EXPECT_EQ(f32_to_fp8_e5m2(w), c) << c; }
  }
}

TEST(FloatCast, Fp8E5M2) {
  EXPECT_EQ(f32_to_fp8_e5m2(57344.0f), 0x7B);
  EXPECT_EQ(f32_to_fp8_e5m2(1e6f), 0x7C);        // overflow -> inf
  EXPECT_EQ(f32_to_fp8_e5m2(1.0f), 0x3C);
  EXPECT_EQ(f32_to_fp8_e5m2(1.125f), 0x3C);      // tie -> even
  EXPECT_EQ(f32_to_fp8_e5m2(std::ldexp(1.0f, -16)), 0x01);
  EXPECT_EQ(f32_to_fp8_e5m2(NAN), 0x7F);
}
