// Row statistics shared by the normalisation kernels (norm.cc) and the fused q/k RMSNorm + RoPE
// (rope.cc): one definition, so the fused kernel's RMS statistics equal rms_norm's bit for bit.
// Built with the baseline kernel flags (AVX2 + FMA).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace qdit::kernels::cpu {

inline double hsum_pd(__m256d v) {
  const __m128d a = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(a, _mm_unpackhi_pd(a, a)));
}

// Sum of x[0..d) and of (x - c)^2, accumulated in double over 4-lane vectors (8 independent
// accumulators: the double add latency, not the memory, bound the scalar loop at ~4 cycles per
// element; this runs near memory speed).
inline double sum_pd(const float* x, int64_t d) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; j < d; ++j) s += x[j];
  return s;
}
inline double sum_sq_centered_pd(const float* x, int64_t d, double c) {
  const __m256d vc = _mm256_set1_pd(c);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    const __m256d c0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v0)), vc);
    const __m256d c1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)), vc);
    const __m256d c2 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v1)), vc);
    const __m256d c3 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)), vc);
    a0 = _mm256_fmadd_pd(c0, c0, a0);
    a1 = _mm256_fmadd_pd(c1, c1, a1);
    a2 = _mm256_fmadd_pd(c2, c2, a2);
    a3 = _mm256_fmadd_pd(c3, c3, a3);
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; j < d; ++j) {
    const double t = x[j] - c;
    s += t * t;
  }
  return s;
}

// 1 / sqrt(mean(x^2) + eps) of one row (RMSNorm), the sum in double, rounded once to f32.
inline float rms_rstd(const float* x, int64_t d, float eps) {
  return static_cast<float>(1.0 / std::sqrt(sum_sq_centered_pd(x, d, 0.0) / d + eps));
}

}  // namespace qdit::kernels::cpu
