#include <immintrin.h>

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/profile.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/row_stats.h"
#include "qdit/kernels/cpu/thread_buffer.h"
#include "qdit/kernels/norm.h"

namespace qdit::kernels {

namespace {

using cpu::sum_pd;
using cpu::sum_sq_centered_pd;

void require_f32(const Tensor& t, const char* op) {
  QDIT_CHECK(t.dtype() == DType::F32, "[", op, "] expects f32, got ", t.desc());
}

const float* optional_param(const Tensor& p, int64_t n, const char* op, const char* what) {
  if (!p.defined()) return nullptr;
  QDIT_CHECK(p.numel() == n, "[", op, "] ", what, " has ", p.numel(), " elements, expected ", n);
  require_f32(p, op);
  QDIT_CHECK(p.is_contiguous(), "[", op, "] ", what, " must be contiguous");
  return p.data<float>();
}

// Mean and 1/sqrt(var + eps) of one row, in double.
inline void row_stats(const float* x, int64_t d, float eps, float& mean, float& rstd) {
  const double m = sum_pd(x, d) / d;
  mean = static_cast<float>(m);
  rstd = static_cast<float>(1.0 / std::sqrt(sum_sq_centered_pd(x, d, m) / d + eps));
}

int64_t row_grain(int64_t d) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)); }

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps) {
  profile::Scope prof("layer_norm");
  require_f32(x_in, "layer_norm");
  Tensor x = x_in.contiguous();
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  const float* w = optional_param(weight, d, "layer_norm", "weight");
  const float* b = optional_param(bias, d, "layer_norm", "bias");
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float mean, rstd;
      row_stats(xp + r * d, d, eps, mean, rstd);
      for (int64_t j = 0; j < d; ++j) {
        float v = (xp[r * d + j] - mean) * rstd;
        if (w) v *= w[j];
        if (b) v += b[j];
        yp[r * d + j] = v;
      }
    }
  });
  return y;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, float eps) {
  profile::Scope prof("rms_norm");
  require_f32(x_in, "rms_norm");
  Tensor x = x_in.contiguous();
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  const float* w = optional_param(weight, d, "rms_norm", "weight");
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      // PyTorch: x * rsqrt(mean(x^2) + eps) in f32, then * weight.
      const float rstd = cpu::rms_rstd(xp + r * d, d, eps);
      for (int64_t j = 0; j < d; ++j) {
        float v = xp[r * d + j] * rstd;
        yp[r * d + j] = w ? v * w[j] : v;
      }
    }
  });
  return y;
}

Tensor group_norm(const Tensor& x_in, int64_t groups, const Tensor& weight, const Tensor& bias, float eps) {
  profile::Scope prof("group_norm");
  require_f32(x_in, "group_norm");
  QDIT_CHECK(x_in.dim() >= 2, "[group_norm] expects [N, C, ...], got ", x_in.desc());
  Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), c = x.size(1);
  QDIT_CHECK(groups > 0 && c % groups == 0, "[group_norm] ", c, " channels not divisible into ", groups, " groups");
  const int64_t spatial = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t cpg = c / groups, group_size = cpg * spatial;
  const float* w = optional_param(weight, c, "group_norm", "weight");
  const float* b = optional_param(bias, c, "group_norm", "bias");
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(n * groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const float* src = xp + g * group_size;
      float* dst = yp + g * group_size;
      float mean, rstd;
      row_stats(src, group_size, eps, mean, rstd);
      const int64_t c0 = (g % groups) * cpg;
      for (int64_t ci = 0; ci < cpg; ++ci) {
        const float sw = w ? w[c0 + ci] : 1.0f, sb = b ? b[c0 + ci] : 0.0f;
        for (int64_t s = 0; s < spatial; ++s) {
          const int64_t i = ci * spatial + s;
          dst[i] = (src[i] - mean) * rstd * sw + sb;
        }
      }
    }
  });
  return y;
}

namespace {

// x [B, S, D] and its [B or 1, D] shift/scale views, checked, with the row modulation.
struct NormModulateArgs {
  Tensor x;
  int64_t B, S, D;
  const float *shp, *scp;
  int64_t shb, shi, scb, sci;
  NormModulateArgs(const Tensor& x_in, const Tensor& shift, const Tensor& scale, const char* op) {
    require_f32(x_in, op);
    QDIT_CHECK(x_in.dim() == 3, "[", op, "] x must be [B, S, D], got ", x_in.desc());
    x = x_in.contiguous();
    B = x.size(0);
    S = x.size(1);
    D = x.size(2);
    for (const Tensor* t : {&shift, &scale}) {
      require_f32(*t, op);
      QDIT_CHECK(t->dim() == 2 && (t->size(0) == B || t->size(0) == 1) && t->size(1) == D, "[", op, "] expected [", B,
                 ", ", D, "] modulation, got ", t->desc());
    }
    shb = shift.size(0) == 1 ? 0 : shift.strides()[0];
    shi = shift.strides()[1];
    scb = scale.size(0) == 1 ? 0 : scale.strides()[0];
    sci = scale.strides()[1];
    shp = shift.data<float>();
    scp = scale.data<float>();
  }
  // yr = LN(row r) * (1 + scale[b]) + shift[b].
  void row(int64_t r, float eps, float* yr) const {
    const int64_t b = r / S;
    const float* xr = x.data<float>() + r * D;
    float mean, rstd;
    row_stats(xr, D, eps, mean, rstd);
    const float* sc = scp + b * scb;
    const float* sh = shp + b * shb;
    int64_t j = 0;
    if (sci == 1 && shi == 1) {  // the usual [B, D] chunk views: 8 lanes at a time
      const __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd), one = _mm256_set1_ps(1.0f);
      for (; j + 8 <= D; j += 8) {
        const __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm), vr);
        const __m256 gain = _mm256_add_ps(one, _mm256_loadu_ps(sc + j));
        _mm256_storeu_ps(yr + j, _mm256_fmadd_ps(n, gain, _mm256_loadu_ps(sh + j)));
      }
    }
    for (; j < D; ++j) {
      const float n = (xr[j] - mean) * rstd;
      yr[j] = std::fma(n, 1.0f + sc[j * sci], sh[j * shi]);
    }
  }
};

}  // namespace

Tensor layer_norm_modulate(const Tensor& x_in, const Tensor& shift, const Tensor& scale, float eps) {
  profile::Scope prof("layer_norm_modulate");
  const NormModulateArgs a(x_in, shift, scale, "layer_norm_modulate");
  Tensor y = Tensor::empty(a.x.shape(), DType::F32);
  float* yp = y.data<float>();
  parallel_for(a.B * a.S, row_grain(a.D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) a.row(r, eps, yp + r * a.D);
  });
  return y;
}

QuantizedRows layer_norm_modulate_s8(const Tensor& x_in, const Tensor& shift, const Tensor& scale, float eps,
                                     const RowQuantSpec& spec) {
  profile::Scope prof("layer_norm_modulate");
  const NormModulateArgs a(x_in, shift, scale, "layer_norm_modulate_s8");
  QDIT_CHECK(spec.lda >= a.D, "[layer_norm_modulate_s8] row stride ", spec.lda, " is below D=", a.D);
  QuantizedRows out = make_quantized_rows(a.B * a.S, a.D, spec);
  parallel_for(a.B * a.S, row_grain(a.D), [&](int64_t r0, int64_t r1) {
    // One modulated row at a time in L1, quantized from there.
    static thread_local cpu::ThreadBuffer row_buffer;
    float* yr = static_cast<float*>(row_buffer.get(static_cast<size_t>(a.D) * sizeof(float)));
    for (int64_t r = r0; r < r1; ++r) {
      a.row(r, eps, yr);
      quantize_row(yr, r, out);
    }
  });
  return out;
}

Tensor softmax(const Tensor& x_in) {
  profile::Scope prof("softmax");
  require_f32(x_in, "softmax");
  Tensor x = x_in.contiguous();
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = xp + r * d;
      float* o = yp + r * d;
      float m = -INFINITY;
      for (int64_t j = 0; j < d; ++j) m = std::max(m, s[j]);
      double sum = 0;
      for (int64_t j = 0; j < d; ++j) {
        o[j] = std::exp(s[j] - m);
        sum += o[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < d; ++j) o[j] *= inv;
    }
  });
  return y;
}

}  // namespace qdit::kernels
