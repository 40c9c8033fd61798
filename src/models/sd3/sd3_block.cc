#include "qdit/models/sd3/sd3_block.h"

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/norm.h"
#include "qdit/nn/attention.h"

namespace qdit::models::sd3 {

namespace {
constexpr float kNormEps = 1e-6f;  // every LayerNorm in the block (no affine)
constexpr int64_t kFfMult = 4;     // FeedForward(dim, dim_out=dim), mult 4
}  // namespace

JointBlock::JointBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, bool context_pre_only,
                       const nn::ModuleContext& ctx)
    : dim_(dim), heads_(heads), pre_only_(context_pre_only), compute_(ctx.compute) {
  const int64_t d = dim;
  norm1_ = nn::Linear(b.sub("norm1"), "linear", d, 6 * d, true, ctx);
  norm1_ctx_ = nn::Linear(b.sub("norm1_context"), "linear", d, (pre_only_ ? 2 : 6) * d, true, ctx);
  const nn::WeightBinder a = b.sub("attn");
  qkv_ = nn::LinearGroup(a, {"to_q", "to_k", "to_v"}, "to_qkv", d, {d, d, d}, true, ctx);
  out_ = nn::Linear(a, "to_out.0", d, d, true, ctx);
  add_qkv_ = nn::LinearGroup(a, {"add_q_proj", "add_k_proj", "add_v_proj"}, "to_added_qkv", d, {d, d, d}, true, ctx);
  ff1_ = nn::Linear(b, "ff.net.0.proj", d, kFfMult * d, true, ctx);
  ff2_ = nn::Linear(b, "ff.net.2", kFfMult * d, d, true, ctx);
  if (!pre_only_) {
    add_out_ = nn::Linear(a, "to_add_out", d, d, true, ctx);
    cff1_ = nn::Linear(b, "ff_context.net.0.proj", d, kFfMult * d, true, ctx);
    cff2_ = nn::Linear(b, "ff_context.net.2", kFfMult * d, d, true, ctx);
  }
}

size_t JointBlock::weight_bytes() const {
  size_t n = 0;
  for (const nn::Linear* l : {&norm1_, &norm1_ctx_, &out_, &add_out_, &ff1_, &ff2_, &cff1_, &cff2_})
    n += l->weight_bytes();
  return n + qkv_.weight_bytes() + add_qkv_.weight_bytes();
}

void JointBlock::forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb) const {
  const int64_t batch = x.size(0), d = dim_;
  QDIT_CHECK(x.is_contiguous() && x.dim() == 3 && x.size(2) == d, "[JointTransformerBlock] expected contiguous [B, N, ",
             d, "] image tokens, got ", x.desc());
  QDIT_CHECK(ctx.is_contiguous() && ctx.dim() == 3 && ctx.size(0) == batch && ctx.size(2) == d,
             "[JointTransformerBlock] expected contiguous [", batch, ", L, ", d, "] text tokens, got ", ctx.desc());

  // AdaLayerNormZero: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp ([B, D] views).
  const Tensor m = norm1_(silu_temb).reshape({batch, 6, d});
  const Tensor mc = norm1_ctx_(silu_temb).reshape({batch, pre_only_ ? 2 : 6, d});

  // 1. Joint attention over cat([image, text]).
  {
    // Left to the projections (an int8dq kernel takes the rows quantized by the norm itself).
    const nn::LinearInput h = nn::LinearInput::norm_modulated(x, m.select(1, 0), m.select(1, 1), kNormEps);
    // AdaLayerNormContinuous splits (scale, shift); AdaLayerNormZero (shift, scale, ...).
    const nn::LinearInput hc =
        nn::LinearInput::norm_modulated(ctx, mc.select(1, pre_only_ ? 1 : 0), mc.select(1, pre_only_ ? 0 : 1), kNormEps);
    const int64_t head_dim = d / heads_;
    // Strided views, no copies; bf16 where the kernel writes it under bf16 compute (the attention
    // rounds q/k/v to bf16 anyway).
    const std::vector<Tensor> img = qkv_.views(h, head_dim, compute_), txt = add_qkv_.views(hc, head_dim, compute_);
    // Attention over cat([image, text]) without concatenating: one output per stream.
    const std::vector<Tensor> a = nn::joint_attention({img[0], txt[0]}, {img[1], txt[1]}, {img[2], txt[2]}, heads_,
                                                      compute_);
    out_.forward_gated_residual(a[0], x, m.select(1, 2));
    if (!pre_only_) add_out_.forward_gated_residual(a[1], ctx, mc.select(1, 2));
  }

  // 2. Feed-forwards on norm2(.) * (1 + scale_mlp) + shift_mlp, GELU-tanh fused into the first GEMM.
  kernels::GemmOptions gelu;
  gelu.activation = kernels::Activation::GeluTanh;
  {
    const nn::LinearInput h = nn::LinearInput::norm_modulated(x, m.select(1, 3), m.select(1, 4), kNormEps);
    ff2_.forward_gated_residual(ff1_(h, gelu, ff2_.input_dtype()), x, m.select(1, 5));
  }
  if (!pre_only_) {
    const nn::LinearInput h = nn::LinearInput::norm_modulated(ctx, mc.select(1, 3), mc.select(1, 4), kNormEps);
    cff2_.forward_gated_residual(cff1_(h, gelu, cff2_.input_dtype()), ctx, mc.select(1, 5));
  }
}

}  // namespace qdit::models::sd3
