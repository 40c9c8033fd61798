// FluxTransformer2DModel (diffusers 0.30.3), the Flux.1 dev/schnell DiT: a Linear embedding of
// packed 2x2 latents, timestep (+ guidance) + pooled-text conditioning, a context embedder, double
// blocks on separate image/text streams with joint attention, single blocks on cat([text, image]),
// 3-axis rotary embeddings from the position ids, and the AdaLayerNormContinuous final layer.
// Registered as "FluxTransformer2DModel"; pipelines use it through models::DiffusionTransformer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qdit/models/flux/flux_blocks.h"
#include "qdit/models/model.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"

namespace qdit::models {

// The hyper-parameters read from config.json, with diffusers' defaults resolved.
struct FluxConfig {
  int64_t patch_size = 1, in_channels = 64;
  int64_t num_layers = 19, num_single_layers = 38;
  int64_t heads = 24, head_dim = 128, inner_dim = 3072;
  int64_t joint_attention_dim = 4096, pooled_projection_dim = 768;
  bool guidance_embeds = false;
  std::vector<int64_t> axes_dims_rope{16, 56, 56};

  // Output channels per token: proj_out is Linear(inner_dim, patch_size^2 * in_channels) (0.30.3
  // has no out_channels; the key of later versions is accepted only as null or in_channels).
  int64_t out_features() const { return patch_size * patch_size * in_channels; }

  // Throws naming the config file and key for unsupported or inconsistent values.
  static FluxConfig from_json(const io::JsonConfig& cfg);
};

class FluxTransformer : public DiffusionTransformer {
 public:
  // Binds every weight through one WeightBinder; a bad checkpoint throws one error listing all
  // missing and mis-shaped tensors.
  explicit FluxTransformer(const ModelSource& src);

  std::string class_name() const override { return "FluxTransformer2DModel"; }
  size_t weight_bytes() const override { return weight_bytes_; }
  int64_t in_channels() const override { return cfg_.in_channels; }
  int64_t out_channels() const override { return cfg_.in_channels; }  // diffusers: self.out_channels
  const FluxConfig& config() const { return cfg_; }

  // latents: packed [B, N, in_channels]; encoder_hidden_states [B, L, joint_attention_dim];
  // pooled_projections [B, pooled_projection_dim]; timestep [B] (or [1]) = sigma, scaled by 1000
  // here; guidance [B] (or [1]), also scaled by 1000, required exactly when guidance_embeds;
  // txt_ids [L, n_axes] or [B|1, L, n_axes], img_ids [N, n_axes] or [B|1, N, n_axes]. No mask.
  // Returns [B, N, patch_size^2 * in_channels].
  Tensor forward(const DiTInputs& in) const override;

 private:
  FluxConfig cfg_;
  size_t weight_bytes_ = 0;
  nn::Linear x_embedder_, context_embedder_;
  nn::Linear time_1_, time_2_;    // time_text_embed.timestep_embedder.linear_1/2 (SiLU between)
  nn::Linear guide_1_, guide_2_;  // time_text_embed.guidance_embedder.linear_1/2 (guidance_embeds)
  nn::Linear text_1_, text_2_;    // time_text_embed.text_embedder.linear_1/2 (SiLU between)
  nn::LazyBlocks<flux::DoubleBlock> blocks_;
  nn::LazyBlocks<flux::SingleBlock> single_blocks_;
  nn::Linear norm_out_, proj_out_;
};

void register_flux_models();

}  // namespace qdit::models
