#include "qdit/core/error.h"
#include "qdit/core/profile.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/rope.h"

namespace qdit::kernels {

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
  parallel_for(B * S, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / S, pos = r % S;
      for (int64_t h = 0; h < H; ++h) {
        const float* src = xp + b * st[0] + pos * st[1] + h * st[2];
        float* dst = yp + ((r * H) + h) * D;
        for (int64_t j = 0; j < D / 2; ++j) {
          const float cj = cp[pos * D / 2 + j], sj = sp[pos * D / 2 + j];
          const float x0 = src[2 * j], x1 = src[2 * j + 1];
          dst[2 * j] = cj * x0 - sj * x1;
          dst[2 * j + 1] = sj * x0 + cj * x1;
        }
      }
    }
  });
  return y;
}

}  // namespace qdit::kernels
