// kernels::rms_norm_rope_into (Flux's fused q/k RMSNorm + interleaved RoPE) against the unfused
// path it replaces, rope_interleaved(rms_norm(x)), and a double-precision formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/norm.h"
#include "qdit/kernels/rope.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::random_tensor;

namespace {

constexpr float kEps = 1e-6f;

// Element-wise bit equality of two same-shaped f32 tensors (views allowed).
void expect_bit_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<float> a = got.to_vector(), b = want.to_vector();
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ < 3)
      ADD_FAILURE() << what << ": element " << i << " is " << a[i] << ", unfused " << b[i];
  EXPECT_EQ(bad, 0) << what;
}

// out = rope(rms_norm(x) * w) in double, positions first..first+S.
std::vector<double> formula(const Tensor& x_in, const Tensor& w, const Tensor& cs, const Tensor& sn, int64_t first) {
  const Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), S = x.size(1), H = x.size(2), D = x.size(3);
  const std::vector<float> v = x.to_vector(), c = cs.to_vector(), s = sn.to_vector();
  std::vector<double> out(v.size());
  for (int64_t r = 0; r < B * S * H; ++r) {
    const int64_t pos = first + (r / H) % S;
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += double(v[r * D + j]) * v[r * D + j];
    const double rstd = 1.0 / std::sqrt(ss / D + kEps);
    for (int64_t j = 0; j < D; j += 2) {
      const double n0 = v[r * D + j] * rstd * (w.defined() ? w.item_f32(j) : 1.0);
      const double n1 = v[r * D + j + 1] * rstd * (w.defined() ? w.item_f32(j + 1) : 1.0);
      const double cj = c[pos * D / 2 + j / 2], sj = s[pos * D / 2 + j / 2];
      out[r * D + j] = cj * n0 - sj * n1;
      out[r * D + j + 1] = sj * n0 + cj * n1;
    }
  }
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// Strided inputs (heads of a fused q/k/v output, a head-major permutation), output into a row
// range of a bigger tensor, with and without a weight, several thread counts: bit for bit the
// unfused rms_norm + rope_interleaved, and within 1e-6 of the formula in double (relative to
// max(1, max|ref|): a few f32 roundings).
TEST(RmsNormRope, MatchesUnfusedBitForBit) {
  const int saved = num_threads();
  for (int64_t D : {2, 6, 18, 64, 128})
    for (int64_t H : {1, 3})
      for (int layout = 0; layout < 2; ++layout)
        for (int threads : {1, 2, 3}) {
          set_num_threads(threads);
          const int64_t B = 2, S = 7, first = layout == 0 ? 0 : 3, P = first + S + 2, extra = 4;
          const uint32_t seed = static_cast<uint32_t>(D * 100 + H * 10 + layout);
          // layout 0: the k third of a fused [B, S, 3H, D] output; 1: [B, H, S, D] permuted.
          const Tensor x = layout == 0 ? random_tensor({B, S, 3 * H, D}, seed, -4, 4).slice(2, H, 2 * H)
                                       : random_tensor({B, H, S, D}, seed, -4, 4).permute({0, 2, 1, 3});
          ASSERT_TRUE(!x.is_contiguous() || (H == 1 && layout == 1));  // one head: the permutation is a no-op
          const Tensor w = layout == 0 ? random_tensor({D}, seed + 1, 0.5f, 1.5f) : Tensor();
          const Tensor cs = random_tensor({P, D / 2}, seed + 2), sn = random_tensor({P, D / 2}, seed + 3);
          Tensor big = Tensor::full({B, S + extra, H, D}, 7.0f);
          Tensor out = big.slice(1, 2, 2 + S);
          rms_norm_rope_into(x, w, kEps, cs, sn, first, out);

          const std::string what = "D " + std::to_string(D) + " H " + std::to_string(H) + " layout " +
                                   std::to_string(layout) + " threads " + std::to_string(threads);
          const Tensor want = rope_interleaved(rms_norm(x, w, kEps), cs.slice(0, first, first + S),
                                               sn.slice(0, first, first + S));
          expect_bit_identical(out, want, what);
          const std::vector<double> ref = formula(x, w, cs, sn, first);
          const std::vector<float> got = out.contiguous().to_vector();
          double worst = 0, scale = 1.0;
          for (double r : ref) scale = std::max(scale, std::fabs(r));
          for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
          EXPECT_LE(worst / scale, 1e-6) << what;
          // Rows outside the range are untouched.
          for (int64_t r : {int64_t{0}, int64_t{1}, S + 2, S + 3})
            for (float v : big.slice(1, r, r + 1).contiguous().to_vector()) ASSERT_EQ(v, 7.0f) << what;
        }
  set_num_threads(saved);
}

// Wrong shapes and dtypes fail with the op named and the shapes given.
TEST(RmsNormRope, RejectsBadInputs) {
  const Tensor x = random_tensor({1, 4, 2, 8}, 1), w = random_tensor({8}, 2);
  const Tensor cs = random_tensor({4, 4}, 3), sn = random_tensor({4, 4}, 4);
  Tensor out = Tensor::empty({1, 4, 2, 8}, DType::F32);
  const auto msg = [&](const Tensor& xx, const Tensor& ww, const Tensor& c, const Tensor& s, int64_t first,
                       Tensor o) { return error_of([&] { rms_norm_rope_into(xx, ww, kEps, c, s, first, o); }); };
  auto has = [](const std::string& m, const std::string& part) {
    return m.find("rms_norm_rope") != std::string::npos && m.find(part) != std::string::npos;
  };
  EXPECT_EQ(msg(x, w, cs, sn, 0, out), "(no error)");
  EXPECT_TRUE(has(msg(x.to(DType::BF16), w, cs, sn, 0, out), "bf16[1, 4, 2, 8]"));
  EXPECT_TRUE(has(msg(x.reshape({4, 2, 8}), w, cs, sn, 0, out), "[4, 2, 8]"));
  EXPECT_TRUE(has(msg(x, w, cs, sn, 0, Tensor::empty({1, 5, 2, 8}, DType::F32)), "[1, 5, 2, 8]"));
  EXPECT_TRUE(has(msg(x, random_tensor({6}, 5), cs, sn, 0, out), "[6]"));
  EXPECT_TRUE(has(msg(x, w, cs, sn, 1, out), "[4, 4]"));  // table has 4 rows, positions 1..4 need 5
  EXPECT_TRUE(has(msg(x, w, random_tensor({4, 3}, 6), sn, 0, out), "[4, 3]"));
  EXPECT_TRUE(has(msg(x.slice(3, 0, 7), w, cs, sn, 0, Tensor::empty({1, 4, 2, 7}, DType::F32)), "7"));
  EXPECT_TRUE(has(msg(x, w, cs, sn, 0, x), "storage"));
  EXPECT_TRUE(has(msg(random_tensor({1, 4, 8, 2}, 7).permute({0, 1, 3, 2}), Tensor(), random_tensor({4, 1}, 8),
                      random_tensor({4, 1}, 9), 0, out),
                  "contiguous"));
}
