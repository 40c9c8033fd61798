#include "qdit/nn/attention.h"

#include <cmath>
#include <initializer_list>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/kernels/attention.h"
#include "qdit/kernels/layout.h"

namespace qdit::nn {

Tensor split_heads(const Tensor& x, int64_t heads) {
  QDIT_CHECK(x.dim() == 3 && x.size(2) % heads == 0, "[attention] cannot split ", x.desc(), " into ", heads, " heads");
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).permute({0, 2, 1, 3});
}

namespace {
// [B, H, S, D] views of [B, S, H*D] rows, or of [B, S, H, D] head views (LinearGroup::views: the
// kernels read the strided rows of a fused projection's output without a copy).
// Projections may hand some of q/k/v already rounded to bf16 (bf16 compute): the bf16 kernels take
// one dtype, so the f32 ones are rounded here (the values the kernel would use) when they mix.
void round_to_one_dtype(std::initializer_list<std::vector<Tensor>*> groups) {
  bool mixed = false;
  for (const auto* g : groups)
    for (const Tensor& t : *g) mixed |= t.dtype() != (*groups.begin())->front().dtype();
  if (!mixed) return;
  for (auto* g : groups)
    for (Tensor& t : *g)
      if (t.dtype() != DType::BF16) t = t.to(DType::BF16);
}

Tensor heads_of(const Tensor& x, int64_t heads) {
  if (x.dim() == 4) {
    QDIT_CHECK(x.size(2) == heads, "[attention] expected ", heads, " heads in ", x.desc());
    return x.permute({0, 2, 1, 3});
  }
  return split_heads(x.contiguous(), heads);
}
}  // namespace

Tensor multi_head_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const Tensor* mask,
                            float scale, DType compute, DType out_dtype) {
  Tensor qh = heads_of(q, heads), kh = heads_of(k, heads), vh = heads_of(v, heads);
  const int64_t d = qh.size(3);
  if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (compute == DType::F16) {
    // fp16 compute: q, k, v rounded to fp16 values; the f32 kernel multiplies them exactly.
    auto r = [](const Tensor& t) { return t.to(DType::F16).to(DType::F32); };
    return kernels::attention(r(qh), r(kh), r(vh), mask, scale);
  }
  if (compute == DType::BF16) {
    // The kernel rounds the f32 head views to bf16 as it packs them (no bf16 copies).
    std::vector<Tensor> qkv = {qh, kh, vh};
    round_to_one_dtype({&qkv});
    if (out_dtype != DType::BF16) return kernels::attention_bf16(qkv[0], qkv[1], qkv[2], mask, scale);
    Tensor out = Tensor::empty({qh.size(0), qh.size(2), qh.size(1) * d}, DType::BF16);
    kernels::attention_bf16(qkv[0], qkv[1], qkv[2], mask, scale, &out);
    return out;
  }
  return kernels::attention(qh, kh, vh, mask, scale);
}

std::vector<Tensor> joint_attention(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                    const std::vector<Tensor>& v, int64_t heads, DType compute) {
  QDIT_CHECK(!q.empty() && !k.empty() && k.size() == v.size(), "[attention] joint attention needs q parts and as many ",
             "k as v parts, got ", q.size(), ", ", k.size(), ", ", v.size());
  if (compute == DType::BF16 && q.size() <= 2 && k.size() <= 2) {
    auto all_heads = [&](const std::vector<Tensor>& t) {
      std::vector<Tensor> h;
      for (const Tensor& x : t) h.push_back(heads_of(x, heads));
      return h;
    };
    std::vector<Tensor> qh = all_heads(q), kh = all_heads(k), vh = all_heads(v);
    round_to_one_dtype({&qh, &kh, &vh});
    return kernels::attention_bf16_parts(qh, kh, vh, 1.0f / std::sqrt(static_cast<float>(qh[0].size(3))));
  }
  auto cat = [](const std::vector<Tensor>& t) { return t.size() == 1 ? t[0] : kernels::concat(t, 1); };
  const Tensor a = multi_head_attention(cat(q), cat(k), cat(v), heads, nullptr, 0.0f, compute);
  std::vector<Tensor> out;
  int64_t s0 = 0;
  for (const Tensor& x : q) {
    out.push_back(a.slice(1, s0, s0 + x.size(1)).contiguous());
    s0 += x.size(1);
  }
  return out;
}

}  // namespace qdit::nn
