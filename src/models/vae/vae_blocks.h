// Building blocks of the diffusers AutoencoderKL decoder (0.30.3): ResnetBlock2D, the mid-block
// single-head spatial self-attention, and Upsample2D. Used by autoencoder_kl.cc. Activations are
// NCHW f32 throughout.
#pragma once
#include <string>

#include "qdit/kernels/gemm.h"
#include "qdit/nn/layers.h"
#include "qdit/nn/linear.h"

namespace qdit::models::vae {

// GroupNorm -> act -> conv3x3 -> GroupNorm -> act -> conv3x3, plus a 1x1 conv_shortcut when the
// channel count changes; output_scale_factor 1 (the decoder never sets another).
class ResnetBlock2D {
 public:
  ResnetBlock2D() = default;
  ResnetBlock2D(const nn::WeightBinder& b, int64_t in, int64_t out, int64_t groups, float eps,
                kernels::Activation act, const nn::ModuleContext& ctx);
  Tensor operator()(const Tensor& x) const;

 private:
  nn::GroupNorm norm1_, norm2_;
  nn::Conv2d conv1_, conv2_, shortcut_;
  bool has_shortcut_ = false;
  kernels::Activation act_ = kernels::Activation::Silu;
};

// diffusers Attention as built for the VAE mid block: GroupNorm over [B, C, H*W], to_q/to_k/to_v
// over the C channels of every pixel, one head (dim C), to_out.0, then the residual.
// Older diffusers checkpoints name the projections query/key/value/proj_attn (diffusers renames
// them at load); both spellings are accepted.
class SpatialSelfAttention {
 public:
  SpatialSelfAttention() = default;
  SpatialSelfAttention(const nn::WeightBinder& b, int64_t channels, int64_t groups, float eps,
                       const nn::ModuleContext& ctx);
  Tensor operator()(const Tensor& x) const;
  size_t weight_bytes() const;

 private:
  nn::GroupNorm norm_;
  nn::Linear q_, k_, v_, out_;
};

// Nearest 2x upsampling followed by a 3x3 conv ("upsamplers.0.conv").
class Upsample2D {
 public:
  Upsample2D() = default;
  Upsample2D(const nn::WeightBinder& b, int64_t channels, const nn::ModuleContext& ctx);
  Tensor operator()(const Tensor& x) const;

 private:
  nn::Conv2d conv_;
};

}  // namespace qdit::models::vae
