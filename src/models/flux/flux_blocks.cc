#include "qdit/models/flux/flux_blocks.h"

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/attention.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/norm.h"

namespace qdit::models::flux {

namespace {

constexpr float kNormEps = 1e-6f;  // AdaLN LayerNorms (no affine) and the q/k RMSNorms
constexpr int64_t kMlpRatio = 4;   // FeedForward mult 4; single blocks' mlp_ratio 4.0

kernels::GemmOptions gelu_tanh() {
  kernels::GemmOptions o;
  o.activation = kernels::Activation::GeluTanh;
  return o;
}

// softmax(q k^T / sqrt(Dh)) v over [B, S, H, Dh] views (last dim contiguous, e.g. v a slice of
// the fused q/k/v output) -> [B, S, H*Dh]. The kernels read strided heads, so nothing is copied
// (nn::multi_head_attention would make contiguous [B, S, D] copies first).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, DType compute) {
  const auto heads = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.size(3)));
  if (compute == DType::F16) {
    // fp16 compute: q, k, v rounded to fp16 values; the f32 kernel multiplies them exactly.
    const auto r = [&](const Tensor& t) { return heads(t).to(DType::F16).to(DType::F32); };
    return kernels::attention(r(q), r(k), r(v), nullptr, scale);
  }
  if (compute == DType::BF16) return kernels::attention_bf16(heads(q), heads(k), heads(v), nullptr, scale);
  return kernels::attention(heads(q), heads(k), heads(v), nullptr, scale);
}

}  // namespace

QKVProjection::QKVProjection(const nn::WeightBinder& a, bool added, int64_t dim, int64_t heads,
                             const nn::ModuleContext& ctx)
    : heads_(heads) {
  const int64_t head_dim = dim / heads;
  const std::vector<std::string> names = added ? std::vector<std::string>{"add_q_proj", "add_k_proj", "add_v_proj"}
                                               : std::vector<std::string>{"to_q", "to_k", "to_v"};
  qkv_ = nn::LinearGroup(a, names, added ? "to_added_qkv" : "to_qkv", dim, {dim, dim, dim}, true, ctx);
  dim_ = dim;
  norm_q_ = nn::RMSNorm(a, added ? "norm_added_q" : "norm_q", head_dim, kNormEps);
  norm_k_ = nn::RMSNorm(a, added ? "norm_added_k" : "norm_k", head_dim, kNormEps);
}

void QKVProjection::operator()(const nn::LinearInput& h, const Rope& rope, int64_t first_position, Tensor& q, Tensor& k,
                               Tensor& v) const {
  // Views into the fused projection output (no slice copies); q and k are normalised per head and
  // rotated straight into the caller's tensors.
  std::vector<Tensor> qkv = qkv_.views(h, dim_ / heads_);
  rope.norm_apply_into(qkv[0], norm_q_.weight(), norm_q_.eps(), first_position, q);
  rope.norm_apply_into(qkv[1], norm_k_.weight(), norm_k_.eps(), first_position, k);
  v = qkv[2];
}

size_t QKVProjection::weight_bytes() const { return qkv_.weight_bytes(); }

DoubleBlock::DoubleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx)
    : dim_(dim), heads_(heads), compute_(ctx.compute) {
  const int64_t d = dim;
  norm1_ = nn::Linear(b.sub("norm1"), "linear", d, 6 * d, true, ctx);
  norm1_ctx_ = nn::Linear(b.sub("norm1_context"), "linear", d, 6 * d, true, ctx);
  const nn::WeightBinder a = b.sub("attn");
  img_ = QKVProjection(a, false, d, heads, ctx);
  txt_ = QKVProjection(a, true, d, heads, ctx);
  out_ = nn::Linear(a, "to_out.0", d, d, true, ctx);
  add_out_ = nn::Linear(a, "to_add_out", d, d, true, ctx);
  ff1_ = nn::Linear(b, "ff.net.0.proj", d, kMlpRatio * d, true, ctx);
  ff2_ = nn::Linear(b, "ff.net.2", kMlpRatio * d, d, true, ctx);
  cff1_ = nn::Linear(b, "ff_context.net.0.proj", d, kMlpRatio * d, true, ctx);
  cff2_ = nn::Linear(b, "ff_context.net.2", kMlpRatio * d, d, true, ctx);
}

size_t DoubleBlock::weight_bytes() const {
  size_t n = img_.weight_bytes() + txt_.weight_bytes();
  for (const nn::Linear* l : {&norm1_, &norm1_ctx_, &out_, &add_out_, &ff1_, &ff2_, &cff1_, &cff2_})
    n += l->weight_bytes();
  return n;
}

void DoubleBlock::forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb, const Rope& rope) const {
  const int64_t batch = x.size(0), n = x.size(1), d = dim_;
  QDIT_CHECK(x.is_contiguous() && x.dim() == 3 && x.size(2) == d, "[FluxTransformerBlock] expected contiguous [B, N, ",
             d, "] image tokens, got ", x.desc());
  QDIT_CHECK(ctx.is_contiguous() && ctx.dim() == 3 && ctx.size(0) == batch && ctx.size(2) == d,
             "[FluxTransformerBlock] expected contiguous [", batch, ", L, ", d, "] text tokens, got ", ctx.desc());
  const int64_t l = ctx.size(1);

  // AdaLayerNormZero: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp ([B, D] views).
  const Tensor m = norm1_(silu_temb).reshape({batch, 6, d});
  const Tensor mc = norm1_ctx_(silu_temb).reshape({batch, 6, d});

  // 1. Joint attention over cat([text, image]); the rotary table covers the same order. Each
  // stream's q/k land in their row range of the joint q/k, so nothing is concatenated but v.
  {
    Tensor a;       // f32/f16 compute: [B, L+N, D]
    Tensor at, ai;  // bf16 compute: the text and image rows, [B, L, D] and [B, N, D]
    {
      const int64_t s = l + n, hd = d / heads_;
      Tensor q = Tensor::empty({batch, s, heads_, hd}, DType::F32);
      Tensor k = Tensor::empty({batch, s, heads_, hd}, DType::F32);
      Tensor vi, vt;
      Tensor qi = q.slice(1, l, s), ki = k.slice(1, l, s), qt = q.slice(1, 0, l), kt = k.slice(1, 0, l);
      // The norms are left to the projections (an int8dq kernel takes the rows quantized by the norm).
      img_(nn::LinearInput::norm_modulated(x, m.select(1, 0), m.select(1, 1), kNormEps), rope, l, qi, ki, vi);
      txt_(nn::LinearInput::norm_modulated(ctx, mc.select(1, 0), mc.select(1, 1), kNormEps), rope, 0, qt, kt, vt);
      if (compute_ == DType::BF16) {
        // The joint kernel reads the two streams' parts in place and writes one output per stream
        // (AMX; elsewhere it concatenates itself): no v concatenation, no output slice copies.
        const auto heads = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };
        std::vector<Tensor> o = kernels::attention_bf16_parts({heads(qt), heads(qi)}, {heads(kt), heads(ki)},
                                                              {heads(vt), heads(vi)},
                                                              1.0f / std::sqrt(static_cast<float>(hd)));
        at = std::move(o[0]);
        ai = std::move(o[1]);
      } else {
        const Tensor v = kernels::concat({vt, vi}, 1);
        vi = vt = Tensor();  // the projection outputs behind them go before the attention output
        a = attend(q, k, v, compute_);
      }
    }  // q, k, v go here, before the output projections
    // One stream's rows of the joint output: the bf16 part, or a contiguous copy of a's rows.
    const auto rows = [&](const Tensor& part, int64_t r0, int64_t r1) {
      return part.defined() ? part : a.slice(1, r0, r1).contiguous();
    };
    out_.forward_gated_residual(rows(ai, l, l + n), x, m.select(1, 2));
    add_out_.forward_gated_residual(rows(at, 0, l), ctx, mc.select(1, 2));
  }

  // 2. Feed-forwards on norm2(.) * (1 + scale_mlp) + shift_mlp, GELU-tanh fused into the first GEMM.
  {
    const nn::LinearInput h = nn::LinearInput::norm_modulated(x, m.select(1, 3), m.select(1, 4), kNormEps);
    ff2_.forward_gated_residual(ff1_(h, gelu_tanh(), ff2_.input_dtype()), x, m.select(1, 5));
  }
  {
    const nn::LinearInput h = nn::LinearInput::norm_modulated(ctx, mc.select(1, 3), mc.select(1, 4), kNormEps);
    cff2_.forward_gated_residual(cff1_(h, gelu_tanh(), cff2_.input_dtype()), ctx, mc.select(1, 5));
  }
}

SingleBlock::SingleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx)
    : dim_(dim), heads_(heads), mlp_(kMlpRatio * dim), compute_(ctx.compute) {
  norm_ = nn::Linear(b.sub("norm"), "linear", dim, 3 * dim, true, ctx);
  qkv_ = QKVProjection(b.sub("attn"), false, dim, heads, ctx);
  proj_mlp_ = nn::Linear(b, "proj_mlp", dim, mlp_, true, ctx);
  proj_out_ = nn::Linear(b, "proj_out", dim + mlp_, dim, true, ctx);
}

size_t SingleBlock::weight_bytes() const {
  return norm_.weight_bytes() + qkv_.weight_bytes() + proj_mlp_.weight_bytes() + proj_out_.weight_bytes();
}

void SingleBlock::forward(Tensor& x, const Tensor& silu_temb, const Rope& rope) const {
  const int64_t batch = x.size(0), d = dim_;
  QDIT_CHECK(x.is_contiguous() && x.dim() == 3 && x.size(2) == d, "[FluxSingleTransformerBlock] expected contiguous ",
             "[B, S, ", d, "] tokens, got ", x.desc());
  // AdaLayerNormZeroSingle: shift, scale, gate.
  const Tensor m = norm_(silu_temb).reshape({batch, 3, d});
  const Tensor h = kernels::layer_norm_modulate(x, m.select(1, 0), m.select(1, 1), kNormEps);
  Tensor a;
  {
    const int64_t s = x.size(1), hd = d / heads_;
    Tensor q = Tensor::empty({batch, s, heads_, hd}, DType::F32);
    Tensor k = Tensor::empty({batch, s, heads_, hd}, DType::F32);
    Tensor v;
    qkv_(h, rope, 0, q, k, v);
    a = attend(q, k, v, compute_);  // q, k, v (and the projection output) go before the MLP
  }
  // proj_out(cat([attn, gelu_tanh(proj_mlp(h))], -1)), gated into the residual stream.
  const Tensor cat = kernels::concat({a, proj_mlp_(h, gelu_tanh())}, 2);
  proj_out_.forward_gated_residual(cat, x, m.select(1, 2));
}

}  // namespace qdit::models::flux
