#include "qdit/models/vae/vae_blocks.h"

#include "qdit/core/error.h"
#include "qdit/kernels/conv.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/nn/attention.h"

namespace qdit::models::vae {

ResnetBlock2D::ResnetBlock2D(const nn::WeightBinder& b, int64_t in, int64_t out, int64_t groups, float eps,
                             kernels::Activation act, const nn::ModuleContext& ctx)
    : norm1_(b, "norm1", groups, in, eps),
      norm2_(b, "norm2", groups, out, eps),
      conv1_(b, "conv1", in, out, 3, ctx),
      conv2_(b, "conv2", out, out, 3, ctx),
      has_shortcut_(in != out),
      act_(act) {
  if (has_shortcut_) shortcut_ = nn::Conv2d(b, "conv_shortcut", in, out, 1, ctx);
}

Tensor ResnetBlock2D::operator()(const Tensor& x) const {
  Tensor h = norm1_(x);
  kernels::activation_inplace(h, act_);
  h = conv1_(h);
  h = norm2_(h);
  kernels::activation_inplace(h, act_);
  h = conv2_(h);  // dropout is the identity at inference
  kernels::add_inplace(h, has_shortcut_ ? shortcut_(x) : x);
  return h;
}

SpatialSelfAttention::SpatialSelfAttention(const nn::WeightBinder& b, int64_t channels, int64_t groups, float eps,
                                           const nn::ModuleContext& ctx)
    : norm_(b, "group_norm", groups, channels, eps) {
  const bool legacy = !b.has("to_q.weight") && b.has("query.weight");
  q_ = nn::Linear(b, legacy ? "query" : "to_q", channels, channels, true, ctx);
  k_ = nn::Linear(b, legacy ? "key" : "to_k", channels, channels, true, ctx);
  v_ = nn::Linear(b, legacy ? "value" : "to_v", channels, channels, true, ctx);
  out_ = nn::Linear(b, legacy ? "proj_attn" : "to_out.0", channels, channels, true, ctx);
}

size_t SpatialSelfAttention::weight_bytes() const {
  return q_.weight_bytes() + k_.weight_bytes() + v_.weight_bytes() + out_.weight_bytes();
}

Tensor SpatialSelfAttention::operator()(const Tensor& x) const {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // GroupNorm statistics do not depend on the layout, so normalise in NCHW, then go to tokens.
  Tensor tokens = norm_(x).reshape({n, c, h * w}).transpose(1, 2).contiguous();  // [B, HW, C]
  Tensor q = q_(tokens), k = k_(tokens), v = v_(tokens);
  tokens = Tensor();
  Tensor o = nn::multi_head_attention(q, k, v, /*heads=*/1);  // scale C^-0.5
  q = k = v = Tensor();
  o = out_(o);
  Tensor y = o.reshape({n, h * w, c}).transpose(1, 2).contiguous().reshape({n, c, h, w});
  kernels::add_inplace(y, x);  // residual; rescale_output_factor is 1
  return y;
}

Upsample2D::Upsample2D(const nn::WeightBinder& b, int64_t channels, const nn::ModuleContext& ctx)
    : conv_(b, "conv", channels, channels, 3, ctx) {}

Tensor Upsample2D::operator()(const Tensor& x) const { return conv_(kernels::upsample_nearest2x(x)); }

}  // namespace qdit::models::vae
