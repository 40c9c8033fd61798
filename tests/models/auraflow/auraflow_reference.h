// Plain AuraFlowTransformer2DModel forward for tests: written from diffusers 0.30.3's Python
// straight onto the reference kernels (double-accumulating linear and attention, scalar LayerNorm
// loops, explicit index loops for patching and the position crop), with no fused ops; plus a
// random checkpoint in diffusers' layout for any config, to test sizes the goldens do not cover.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"
#include "qdit/models/auraflow/auraflow_transformer.h"

namespace qdit::testing::auraflow {

struct RefInputs {
  Tensor latents;                // [B, C, H, W]
  Tensor encoder_hidden_states;  // [B, L, joint_attention_dim]
  std::vector<float> timestep;   // [B], t / 1000
};

Tensor reference_forward(const io::WeightSource& w, const models::AuraFlowConfig& c, const RefInputs& in);

// pe_selection_index_based_on_dim: the table rows a (gh, gw) patch grid uses, row-major.
std::vector<int64_t> pos_indices(int64_t pos_embed_max_size, int64_t gh, int64_t gw);

// Every parameter of an AuraFlowTransformer2DModel with config c, uniformly random with a
// 1/sqrt(fan_in) scale (tables and register tokens in [-1, 1]).
std::vector<std::pair<std::string, Tensor>> random_checkpoint(const models::AuraFlowConfig& c, uint32_t seed);

}  // namespace qdit::testing::auraflow
