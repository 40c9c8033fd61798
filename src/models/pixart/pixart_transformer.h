// PixArtTransformer2DModel (diffusers 0.30.3) as PixArt-Sigma (and PixArt-Alpha) use it: patch
// embedding + sin-cos positions, AdaLN-single timestep conditioning, caption projection, a stack
// of PixArtBlocks and the modulated final layer. Registered as "PixArtTransformer2DModel";
// pipelines use it through models::DiffusionTransformer.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/models/model.h"
#include "qdit/models/pixart/pixart_block.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"

namespace qdit::models {

// The hyper-parameters read from config.json, with diffusers' defaults resolved.
struct PixArtConfig {
  int64_t heads = 16, head_dim = 72, inner_dim = 1152;
  int64_t in_channels = 4, out_channels = 8;
  int64_t num_layers = 28, sample_size = 128, patch_size = 2;
  int64_t cross_attention_dim = 1152;
  int64_t caption_channels = 0;  // 0: no caption_projection (config null)
  float norm_eps = 1e-6f;
  float interpolation_scale = 2.0f;  // null -> max(sample_size // 64, 1)
  bool use_additional_conditions = true;  // null -> sample_size == 128
  bool attention_bias = true;
  bool norm_elementwise_affine = false;
  kernels::Activation ff_act = kernels::Activation::GeluTanh;  // activation_fn

  // Throws naming the config file and key for unsupported or inconsistent values.
  static PixArtConfig from_json(const io::JsonConfig& cfg);
};

// PixArt-Alpha's size conditions (use_additional_conditions), one entry per batch row:
// resolution = (height, width) of the image in pixels, aspect_ratio = height / width.
struct PixArtSizeConditions {
  std::vector<float> resolution;    // [B * 2], row-major (h0, w0, h1, w1, ...)
  std::vector<float> aspect_ratio;  // [B]
};

namespace pixart {
// Linear -> activation -> Linear (TimestepEmbedding, PixArtAlphaTextProjection), keeping its
// Linears reachable for weight accounting.
struct Mlp2 {
  nn::Linear fc1, fc2;
  kernels::Activation act = kernels::Activation::Silu;
  Mlp2() = default;
  Mlp2(const nn::WeightBinder& parent, const std::string& name, int64_t in, int64_t hidden, kernels::Activation a,
       const nn::ModuleContext& ctx);
  Tensor operator()(const Tensor& x) const;
  size_t weight_bytes() const { return fc1.weight_bytes() + fc2.weight_bytes(); }
};
}  // namespace pixart

class PixArtTransformer : public DiffusionTransformer {
 public:
  // Binds every weight through one WeightBinder; a bad checkpoint throws one error listing all
  // missing and mis-shaped tensors.
  explicit PixArtTransformer(const ModelSource& src);

  std::string class_name() const override { return "PixArtTransformer2DModel"; }
  size_t weight_bytes() const override { return weight_bytes_; }
  int64_t in_channels() const override { return cfg_.in_channels; }
  int64_t out_channels() const override { return cfg_.out_channels; }
  const PixArtConfig& config() const { return cfg_; }

  // latents [B, in_channels, H, W] (H, W multiples of patch_size); encoder_hidden_states
  // [B, L, caption_channels] (cross_attention_dim without a caption projection);
  // encoder_attention_mask [B, L] of 1/0 (any dtype) or undefined; timestep [B] (or [1]) integer
  // DPM timesteps. Returns [B, out_channels, H, W]. Models with use_additional_conditions need
  // the overload below.
  Tensor forward(const DiTInputs& in) const override;
  Tensor forward(const DiTInputs& in, const PixArtSizeConditions* sizes) const;

 private:
  // Sin-cos table for a (grid_h, grid_w) patch grid, cached for the last size seen.
  Tensor pos_embed(int64_t grid_h, int64_t grid_w) const;
  // AdaLN-single: returns embedded_timestep [B, D] and sets t6 = linear(silu(emb)) [B, 6D].
  Tensor embed_timestep(const std::vector<float>& t, int64_t batch, const PixArtSizeConditions* sizes,
                        Tensor& t6) const;

  PixArtConfig cfg_;
  size_t weight_bytes_ = 0;
  std::unique_ptr<kernels::LinearKernel> patch_proj_;  // pos_embed.proj conv as [D, C*p*p] GEMM
  pixart::Mlp2 timestep_embedder_, resolution_embedder_, aspect_ratio_embedder_;
  nn::Linear adaln_linear_;
  pixart::Mlp2 caption_projection_;  // fc1 undefined when caption_channels is null
  nn::LazyBlocks<pixart::PixArtBlock> blocks_;
  Tensor final_table_;  // scale_shift_table [2, D] f32
  nn::Linear proj_out_;

  mutable std::mutex pos_mu_;
  mutable int64_t pos_h_ = -1, pos_w_ = -1;
  mutable Tensor pos_cache_;
};

void register_pixart_models();

}  // namespace qdit::models
