#include "qdit/nn/attention.h"

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/attention.h"

namespace qdit::nn {

Tensor split_heads(const Tensor& x, int64_t heads) {
  QDIT_CHECK(x.dim() == 3 && x.size(2) % heads == 0, "[attention] cannot split ", x.desc(), " into ", heads, " heads");
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).permute({0, 2, 1, 3});
}

Tensor multi_head_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const Tensor* mask,
                            float scale, DType compute) {
  Tensor qh = split_heads(q.contiguous(), heads), kh = split_heads(k.contiguous(), heads),
         vh = split_heads(v.contiguous(), heads);
  const int64_t d = qh.size(3);
  if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (compute == DType::F16) {
    // fp16 compute: q, k, v rounded to fp16 values; the f32 kernel multiplies them exactly.
    auto r = [](const Tensor& t) { return t.to(DType::F16).to(DType::F32); };
    return kernels::attention(r(qh), r(kh), r(vh), mask, scale);
  }
  if (compute == DType::BF16) {
    // The kernel rounds the f32 head views to bf16 as it packs them (no bf16 copies).
    return kernels::attention_bf16(qh, kh, vh, mask, scale);
  }
  return kernels::attention(qh, kh, vh, mask, scale);
}

}  // namespace qdit::nn
