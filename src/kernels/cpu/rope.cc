#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/core/profile.h"
#include "qdit/kernels/cpu/row_stats.h"
#include "qdit/kernels/rope.h"

namespace qdit::kernels {

namespace {

// One head of D channels: v = x (kNorm: x * rstd, then * w where w is given, as rms_norm rounds
// it), then y = [c*v0 - s*v1, c*v1 + s*v0] per pair. The rotation is written as explicit FMAs in
// both the vector and the scalar tail, so the unfused rope and the fused kernel round alike
// whatever the compiler would otherwise contract.
template <bool kNorm>
inline void rotate_head(const float* x, float rstd, const float* w, const float* c, const float* s, float* y,
                        int64_t D) {
  int64_t j = 0;
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);                  // pair cos/sin to lanes
  const __m256 neg_even = _mm256_setr_ps(-0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f);
  const __m256 vr = _mm256_set1_ps(rstd);
  for (; j + 8 <= D; j += 8) {
    __m256 v = _mm256_loadu_ps(x + j);
    if constexpr (kNorm) {
      v = _mm256_mul_ps(v, vr);
      if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + j));
    }
    const __m256 cd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(c + j / 2)), dup);
    const __m256 sd = _mm256_xor_ps(
        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(s + j / 2)), dup), neg_even);
    const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (v1, v0) per pair
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(cd, v, _mm256_mul_ps(sd, swapped)));
  }
  for (; j < D; j += 2) {
    float v0 = x[j], v1 = x[j + 1];
    if constexpr (kNorm) {
      v0 *= rstd;
      v1 *= rstd;
      if (w) {
        v0 *= w[j];
        v1 *= w[j + 1];
      }
    }
    const float cj = c[j / 2], sj = s[j / 2];
    y[j] = std::fma(cj, v0, -(sj * v1));
    y[j + 1] = std::fma(cj, v1, sj * v0);
  }
}

// Rows (b, s) of H heads per task: ~16K elements each.
int64_t grain(int64_t H, int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(H * D, 1)); }

void check_table(const Tensor& t, const char* what, int64_t rows, int64_t pairs, const char* op) {
  QDIT_CHECK(t.defined() && t.dtype() == DType::F32 && t.dim() == 2 && t.size(0) >= rows && t.size(1) == pairs, "[",
             op, "] ", what, " must be f32 [>= ", rows, ", ", pairs, "], got ",
             t.defined() ? t.desc() : std::string("undefined"));
}

}  // namespace

Tensor rope_interleaved(const Tensor& x, const Tensor& cos_in, const Tensor& sin_in) {
  profile::Scope prof("rope");
  QDIT_CHECK(x.dim() == 4 && x.dtype() == DType::F32, "[rope] x must be f32 [B, S, H, D], got ", x.desc());
  const int64_t B = x.size(0), S = x.size(1), H = x.size(2), D = x.size(3);
  QDIT_CHECK(D % 2 == 0, "[rope] head dim ", D, " must be even");
  QDIT_CHECK(x.strides()[3] == 1, "[rope] last dim of x must be contiguous");
  Tensor c = cos_in.contiguous(), s = sin_in.contiguous();
  QDIT_CHECK(c.numel() == S * D / 2 && s.numel() == S * D / 2 && c.dtype() == DType::F32 && s.dtype() == DType::F32,
             "[rope] cos/sin must be f32 [", S, ", ", D / 2, "], got ", c.desc(), " and ", s.desc());
  Tensor y = Tensor::empty({B, S, H, D}, DType::F32);
  const float* xp = x.data<float>();
  const float* cp = c.data<float>();
  const float* sp = s.data<float>();
  float* yp = y.data<float>();
  const auto& st = x.strides();
  parallel_for(B * S, grain(H, D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / S, pos = r % S;
      for (int64_t h = 0; h < H; ++h)
        rotate_head<false>(xp + b * st[0] + pos * st[1] + h * st[2], 1.0f, nullptr, cp + pos * D / 2,
                           sp + pos * D / 2, yp + (r * H + h) * D, D);
    }
  });
  return y;
}

void rms_norm_rope_into(const Tensor& x, const Tensor& norm_weight, float eps, const Tensor& cos_in,
                        const Tensor& sin_in, int64_t first_position, Tensor& out) {
  profile::Scope prof("rms_norm_rope");
  constexpr const char* op = "rms_norm_rope";
  QDIT_CHECK(x.defined() && x.dim() == 4 && x.dtype() == DType::F32, "[", op, "] x must be f32 [B, S, H, D], got ",
             x.defined() ? x.desc() : std::string("undefined"));
  QDIT_CHECK(out.defined() && out.dtype() == DType::F32 && out.shape() == x.shape(), "[", op, "] out must be f32 ",
             shape_str(x.shape()), " like x, got ", out.defined() ? out.desc() : std::string("undefined"));
  const int64_t B = x.size(0), S = x.size(1), H = x.size(2), D = x.size(3);
  QDIT_CHECK(D % 2 == 0, "[", op, "] head dim ", D, " must be even (interleaved pairs), x ", x.desc());
  QDIT_CHECK(x.strides()[3] == 1 && out.strides()[3] == 1, "[", op, "] the last dim of x and out must be contiguous");
  QDIT_CHECK(x.storage() != out.storage(), "[", op, "] out must not share storage with x");
  QDIT_CHECK(first_position >= 0, "[", op, "] first position ", first_position, " is negative");
  const float* w = nullptr;
  if (norm_weight.defined()) {
    QDIT_CHECK(norm_weight.dtype() == DType::F32 && norm_weight.numel() == D && norm_weight.is_contiguous(), "[", op,
               "] norm weight must be contiguous f32 [", D, "], got ", norm_weight.desc());
    w = norm_weight.data<float>();
  }
  const Tensor c = cos_in.contiguous(), s = sin_in.contiguous();
  check_table(c, "cos", first_position + S, D / 2, op);
  check_table(s, "sin", first_position + S, D / 2, op);
  const float* xp = x.data<float>();
  const float* cp = c.data<float>() + first_position * (D / 2);
  const float* sp = s.data<float>() + first_position * (D / 2);
  float* yp = out.data<float>();
  const auto& xs = x.strides();
  const auto& ys = out.strides();
  parallel_for(B * S, grain(H, D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / S, pos = r % S;
      for (int64_t h = 0; h < H; ++h) {
        const float* src = xp + b * xs[0] + pos * xs[1] + h * xs[2];
        // Read once for the statistics, once for the output: the head row (D floats) stays in L1.
        rotate_head<true>(src, cpu::rms_rstd(src, D, eps), w, cp + pos * (D / 2), sp + pos * (D / 2),
                          yp + b * ys[0] + pos * ys[1] + h * ys[2], D);
      }
    }
  });
}

}  // namespace qdit::kernels
