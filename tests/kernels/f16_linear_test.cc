// fp16 compute: equals a float64 reference on fp16-rounded operands (f32 accumulation), for float
// weights (stored fp16) and for a decoded weight; and differs from f32 compute by fp16 rounding only.
#include <gtest/gtest.h>

#include "qdit/core/float_cast.h"
#include "qdit/kernels/gemm.h"
#include "support/random.h"

namespace qdit::kernels {
namespace {

Tensor round_f16(const Tensor& t) { return t.to(DType::F16).to(DType::F32); }

TEST(F16Compute, FloatWeightsMatchRoundedReference) {
  const Tensor w = qdit::testing::random_tensor({45, 70}, 1), b = qdit::testing::random_tensor({45}, 2);
  const Tensor x = qdit::testing::random_tensor({3, 11, 70}, 3, -4.0f, 4.0f);
  auto k = make_float_linear(w, b, DType::F16);
  EXPECT_EQ(k->weight_bytes(), size_t(45 * 70 * 2 + 45 * 4));  // fp16 storage + f32 bias
  const Tensor y = k->forward(x, {Activation::Silu});
  const Tensor ref = linear_reference(round_f16(x), round_f16(w), b, Activation::Silu);
  EXPECT_LE(qdit::testing::max_abs_diff(ref, y), 2e-5f * qdit::testing::max_abs(ref));
  // Not the f32 result: the operands really were rounded.
  const Tensor f32 = linear_reference(x, w, b, Activation::Silu);
  EXPECT_GT(qdit::testing::max_abs_diff(f32, y), 1e-4f);
}

TEST(F16Compute, DecodedTilesAreRoundedToo) {
  const Tensor w = qdit::testing::random_tensor({33, 64}, 4);
  const Tensor x = qdit::testing::random_tensor({5, 64}, 5);
  // A bf16 weight decoder: bf16 values have more exponent range but fewer mantissa bits than
  // fp16, so rounding them to fp16 is exact here and the result equals the bf16-weight product.
  auto k = make_f16_compute_linear(make_bf16_row_decoder(w.to(DType::BF16)), Tensor());
  const Tensor ref = linear_reference(round_f16(x), w.to(DType::BF16).to(DType::F32), Tensor());
  EXPECT_LE(qdit::testing::max_abs_diff(ref, k->forward(x)), 2e-5f * qdit::testing::max_abs(ref));
}

}  // namespace
}  // namespace qdit::kernels
