#include <gtest/gtest.h>

#include "qdit/core/error.h"
#include "qdit/kernels/gemm.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;

namespace {
// bf16 rounding of inputs and weights: relative error per product ~2^-8; over K terms of a
// random-sign sum the error grows like sqrt(K). 2e-2 of max(1, max|ref|) holds with margin.
constexpr float kF32Tol = 1e-5f;
constexpr float kBf16Tol = 2e-2f;
}  // namespace

class GemmShapes : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(GemmShapes, F32AndBf16MatchReference) {
  auto [m, k, n] = GetParam();
  Tensor x = random_tensor({m, k}, 1);
  Tensor w = random_tensor({n, k}, 2);
  Tensor b = random_tensor({n}, 3);
  Tensor ref = linear_reference(x, w, b);
  PackedLinear f32(w, b, DType::F32);
  expect_close(f32.forward(x), ref, kF32Tol, "f32");
  // bf16 compute compared against the reference on bf16-rounded operands, plus a loose check
  // against the exact one.
  auto bf = make_float_linear(w, b, DType::BF16);
  Tensor y = bf->forward(x);
  Tensor ref_rounded = linear_reference(x.to(DType::BF16), w.to(DType::BF16), b);
  expect_close(y, ref_rounded, 1e-5f, "bf16 vs rounded reference");
  expect_close(y, ref, kBf16Tol, "bf16 vs exact reference");
}

INSTANTIATE_TEST_SUITE_P(Sizes, GemmShapes,
                         ::testing::Values(std::make_tuple(1, 1, 1), std::make_tuple(7, 13, 5),
                                           std::make_tuple(33, 64, 48), std::make_tuple(77, 24, 130),
                                           std::make_tuple(256, 96, 40), std::make_tuple(3, 300, 17)));

TEST(Gemm, EpiloguesMatchReference) {
  Tensor x = random_tensor({19, 40}, 4, -2, 2);
  Tensor w = random_tensor({23, 40}, 5);
  Tensor b = random_tensor({23}, 6);
  PackedLinear lin(w, b, DType::F32);
  for (Activation a : {Activation::GeluTanh, Activation::GeluErf, Activation::Silu, Activation::Relu}) {
    GemmOptions opt;
    opt.activation = a;
    expect_close(lin.forward(x, opt), linear_reference(x, w, b, a), kF32Tol, activation_name(a));
  }
}

TEST(Gemm, AccumulateAddsIntoOutput) {
  Tensor x = random_tensor({2, 5, 8}, 7);
  Tensor w = random_tensor({6, 8}, 8);
  PackedLinear lin(w, Tensor(), DType::F32);
  Tensor y = random_tensor({2, 5, 6}, 9);
  Tensor expected = linear_reference(x, w, Tensor());
  for (int64_t i = 0; i < y.numel(); ++i) expected.data<float>()[i] += y.data<float>()[i];
  GemmOptions opt;
  opt.accumulate = true;
  lin.forward_into(x, y, opt);
  expect_close(y, expected, kF32Tol);
  EXPECT_EQ(lin.forward(x).shape(), (Shape{2, 5, 6}));
}

// bf16 compute can write a bf16 output: exactly the f32 result rounded to nearest even, with bias
// and activation applied before the rounding.
TEST(Gemm, Bf16OutputIsTheRoundedF32Result) {
  if (!native_bf16_gemm_available()) GTEST_SKIP() << "no oneDNN bf16 GEMM on this CPU";
  Tensor x = random_tensor({37, 72}, 12, -2, 2);
  Tensor w = random_tensor({50, 72}, 13);
  Tensor b = random_tensor({50}, 14);
  PackedLinear lin(w, b, DType::BF16);
  ASSERT_TRUE(lin.writes_bf16());
  EXPECT_FALSE(PackedLinear(w, b, DType::F32).writes_bf16());
  for (Activation a : {Activation::None, Activation::GeluTanh}) {
    GemmOptions opt;
    opt.activation = a;
    const Tensor want = lin.forward(x, opt).to(DType::BF16);
    Tensor got = Tensor::empty({37, 50}, DType::BF16);
    lin.forward_into(x, got, opt);
    for (int64_t i = 0; i < got.numel(); ++i)
      ASSERT_EQ(got.data<uint16_t>()[i], want.data<uint16_t>()[i]) << activation_name(a) << " element " << i;
  }
  Tensor y = Tensor::empty({37, 50}, DType::BF16);
  GemmOptions acc;
  acc.accumulate = true;
  EXPECT_THROW(lin.forward_into(x, y, acc), Error);
}

// bf16 compute rounds its input to bf16: a bf16 input (a producer's bf16 output) gives exactly the
// result of the f32 input it rounds.
TEST(Gemm, Bf16ComputeTakesTheRoundedInputAsIs) {
  if (!native_bf16_gemm_available()) GTEST_SKIP() << "no oneDNN bf16 GEMM on this CPU";
  Tensor x = random_tensor({29, 64}, 15, -2, 2);
  Tensor w = random_tensor({40, 64}, 16);
  PackedLinear lin(w, random_tensor({40}, 17), DType::BF16);
  ASSERT_TRUE(lin.rounds_input_to_bf16());
  EXPECT_FALSE(PackedLinear(w, Tensor(), DType::F32).rounds_input_to_bf16());
  EXPECT_EQ(lin.forward(x.to(DType::BF16)).to_vector(), lin.forward(x).to_vector());
}

TEST(Gemm, Bf16WeightsAndInputs) {
  Tensor x = random_tensor({9, 32}, 10).to(DType::BF16);
  Tensor w = random_tensor({12, 32}, 11).to(DType::BF16);
  auto lin = make_float_linear(w, Tensor(), DType::BF16);
  expect_close(lin->forward(x), linear_reference(x, w, Tensor()), 1e-5f);
}

TEST(Gemm, TiledLinearCoversTailTilesEpiloguesAndAccumulate) {
  // K large enough that a tile is smaller than N, and N not a multiple of the tile.
  const int64_t m = 5, k = 2048, n = 75;
  Tensor x = random_tensor({m, k}, 12);
  Tensor w = random_tensor({n, k}, 13).to(DType::BF16);
  Tensor b = random_tensor({n}, 14);
  TiledLinear lin(make_bf16_row_decoder(w), b);
  ASSERT_LT(lin.tile_rows(), n);
  EXPECT_EQ(lin.weight_bytes(), static_cast<size_t>(n * k * 2 + n * 4));
  GemmOptions opt;
  opt.activation = Activation::GeluTanh;
  expect_close(lin.forward(x, opt), linear_reference(x, w, b, Activation::GeluTanh), 1e-5f);
  Tensor y = random_tensor({m, n}, 15);
  Tensor expected = linear_reference(x, w, b);
  for (int64_t i = 0; i < y.numel(); ++i) expected.data<float>()[i] += y.data<float>()[i];
  opt = {};
  opt.accumulate = true;
  lin.forward_into(x, y, opt);
  expect_close(y, expected, 1e-5f);
}

TEST(Gemm, ShapeErrorsNameTheOp) {
  PackedLinear lin(random_tensor({4, 8}, 1), Tensor(), DType::F32);
  try {
    lin.forward(random_tensor({3, 7}, 2));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[linear]"), std::string::npos);
  }
  EXPECT_THROW(PackedLinear(random_tensor({4, 8}, 1), random_tensor({5}, 1), DType::F32), Error);
}
