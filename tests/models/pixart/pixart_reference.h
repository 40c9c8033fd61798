// Test support for the PixArt transformer: a plain, unfused reference forward (explicit loops,
// kernels' double-precision reference GEMM/attention, diffusers' op order) and a generator of
// tiny random checkpoints written as diffusers save_pretrained folders.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"
#include "qdit/models/pixart/pixart_transformer.h"

namespace qdit::testing::pixart {

struct RefInputs {
  Tensor latents;                 // [B, C, H, W]
  Tensor encoder_hidden_states;   // [B, L, caption_channels | cross_attention_dim]
  Tensor mask;                    // [B, L] 1/0 or undefined
  std::vector<float> timestep;    // [B]
  std::vector<float> resolution;  // [2B] (use_additional_conditions only)
  std::vector<float> aspect_ratio;  // [B]
};

// Straightforward PixArtTransformer2DModel.forward: conv patch embed by loops, numpy-recipe pos
// embed, unfused LayerNorm / modulation / residuals.
Tensor reference_forward(const io::WeightSource& w, const models::PixArtConfig& c, const RefInputs& in);

// name -> shape of every tensor a diffusers PixArtTransformer2DModel with this config holds.
std::map<std::string, Shape> checkpoint_shapes(const models::PixArtConfig& c);

// Writes <dir>/config.json (config_json verbatim) and diffusion_pytorch_model.safetensors with
// deterministic random tensors for `shapes`.
void write_model_folder(const std::string& dir, const std::string& config_json,
                        const std::map<std::string, Shape>& shapes, uint32_t seed, float scale = 0.25f);

// [a; b] along dim 0 (the CFG batch cat([uncond, cond])).
Tensor cat0(const Tensor& a, const Tensor& b);

}  // namespace qdit::testing::pixart
