// AuraFlowTransformer2DModel (diffusers 0.30.3): a Linear patch embedding plus a learned position
// table center-cropped to the patch grid, the timestep embedding (t in [0, 1], scale 1000),
// a bias-free context embedder, 8 learned register tokens prepended to the text, MMDiT joint
// blocks, single blocks over cat([text, image]) and the AuraFlowPreFinalBlock (modulation without
// LayerNorm) before proj_out. Registered as "AuraFlowTransformer2DModel".
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "qdit/models/auraflow/auraflow_blocks.h"
#include "qdit/models/model.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"

namespace qdit::models {

// The hyper-parameters read from config.json, with diffusers' defaults resolved.
struct AuraFlowConfig {
  int64_t sample_size = 64, patch_size = 2;
  int64_t in_channels = 4, out_channels = 4;
  int64_t num_mmdit_layers = 4, num_single_dit_layers = 32;
  int64_t heads = 12, head_dim = 256, inner_dim = 3072;
  int64_t joint_attention_dim = 2048, caption_projection_dim = 3072;
  int64_t pos_embed_max_size = 1024;  // rows of the learned table
  int64_t pos_grid = 32;              // int(sqrt(pos_embed_max_size)): the side the table is viewed as

  static constexpr int64_t kRegisterTokens = 8;

  // Throws naming the config file and key for unsupported or inconsistent values.
  static AuraFlowConfig from_json(const io::JsonConfig& cfg);
};

// pe_selection_index_based_on_dim: the first table row used by a (grid_h, grid_w) patch grid, as
// (row, col) on the pos_grid x pos_grid view: start = pos_grid // 2 - grid // 2 per axis.
struct PosCrop {
  int64_t top = 0, left = 0;
};
PosCrop auraflow_pos_crop(int64_t pos_grid, int64_t grid_h, int64_t grid_w);

class AuraFlowTransformer : public DiffusionTransformer {
 public:
  // Binds every weight through one WeightBinder; a bad checkpoint throws one error listing all
  // missing and mis-shaped tensors.
  explicit AuraFlowTransformer(const ModelSource& src);

  std::string class_name() const override { return "AuraFlowTransformer2DModel"; }
  size_t weight_bytes() const override { return weight_bytes_; }
  int64_t in_channels() const override { return cfg_.in_channels; }
  int64_t out_channels() const override { return cfg_.out_channels; }
  const AuraFlowConfig& config() const { return cfg_; }

  // latents [B, in_channels, H, W] (H, W multiples of patch_size, H/p and W/p at most pos_grid);
  // encoder_hidden_states [B, L, joint_attention_dim] (L may be 0); timestep [B] (or [1]) = t / 1000.
  // No attention mask (the pipeline zeroes padded embeddings instead), no pooled projections.
  // Returns [B, out_channels, H, W].
  Tensor forward(const DiTInputs& in) const override;

 private:
  // Cropped position rows [grid_h * grid_w, D] for a patch grid, cached for the last size seen.
  Tensor pos_embed(int64_t grid_h, int64_t grid_w) const;

  AuraFlowConfig cfg_;
  size_t weight_bytes_ = 0;
  nn::Linear patch_proj_;       // pos_embed.proj: Linear(C*p*p -> D) over (c, p, q)-flattened patches
  Tensor pos_table_;            // pos_embed.pos_embed as [M, D] f32
  Tensor register_tokens_;      // [1, 8, D] f32
  nn::Linear time_1_, time_2_;  // time_step_proj.linear_1/2 (SiLU between)
  nn::Linear context_embedder_;
  nn::LazyBlocks<auraflow::JointBlock> joint_blocks_;
  nn::LazyBlocks<auraflow::SingleBlock> single_blocks_;
  nn::Linear norm_out_, proj_out_;  // norm_out.linear [2D, D] (scale, shift), proj_out; no bias

  mutable std::mutex pos_mu_;
  mutable int64_t pos_h_ = -1, pos_w_ = -1;
  mutable Tensor pos_cache_;
};

void register_auraflow_models();

}  // namespace qdit::models
