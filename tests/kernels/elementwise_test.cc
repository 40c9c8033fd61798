#include <gtest/gtest.h>

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/rope.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;

TEST(Elementwise, BroadcastAddMul) {
  Tensor a = random_tensor({3, 4, 5}, 1);
  Tensor b = random_tensor({4, 1}, 2);
  Tensor c = add(a, b);
  Tensor d = mul(a.transpose(0, 1).contiguous().transpose(0, 1), random_tensor({5}, 3));
  Tensor e = random_tensor({5}, 3);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k) {
        const int64_t idx = (i * 4 + j) * 5 + k;
        EXPECT_FLOAT_EQ(c.item_f32(idx), a.item_f32(idx) + b.item_f32(j));
        EXPECT_FLOAT_EQ(d.item_f32(idx), a.item_f32(idx) * e.item_f32(k));
      }
  EXPECT_THROW(add(a, random_tensor({3}, 1)), Error);
}

TEST(Elementwise, ActivationsHandComputed) {
  Tensor x = Tensor::from_vector({-3.0f, -0.5f, 0.0f, 0.7f, 2.0f}, {5});
  const double xs[] = {-3.0, -0.5, 0.0, 0.7, 2.0};
  auto gt = activation(x, Activation::GeluTanh).to_vector();
  auto ge = activation(x, Activation::GeluErf).to_vector();
  auto si = activation(x, Activation::Silu).to_vector();
  auto qg = quick_gelu(x).to_vector();
  for (int i = 0; i < 5; ++i) {
    const double v = xs[i];
    EXPECT_NEAR(gt[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 1e-6);
    EXPECT_NEAR(ge[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-6);
    EXPECT_NEAR(si[i], v / (1 + std::exp(-v)), 1e-6);
    EXPECT_NEAR(qg[i], v / (1 + std::exp(-1.702 * v)), 1e-6);
  }
  // GELU(2) with erf: 1.9544997361
  EXPECT_NEAR(ge[4], 1.9544997361, 1e-6);
}

TEST(Elementwise, ModulateAndGatedResidualWithStridedChunks) {
  const int64_t B = 2, S = 3, D = 4;
  Tensor x = random_tensor({B, S, D}, 4);
  Tensor mods = random_tensor({B, 3 * D}, 5);  // [shift | scale | gate], chunks are strided views
  Tensor shift = mods.slice(1, 0, D), scale = mods.slice(1, D, 2 * D), gate = mods.slice(1, 2 * D, 3 * D);
  Tensor y = modulate(x, shift, scale);
  Tensor r = random_tensor({B, S, D}, 6);
  Tensor r0 = r.clone();
  gated_residual_inplace(r, x, gate);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t i = (b * S + s) * D + d;
        const float xv = x.item_f32(i);
        EXPECT_FLOAT_EQ(y.item_f32(i), xv * (1 + mods.item_f32(b * 3 * D + D + d)) + mods.item_f32(b * 3 * D + d));
        EXPECT_FLOAT_EQ(r.item_f32(i), r0.item_f32(i) + mods.item_f32(b * 3 * D + 2 * D + d) * xv);
      }
  EXPECT_THROW(modulate(x, random_tensor({B, D + 1}, 1), scale), Error);
}

TEST(Layout, ConcatAlongEachDim) {
  Tensor a = random_tensor({2, 3, 4}, 7), b = random_tensor({2, 1, 4}, 8);
  Tensor c = concat({a, b}, 1);
  ASSERT_EQ(c.shape(), (Shape{2, 4, 4}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        const float want = j < 3 ? a.item_f32((i * 3 + j) * 4 + k) : b.item_f32(i * 4 + k);
        EXPECT_EQ(c.item_f32((i * 4 + j) * 4 + k), want);
      }
  Tensor d = concat({a, a}, -1);
  EXPECT_EQ(d.shape(), (Shape{2, 3, 8}));
  EXPECT_EQ(d.item_f32(5), a.item_f32(1));
  EXPECT_THROW(concat({a, random_tensor({2, 3, 5}, 1)}, 1), Error);
}

// Strided parts with a contiguous last dim (column slices of a fused GEMM output) are copied row
// by row into place: the same result as concatenating their contiguous copies.
TEST(Layout, ConcatStridedParts) {
  const Tensor a = random_tensor({2, 5, 3, 4}, 21).slice(1, 1, 4).slice(3, 1, 3);  // [2, 3, 3, 2] strided
  const Tensor b = random_tensor({2, 3, 3, 4}, 22).slice(3, 2, 4);
  ASSERT_FALSE(a.is_contiguous());
  for (int64_t dim : {0, 1, 2, 3})
    EXPECT_EQ(concat({a, b}, dim).to_vector(), concat({a.contiguous(), b.contiguous()}, dim).to_vector()) << dim;
}

TEST(Rope, InterleavedPairsMatchFormula) {
  const int64_t B = 2, S = 5, H = 3, D = 6;
  Tensor x = random_tensor({B, H, S, D}, 9).permute({0, 2, 1, 3});  // strided [B,S,H,D] view
  Tensor cs = random_tensor({S, D / 2}, 10), sn = random_tensor({S, D / 2}, 11);
  Tensor y = rope_interleaved(x, cs, sn);
  Tensor xc = x.contiguous();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < D / 2; ++j) {
          const int64_t base = ((b * S + s) * H + h) * D;
          const float x0 = xc.item_f32(base + 2 * j), x1 = xc.item_f32(base + 2 * j + 1);
          const float c = cs.item_f32(s * D / 2 + j), sv = sn.item_f32(s * D / 2 + j);
          // Against the formula in double: the kernel rounds each product at most once (FMA), so
          // near-cancelling pairs can differ from a plain f32 evaluation by more than a few ulps.
          EXPECT_NEAR(y.item_f32(base + 2 * j), double(c) * x0 - double(sv) * x1, 2e-7);
          EXPECT_NEAR(y.item_f32(base + 2 * j + 1), double(sv) * x0 + double(c) * x1, 2e-7);
        }
}
