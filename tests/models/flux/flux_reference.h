// Plain FluxTransformer2DModel forward for tests: written from diffusers 0.30.3's Python straight
// onto the reference kernels (double-accumulating linear and attention) and scalar loops for the
// norms, the timestep embedding and the rotary embedding (angles in float64), with no fused ops
// and none of the model's helpers, to check the model on inputs the goldens do not cover.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"
#include "qdit/models/flux/flux_transformer.h"

namespace qdit::testing::flux {

struct RefInputs {
  Tensor latents;                // packed [B, N, in_channels]
  Tensor encoder_hidden_states;  // [B, L, joint_attention_dim]
  Tensor pooled;                 // [B, pooled_projection_dim]
  std::vector<float> timestep;   // [B] sigmas (scaled by 1000 inside)
  std::vector<float> guidance;   // [B] or empty
  Tensor txt_ids, img_ids;       // [B, L, n_axes], [B, N, n_axes]: one set of ids per row
};

// -> [B, N, patch_size^2 * in_channels]
Tensor reference_forward(const io::WeightSource& w, const models::FluxConfig& c, const RefInputs& in);

// cos/sin of the rotary table for one row of ids [S, n_axes], straight from the formula: [S, D/2].
std::pair<Tensor, Tensor> reference_rope_table(const Tensor& ids, const std::vector<int64_t>& axes_dims);

// Every tensor name and shape of a FluxTransformer2DModel checkpoint for config c (diffusers
// module paths), to build random checkpoints for tiny configs.
std::vector<std::pair<std::string, Shape>> checkpoint_layout(const models::FluxConfig& c);

}  // namespace qdit::testing::flux
