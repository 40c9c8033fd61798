// Plain SD3Transformer2DModel forward for tests: written from diffusers' Python straight onto the
// reference kernels (double-accumulating linear and attention, scalar LayerNorm loops), with no
// fused ops, to check the model on inputs the goldens do not cover.
#pragma once
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"
#include "qdit/models/sd3/sd3_transformer.h"

namespace qdit::testing::sd3 {

struct RefInputs {
  Tensor latents;                // [B, C, H, W]
  Tensor encoder_hidden_states;  // [B, L, joint_attention_dim]
  Tensor pooled;                 // [B, pooled_projection_dim]
  std::vector<float> timestep;   // [B]
};

// pos: the position table of the latent's patch grid, [H/p * W/p, D] (see crop_table).
Tensor reference_forward(const io::WeightSource& w, const models::SD3Config& c, const Tensor& pos,
                         const RefInputs& in);

// diffusers PatchEmbed.cropped_pos_embed: rows top = (M - gh) // 2, cols left = (M - gw) // 2 of
// an [M*M, D] (or [1, M*M, D]) table -> [gh*gw, D].
Tensor crop_table(const Tensor& table, int64_t m, int64_t gh, int64_t gw);

}  // namespace qdit::testing::sd3
