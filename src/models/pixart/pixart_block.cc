#include "qdit/models/pixart/pixart_block.h"

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/norm.h"
#include "qdit/nn/attention.h"

namespace qdit::models::pixart {

PixArtBlock::PixArtBlock(const nn::WeightBinder& b, const BlockConfig& cfg, const nn::ModuleContext& ctx)
    : cfg_(cfg), compute_(ctx.compute) {
  const int64_t d = cfg.dim;
  table_ = nn::to_f32_param(b.get("scale_shift_table", {6, d}));
  // Without affine parameters these bind nothing (diffusers' elementwise_affine=False).
  norm1_ = nn::LayerNorm(b, "norm1", d, cfg.eps, cfg.norm_affine);
  norm2_ = nn::LayerNorm(b, "norm2", d, cfg.eps, cfg.norm_affine);
  const nn::WeightBinder a1 = b.sub("attn1"), a2 = b.sub("attn2");
  qkv1_ = nn::LinearGroup(a1, {"to_q", "to_k", "to_v"}, "to_qkv", d, {d, d, d}, cfg.attention_bias, ctx);
  o1_ = nn::Linear(a1, "to_out.0", d, d, true, ctx);
  q2_ = nn::Linear(a2, "to_q", d, d, cfg.attention_bias, ctx);
  kv2_ = nn::LinearGroup(a2, {"to_k", "to_v"}, "to_kv", cfg.cross_dim, {d, d}, cfg.attention_bias, ctx);
  o2_ = nn::Linear(a2, "to_out.0", d, d, true, ctx);
  ff1_ = nn::Linear(b, "ff.net.0.proj", d, cfg.ff_inner, true, ctx);
  ff2_ = nn::Linear(b, "ff.net.2", cfg.ff_inner, d, true, ctx);
}

size_t PixArtBlock::weight_bytes() const {
  size_t n = table_.defined() ? table_.nbytes() : 0;
  if (cfg_.norm_affine) n += 4 * static_cast<size_t>(cfg_.dim) * sizeof(float);
  for (const nn::Linear* l : {&o1_, &q2_, &o2_, &ff1_, &ff2_}) n += l->weight_bytes();
  n += qkv1_.weight_bytes() + kv2_.weight_bytes();
  return n;
}

nn::LinearInput PixArtBlock::norm_modulate(const nn::LayerNorm& norm, const Tensor& x, const Tensor& shift,
                                           const Tensor& scale) const {
  if (cfg_.norm_affine) return kernels::modulate(norm(x), shift, scale);
  return nn::LinearInput::norm_modulated(x, shift, scale, cfg_.eps);
}

void PixArtBlock::forward(Tensor& x, const Tensor& t6, const Tensor& context, const Tensor* mask_bias) const {
  const int64_t batch = x.size(0), d = cfg_.dim;
  QDIT_CHECK(x.is_contiguous() && x.dim() == 3 && x.size(2) == d, "[PixArtBlock] expected contiguous [B, N, ", d,
             "] hidden states, got ", x.desc());
  QDIT_CHECK(t6.dim() == 2 && t6.size(0) == batch && t6.size(1) == 6 * d, "[PixArtBlock] expected [", batch, ", ",
             6 * d, "] timestep modulation, got ", t6.desc());
  // (scale_shift_table[None] + t6.view(B, 6, D)).chunk(6, dim=1); the chunks stay [B, D] views.
  const Tensor mod = kernels::add(t6.contiguous().reshape({batch, 6, d}), table_);
  const Tensor shift_msa = mod.select(1, 0), scale_msa = mod.select(1, 1), gate_msa = mod.select(1, 2);
  const Tensor shift_mlp = mod.select(1, 3), scale_mlp = mod.select(1, 4), gate_mlp = mod.select(1, 5);

  // 1. Self-attention on the modulated norm, gated residual.
  {
    const nn::LinearInput h = norm_modulate(norm1_, x, shift_msa, scale_msa);
    // Strided views, no copies; bf16 where the kernel writes it under bf16 compute (the attention
    // rounds q/k/v to bf16 anyway: half the bytes written and read).
    const std::vector<Tensor> qkv = qkv1_.views(h, d / cfg_.heads, compute_);
    // bf16 when the output projection works on bf16 activations anyway (bf16 compute).
    const Tensor a =
        nn::multi_head_attention(qkv[0], qkv[1], qkv[2], cfg_.heads, nullptr, 0.0f, compute_, o1_.input_dtype());
    o1_.forward_gated_residual(a, x, gate_msa);
  }
  // 2. Cross-attention: PixArt feeds the un-normalised hidden states (norm2 is not applied here);
  //    the plain residual add is fused into the output projection.
  {
    const std::vector<Tensor> kv = kv2_.views(context, d / cfg_.heads, compute_);
    const Tensor a = nn::multi_head_attention(q2_(x, {}, compute_), kv[0], kv[1], cfg_.heads, mask_bias, 0.0f, compute_,
                                              o2_.input_dtype());
    kernels::GemmOptions acc;
    acc.accumulate = true;
    o2_.forward_into(a, x, acc);
  }
  // 3. Feed-forward on norm2(x) * (1 + scale_mlp) + shift_mlp, activation fused into the first GEMM.
  {
    const nn::LinearInput h = norm_modulate(norm2_, x, shift_mlp, scale_mlp);
    kernels::GemmOptions act;
    act.activation = cfg_.ff_act;
    // FF1 writes bf16 when FF2 rounds its input to bf16 anyway (bf16 compute, float weights).
    ff2_.forward_gated_residual(ff1_(h, act, ff2_.input_dtype()), x, gate_mlp);
  }
}

}  // namespace qdit::models::pixart
