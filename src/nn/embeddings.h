// Embeddings shared by the DiT families, with diffusers' exact float32/float64 recipes:
// sinusoidal timestep embeddings, 2-D sin-cos position tables, TimestepEmbedding and the
// pooled/caption text projections (Linear -> act -> Linear).
#pragma once
#include <string>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/nn/linear.h"

namespace qdit::nn {

// diffusers get_timestep_embedding: t [B] -> [B, dim], f32 arithmetic.
Tensor timestep_embedding(const std::vector<float>& t, int64_t dim, bool flip_sin_to_cos,
                          float downscale_freq_shift, float scale = 1.0f, float max_period = 10000.0f);

// diffusers get_2d_sincos_pos_embed for a grid of (h, w) patches: [h*w, dim] f32. The grid
// coordinates follow numpy's float32 arithmetic, the sin/cos float64; the first half of the
// channels encodes the column (w), the second the row.
Tensor sincos_2d_pos_embed(int64_t dim, int64_t grid_h, int64_t grid_w, float base_size, float interpolation_scale);

// Linear -> activation -> Linear (TimestepEmbedding: linear_1/linear_2 with SiLU;
// PixArtAlphaTextProjection: linear_1/linear_2 with GELU-tanh or SiLU).
class MLP2 {
 public:
  MLP2() = default;
  MLP2(const WeightBinder& parent, const std::string& name, int64_t in, int64_t hidden, int64_t out,
       kernels::Activation act, const ModuleContext& ctx, const std::string& first = "linear_1",
       const std::string& second = "linear_2");
  Tensor operator()(const Tensor& x) const;

 private:
  Linear fc1_, fc2_;
  kernels::Activation act_ = kernels::Activation::Silu;
};

}  // namespace qdit::nn
