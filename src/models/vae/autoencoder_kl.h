// AutoencoderKL decoder (diffusers 0.30.3): the VAE half that turns latents into images, for the
// 4-channel SD/PixArt/AuraFlow VAE and the 16-channel SD3/Flux one. Registered as "AutoencoderKL";
// pipelines use it through models::VaeDecoder. Encoder weights are left unbound.
#pragma once
#include <string>
#include <vector>

#include "qdit/models/model.h"
#include "qdit/models/vae/vae_blocks.h"

namespace qdit::models {

class AutoencoderKLDecoder : public VaeDecoder {
 public:
  // Reads config.json (diffusers defaults for optional keys) and binds post_quant_conv.* (when
  // use_post_quant_conv) and decoder.*; throws one error listing every missing/mis-shaped tensor.
  explicit AutoencoderKLDecoder(const ModelSource& src);

  std::string class_name() const override { return "AutoencoderKL"; }
  size_t weight_bytes() const override { return weight_bytes_; }

  // z: [B, latent_channels, h, w] (already z / scaling_factor + shift_factor) -> [B, out_channels,
  // h * downscale, w * downscale], unclamped.
  Tensor decode(const Tensor& z) const override;
  int64_t latent_channels() const override { return latent_channels_; }
  float scaling_factor() const override { return scaling_factor_; }
  float shift_factor() const override { return shift_factor_; }
  int64_t downscale() const override { return downscale_; }

 private:
  struct UpBlock {
    std::vector<vae::ResnetBlock2D> resnets;
    bool has_upsample = false;
    vae::Upsample2D upsample;
  };

  int64_t latent_channels_ = 4, out_channels_ = 3, downscale_ = 1;
  float scaling_factor_ = 0.18215f, shift_factor_ = 0.0f;
  bool use_post_quant_conv_ = true, mid_attention_ = true;
  kernels::Activation act_ = kernels::Activation::Silu;
  size_t weight_bytes_ = 0;

  nn::Conv2d post_quant_conv_, conv_in_, conv_out_;
  vae::ResnetBlock2D mid_resnet0_, mid_resnet1_;
  vae::SpatialSelfAttention mid_attention_block_;
  std::vector<UpBlock> up_blocks_;
  nn::GroupNorm norm_out_;
};

void register_vae_models();

}  // namespace qdit::models
