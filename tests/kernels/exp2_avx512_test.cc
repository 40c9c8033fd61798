// exp2_bf16_precision (kernels/cpu/exp2_avx512.h), the 2^t of the AMX attention's softmax and of
// GELU for bf16 GEMM outputs: relative error under 8e-5 against std::exp2 from the smallest normal
// result to 2^8 (the softmax's lazy-max bound), and exactly 0 in the lanes not kept (the softmax
// drops -inf, NaN and denormal-bound lanes that way). A constant factor would cancel in the
// softmax's normalisation, so this checks the values themselves. Compiled with the AVX-512 flags
// (the file name has "_avx512"), run only where the CPU has AVX-512.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "qdit/kernels/cpu/isa.h"

#pragma GCC target("avx512f,avx512dq,fma")
#include "qdit/kernels/cpu/exp2_avx512.h"

namespace {

// 2^t for every value, 16 at a time, keeping the lanes whose bit is set in keep (a 16-bit pattern).
std::vector<float> exp2_of(const std::vector<float>& t, uint32_t keep) {
  std::vector<float> out(t.size());
  for (size_t i = 0; i < t.size(); i += 16) {
    const __mmask16 n = t.size() - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (t.size() - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(n, t.data() + i);
    _mm512_mask_storeu_ps(out.data() + i, n, exp2_bf16_precision(v, static_cast<__mmask16>(keep)));
  }
  return out;
}

bool cpu_has_avx512() { return qdit::kernels::cpu::has_avx512_bf16(); }

}  // namespace

TEST(Exp2Avx512, RelativeErrorBelowBf16Rounding) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 here: the code under test is never entered";
  std::vector<float> t;
  // From the softmax's lower bound (below it the lanes are dropped: 2^t would be near the denormals).
  for (double x = -125.5; x <= 8.0; x += 1.0 / 1024) t.push_back(static_cast<float>(x));
  for (float x : {-0.0f, 1e-30f, -1e-30f, 0.99999994f, -0.99999994f, 7.9999995f}) t.push_back(x);
  const std::vector<float> got = exp2_of(t, 0xFFFF);
  double worst = 0.0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double want = std::exp2(static_cast<double>(t[i]));
    ASSERT_TRUE(std::isnormal(got[i])) << "2^" << t[i] << " gave " << got[i];
    worst = std::max(worst, std::abs(got[i] / want - 1.0));
  }
  EXPECT_LT(worst, 8e-5);
  EXPECT_GT(worst, 1e-6);  // a degree-3 polynomial: not the library's exp2
}

TEST(Exp2Avx512, LanesNotKeptAreZero) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 here: the code under test is never entered";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> t = {1.0f, -inf, 3.5f, nan, -200.0f, 0.25f, -1.0f, 2.0f,
                                4.0f, 5.0f, -3.0f, 6.0f, 7.0f, 0.5f, -0.5f, 1.5f};
  const uint32_t keep = 0b1110'1111'1110'0101;  // lanes 0, 2, 5-7, 8-11, 13-15
  const std::vector<float> got = exp2_of(t, keep);
  for (size_t i = 0; i < t.size(); ++i) {
    if (keep >> i & 1) {
      EXPECT_NEAR(got[i] / std::exp2(t[i]), 1.0, 8e-5) << "lane " << i;
    } else {
      EXPECT_EQ(got[i], 0.0f) << "lane " << i << " (t = " << t[i] << ")";
    }
  }
}
