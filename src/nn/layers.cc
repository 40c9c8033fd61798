#include "qdit/nn/layers.h"

#include "qdit/core/error.h"
#include "qdit/kernels/norm.h"

namespace qdit::nn {

Tensor to_f32_param(const Tensor& t) {
  if (!t.defined()) return t;
  return t.contiguous().to(DType::F32).clone(MemTag::Weights);
}

LayerNorm::LayerNorm(const WeightBinder& parent, const std::string& name, int64_t dim, float eps, bool affine,
                     bool bias)
    : eps_(eps) {
  if (!affine) return;
  WeightBinder b = parent.sub(name);
  weight_ = to_f32_param(b.get("weight", {dim}));
  if (bias) bias_ = to_f32_param(b.get("bias", {dim}));
}

Tensor LayerNorm::operator()(const Tensor& x) const { return kernels::layer_norm(x, weight_, bias_, eps_); }

RMSNorm::RMSNorm(const WeightBinder& parent, const std::string& name, int64_t dim, float eps, bool affine)
    : eps_(eps) {
  if (affine) weight_ = to_f32_param(parent.sub(name).get("weight", {dim}));
}

Tensor RMSNorm::operator()(const Tensor& x) const { return kernels::rms_norm(x, weight_, eps_); }

GroupNorm::GroupNorm(const WeightBinder& parent, const std::string& name, int64_t groups, int64_t channels, float eps)
    : groups_(groups), eps_(eps) {
  WeightBinder b = parent.sub(name);
  weight_ = to_f32_param(b.get("weight", {channels}));
  bias_ = to_f32_param(b.get("bias", {channels}));
}

Tensor GroupNorm::operator()(const Tensor& x) const { return kernels::group_norm(x, groups_, weight_, bias_, eps_); }

Conv2d::Conv2d(const WeightBinder& parent, const std::string& name, int64_t in, int64_t out, int64_t kernel,
               const ModuleContext& ctx)
    : path_(parent.path(name)) {
  WeightBinder b = parent.sub(name);
  Tensor w = b.get("weight", {out, in, kernel, kernel});
  Tensor bias = b.get("bias", {out});
  if (!w.defined() || !bias.defined()) return;
  // Convolutions run in f32: oneDNN has no bf16 conv on AVX2 and the VAE is a small share of the work.
  conv_ = std::make_shared<kernels::PackedConv2d>(w, bias, (kernel - 1) / 2, DType::F32);
}

Tensor Conv2d::operator()(const Tensor& x) const {
  QDIT_CHECK(conv_, "[conv2d] ", path_, " has no weights bound");
  return conv_->forward(x);
}

}  // namespace qdit::nn
