#include "qdit/models/auraflow/auraflow_blocks.h"

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/norm.h"
#include "qdit/nn/attention.h"

namespace qdit::models::auraflow {

namespace {

// Every norm here is FP32LayerNorm(elementwise_affine=False, bias=False) constructed without an
// eps (AdaLayerNormZero's "fp32_layer_norm", norm2, norm2_context) or with Attention's default
// eps (q/k norms): all are nn.LayerNorm's 1e-5, unlike the 1e-6 of SD3/Flux's AdaLN norms.
constexpr float kNormEps = 1e-5f;

// Non-affine LayerNorm over each head's channels of [B, S, H*Dh].
Tensor head_norm(const Tensor& t, int64_t heads) {
  const int64_t b = t.size(0), s = t.size(1), d = t.size(2);
  return kernels::layer_norm(t.reshape({b, s, heads, d / heads}), Tensor(), Tensor(), kNormEps).reshape({b, s, d});
}

// AdaLayerNormZero chunks of m [B, 6, D]: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
enum Chunk : int64_t { kShiftMsa = 0, kScaleMsa, kGateMsa, kShiftMlp, kScaleMlp, kGateMlp };

Tensor norm1(const Tensor& x, const Tensor& m) {
  return kernels::layer_norm_modulate(x, m.select(1, kShiftMsa), m.select(1, kScaleMsa), kNormEps);
}

// What follows the attention in both AuraFlow blocks (diffusers 0.30.3):
//   h = norm2(x + gate_msa * attn) * (1 + scale_mlp) + shift_mlp
//   x = x + gate_mlp * ff(h)
// The residual of the second line is the block's input x: the attention output reaches the
// stream only through h.
void attention_tail(Tensor& x, const Tensor& attn, const Tensor& m, const FeedForward& ff) {
  Tensor t = x.clone();
  kernels::gated_residual_inplace(t, attn, m.select(1, kGateMsa));
  const Tensor h = kernels::layer_norm_modulate(t, m.select(1, kShiftMlp), m.select(1, kScaleMlp), kNormEps);
  t = Tensor();
  kernels::gated_residual_inplace(x, ff(h), m.select(1, kGateMlp));
}

void check_stream(const Tensor& x, int64_t batch, int64_t d, const char* what) {
  QDIT_CHECK(x.is_contiguous() && x.dim() == 3 && x.size(0) == batch && x.size(2) == d, "[AuraFlow block] expected ",
             "contiguous [", batch, ", S, ", d, "] ", what, ", got ", x.desc());
}

}  // namespace

int64_t ff_hidden_dim(int64_t dim) {
  const int64_t h = 2 * (4 * dim) / 3;  // int(2 * hidden_dim / 3) with hidden_dim = 4 * dim
  return h % 256 == 0 ? h : h + 256 - h % 256;
}

FeedForward::FeedForward(const nn::WeightBinder& b, int64_t dim, const nn::ModuleContext& ctx) {
  const int64_t f = ff_hidden_dim(dim);
  l1_ = nn::Linear(b, "linear_1", dim, f, false, ctx);
  l2_ = nn::Linear(b, "linear_2", dim, f, false, ctx);
  out_ = nn::Linear(b, "out_projection", f, dim, false, ctx);
}

Tensor FeedForward::operator()(const Tensor& x) const {
  kernels::GemmOptions silu;
  silu.activation = kernels::Activation::Silu;
  Tensor g = l1_(x, silu);
  kernels::binary_inplace(g, l2_(x), kernels::BinaryOp::Mul);
  return out_(g);
}

size_t FeedForward::weight_bytes() const { return l1_.weight_bytes() + l2_.weight_bytes() + out_.weight_bytes(); }

JointBlock::JointBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx)
    : dim_(dim), heads_(heads), compute_(ctx.compute) {
  const int64_t d = dim;
  norm1_ = nn::Linear(b.sub("norm1"), "linear", d, 6 * d, false, ctx);
  norm1_ctx_ = nn::Linear(b.sub("norm1_context"), "linear", d, 6 * d, false, ctx);
  const nn::WeightBinder a = b.sub("attn");
  qkv_ = nn::LinearGroup(a, {"to_q", "to_k", "to_v"}, "to_qkv", d, {d, d, d}, false, ctx);
  out_ = nn::Linear(a, "to_out.0", d, d, false, ctx);
  add_qkv_ = nn::LinearGroup(a, {"add_q_proj", "add_k_proj", "add_v_proj"}, "to_added_qkv", d, {d, d, d}, false, ctx);
  add_out_ = nn::Linear(a, "to_add_out", d, d, false, ctx);
  ff_ = FeedForward(b.sub("ff"), d, ctx);
  ff_ctx_ = FeedForward(b.sub("ff_context"), d, ctx);
}

size_t JointBlock::weight_bytes() const {
  size_t n = ff_.weight_bytes() + ff_ctx_.weight_bytes();
  for (const nn::Linear* l : {&norm1_, &norm1_ctx_, &out_, &add_out_}) n += l->weight_bytes();
  return n + qkv_.weight_bytes() + add_qkv_.weight_bytes();
}

void JointBlock::forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb) const {
  const int64_t batch = x.size(0), d = dim_;
  check_stream(x, batch, d, "image tokens");
  check_stream(ctx, batch, d, "text tokens");
  const Tensor m = norm1_(silu_temb).reshape({batch, 6, d});
  const Tensor mc = norm1_ctx_(silu_temb).reshape({batch, 6, d});

  // Joint attention over cat([text, image]), q and k normalised per head. (The processor applies
  // norm_added_q to the text keys; it is identical to norm_added_k.)
  Tensor a_img, a_txt;
  {
    const Tensor h = norm1(x, m), hc = norm1(ctx, mc);
    const std::vector<Tensor> img = qkv_(h), txt = add_qkv_(hc);
    // Attention over cat([text, image]) without concatenating: one output per stream.
    const std::vector<Tensor> a = nn::joint_attention(
        {head_norm(txt[0], heads_), head_norm(img[0], heads_)}, {head_norm(txt[1], heads_), head_norm(img[1], heads_)},
        {txt[2], img[2]}, heads_, compute_);
    a_txt = add_out_(a[0]);
    a_img = out_(a[1]);
  }
  attention_tail(x, a_img, m, ff_);
  attention_tail(ctx, a_txt, mc, ff_ctx_);
}

SingleBlock::SingleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx)
    : dim_(dim), heads_(heads), compute_(ctx.compute) {
  const int64_t d = dim;
  norm1_ = nn::Linear(b.sub("norm1"), "linear", d, 6 * d, false, ctx);
  const nn::WeightBinder a = b.sub("attn");
  qkv_ = nn::LinearGroup(a, {"to_q", "to_k", "to_v"}, "to_qkv", d, {d, d, d}, false, ctx);
  out_ = nn::Linear(a, "to_out.0", d, d, false, ctx);
  ff_ = FeedForward(b.sub("ff"), d, ctx);
}

size_t SingleBlock::weight_bytes() const {
  size_t n = ff_.weight_bytes();
  for (const nn::Linear* l : {&norm1_, &out_}) n += l->weight_bytes();
  return n + qkv_.weight_bytes();
}

void SingleBlock::forward(Tensor& x, const Tensor& silu_temb) const {
  const int64_t batch = x.size(0), d = dim_;
  check_stream(x, batch, d, "tokens");
  const Tensor m = norm1_(silu_temb).reshape({batch, 6, d});
  Tensor a;
  {
    const Tensor h = norm1(x, m);
    const std::vector<Tensor> qkv = qkv_(h);
    a = out_(nn::multi_head_attention(head_norm(qkv[0], heads_), head_norm(qkv[1], heads_), qkv[2], heads_, nullptr,
                                      0.0f, compute_));
  }
  attention_tail(x, a, m, ff_);
}

}  // namespace qdit::models::auraflow
