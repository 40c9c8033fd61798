#include <gtest/gtest.h>

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/norm.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;

namespace {
// Naive double-precision references.
Tensor ln_ref(const Tensor& x, const Tensor& w, const Tensor& b, double eps, bool rms) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  std::vector<float> v = x.to_vector(), out(v.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += v[r * d + j];
    mean = rms ? 0.0 : mean / d;
    for (int64_t j = 0; j < d; ++j) var += (v[r * d + j] - mean) * (v[r * d + j] - mean);
    var /= d;
    for (int64_t j = 0; j < d; ++j) {
      double o = (v[r * d + j] - mean) / std::sqrt(var + eps);
      if (w.defined()) o *= w.item_f32(j);
      if (b.defined()) o += b.item_f32(j);
      out[r * d + j] = static_cast<float>(o);
    }
  }
  return Tensor::from_vector(out, x.shape());
}
}  // namespace

TEST(Norm, LayerNormAffineAndNot) {
  for (int64_t d : {1, 7, 64, 129}) {
    Tensor x = random_tensor({3, 5, d}, static_cast<uint32_t>(d), -3, 5);
    Tensor w = random_tensor({d}, 2), b = random_tensor({d}, 3);
    expect_close(layer_norm(x, w, b, 1e-5f), ln_ref(x, w, b, 1e-5, false), 1e-5f, "affine");
    expect_close(layer_norm(x, Tensor(), Tensor(), 1e-6f), ln_ref(x, Tensor(), Tensor(), 1e-6, false), 1e-5f);
  }
}

TEST(Norm, RmsNorm) {
  Tensor x = random_tensor({4, 33}, 4, -2, 2);
  Tensor w = random_tensor({33}, 5);
  expect_close(rms_norm(x, w, 1e-6f), ln_ref(x, w, Tensor(), 1e-6, true), 1e-5f);
  expect_close(rms_norm(x, Tensor(), 1e-6f), ln_ref(x, Tensor(), Tensor(), 1e-6, true), 1e-5f);
}

TEST(Norm, GroupNormMatchesPerGroupLayerNorm) {
  const int64_t N = 2, C = 6, H = 3, W = 5, G = 3;
  Tensor x = random_tensor({N, C, H, W}, 6, -1, 3);
  Tensor w = random_tensor({C}, 7), b = random_tensor({C}, 8);
  Tensor y = group_norm(x, G, w, b, 1e-6f);
  // Each group is a LayerNorm over its (C/G)*H*W values, then the per-channel affine.
  Tensor flat = ln_ref(x.reshape({N * G, C / G * H * W}), Tensor(), Tensor(), 1e-6, false).reshape({N, C, H, W});
  std::vector<float> ref = flat.to_vector();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < H * W; ++s) {
        const int64_t i = (n * C + c) * H * W + s;
        ref[i] = ref[i] * w.item_f32(c) + b.item_f32(c);
      }
  expect_close(y, Tensor::from_vector(ref, x.shape()), 1e-5f);
}

TEST(Norm, LayerNormModulateEqualsUnfused) {
  Tensor x = random_tensor({2, 9, 24}, 9, -2, 2);
  Tensor mods = random_tensor({2, 48}, 10);
  Tensor shift = mods.slice(1, 0, 24), scale = mods.slice(1, 24, 48);
  Tensor fused = layer_norm_modulate(x, shift, scale, 1e-6f);
  Tensor unfused = modulate(layer_norm(x, Tensor(), Tensor(), 1e-6f), shift, scale);
  expect_close(fused, unfused, 1e-6f);
}

TEST(Norm, VectorisedStatisticsAtModelWidths) {
  // The widths the DiTs use (PixArt 1152, SD3 1536, Flux 3072, per-head 64/128) and odd ones
  // that leave scalar tails, with a large common offset (the centred second pass matters), against
  // the double reference; layer_norm_modulate also with a [1, D] modulation broadcast over B.
  for (int64_t d : {1152, 1536, 3072, 64, 128, 1157, 13, 7}) {
    Tensor x = random_tensor({2, 5, d}, 20 + static_cast<uint32_t>(d), -3, 3);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 40.0f;
    const Tensor w = random_tensor({d}, 21, 0.5f, 1.5f);
    const Tensor b = random_tensor({d}, 22);
    expect_close(layer_norm(x, w, b, 1e-6f), ln_ref(x, w, b, 1e-6, false), 2e-5f);
    expect_close(rms_norm(x, w, 1e-6f), ln_ref(x, w, Tensor(), 1e-6, true), 2e-5f);
    const Tensor mods = random_tensor({2, 2 * d}, 23);
    for (const Tensor& m : {mods, mods.slice(0, 1, 2)}) {
      const Tensor shift = m.slice(1, 0, d), scale = m.slice(1, d, 2 * d);
      const Tensor fused = layer_norm_modulate(x, shift, scale, 1e-6f);
      const Tensor ref = modulate(ln_ref(x, Tensor(), Tensor(), 1e-6, false), shift, scale);
      expect_close(fused, ref, 1e-5f);
    }
  }
}

// int8dq's fused norm: the codes and scales quantize_rows_s8 gives for layer_norm_modulate's rows,
// bit for bit, in the kernel's layout (row stride past D, padding rows, AMX A tiles) with zero
// padding.
TEST(Norm, LayerNormModulateS8EqualsQuantizedRows) {
  for (int64_t d : {1152, 64, 13}) {
    Tensor x = random_tensor({2, 7, d}, 30 + static_cast<uint32_t>(d), -3, 3);
    const Tensor mods = random_tensor({2, 2 * d}, 31, -2, 2);
    for (const Tensor& m : {mods, mods.slice(0, 1, 2)}) {
      const Tensor shift = m.slice(1, 0, d), scale = m.slice(1, d, 2 * d);
      const Tensor rows = layer_norm_modulate(x, shift, scale, 1e-6f);
      std::vector<int8_t> q_ref(static_cast<size_t>(14 * d));
      std::vector<float> s_ref(14);
      quantize_rows_s8(rows.data<float>(), 14, d, 127.5f, q_ref.data(), s_ref.data());
      const int64_t wide = (d + 63) / 64 * 64 + 64;
      for (const RowQuantSpec spec : {RowQuantSpec{127.5f, d, 1, false}, RowQuantSpec{127.5f, wide, 32, false},
                                      RowQuantSpec{127.5f, wide, 32, true}}) {
        const QuantizedRows q = layer_norm_modulate_s8(x, shift, scale, 1e-6f, spec);
        ASSERT_EQ(q.q.shape(), (Shape{spec.padded_rows(14), spec.lda}));
        ASSERT_EQ(q.m, 14);
        ASSERT_EQ(q.k, d);
        for (int64_t r = 0; r < q.q.size(0); ++r) {
          if (r < 14) {
            ASSERT_EQ(q.scales.data<float>()[r], s_ref[r]) << "row " << r;
          }
          for (int64_t j = 0; j < spec.lda; ++j) {
            const int8_t want = r < 14 && j < d ? q_ref[r * d + j] : 0;
            ASSERT_EQ(q.code(r, j), want) << "d=" << d << " row " << r << " col " << j << " tiles " << spec.amx_tiles;
          }
        }
      }
    }
  }
  const Tensor x = random_tensor({1, 3, 8}, 1), mod = random_tensor({1, 8}, 2);
  EXPECT_THROW(layer_norm_modulate_s8(x, mod, mod, 1e-6f, RowQuantSpec{127.5f, 4, 1}), Error);
}

TEST(Norm, SoftmaxRowsSumToOneAndMatchFormula) {
  Tensor x = random_tensor({5, 17}, 11, -20, 20);
  Tensor y = softmax(x);
  for (int64_t r = 0; r < 5; ++r) {
    double m = -1e30, s = 0;
    for (int64_t j = 0; j < 17; ++j) m = std::max<double>(m, x.item_f32(r * 17 + j));
    for (int64_t j = 0; j < 17; ++j) s += std::exp(x.item_f32(r * 17 + j) - m);
    for (int64_t j = 0; j < 17; ++j)
      EXPECT_NEAR(y.item_f32(r * 17 + j), std::exp(x.item_f32(r * 17 + j) - m) / s, 1e-6);
  }
}
