// The two Flux block kinds (diffusers 0.30.3): FluxTransformerBlock (double stream: AdaLN-Zero on
// the image and text streams, one joint attention over cat([text, image]), GELU-tanh
// feed-forwards, gated residuals) and FluxSingleTransformerBlock (one stream: attention and MLP in
// parallel on the same AdaLN-Zero-Single input, concatenated, proj_out, gated residual). Both
// RMS-normalise q and k per head before the rotary embedding. Used by FluxTransformer.
#pragma once
#include <cstdint>
#include <string>

#include "qdit/core/tensor.h"
#include "qdit/models/flux/flux_rope.h"
#include "qdit/nn/layers.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"

namespace qdit::models::flux {

// Attention's q/k/v projections with qk_norm="rms_norm" (eps 1e-6, learned [Dh] weight), bound
// under one Attention module: to_q/to_k/to_v with norm_q/norm_k, or the added (text) projections
// add_q_proj/add_k_proj/add_v_proj with norm_added_q/norm_added_k.
class QKVProjection {
 public:
  QKVProjection() = default;
  QKVProjection(const nn::WeightBinder& attn, bool added, int64_t dim, int64_t heads, const nn::ModuleContext& ctx);
  // h [B, S, D] -> q, k normalised per head and rotated with the rotary rows first_position..
  // (one fused pass each), written into q and k ([B, S, H, Dh] views, e.g. a row range of the joint
  // sequence); v [B, S, H, Dh] (with fused q/k/v a strided view into the one GEMM output).
  void operator()(const nn::LinearInput& h, const Rope& rope, int64_t first_position, Tensor& q, Tensor& k,
                  Tensor& v) const;
  size_t weight_bytes() const;

 private:
  int64_t heads_ = 0;
  nn::LinearGroup qkv_;  // to_q/k/v or add_q/k/v_proj
  int64_t dim_ = 0;
  nn::RMSNorm norm_q_, norm_k_;
};

class DoubleBlock {
 public:
  DoubleBlock() = default;
  // b is scoped at "transformer_blocks.<i>".
  DoubleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx);
  // x: [B, N, D] image tokens, ctx: [B, L, D] text tokens, contiguous, updated in place.
  // silu_temb: SiLU(temb) [B, D]; rope over the L + N positions of cat([text, image]).
  void forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb, const Rope& rope) const;
  size_t weight_bytes() const;

 private:
  int64_t dim_ = 0, heads_ = 0;
  DType compute_ = DType::F32;
  nn::Linear norm1_, norm1_ctx_;  // norm1.linear, norm1_context.linear [6D]
  QKVProjection img_, txt_;       // attn.to_q/k/v + norm_q/k, attn.add_*_proj + norm_added_q/k
  nn::Linear out_, add_out_;      // attn.to_out.0, attn.to_add_out
  nn::Linear ff1_, ff2_;          // ff.net.0.proj, ff.net.2
  nn::Linear cff1_, cff2_;        // ff_context.net.0.proj, ff_context.net.2
};

class SingleBlock {
 public:
  SingleBlock() = default;
  // b is scoped at "single_transformer_blocks.<i>".
  SingleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx);
  // x: [B, S, D] = cat([text, image]) tokens, contiguous, updated in place.
  void forward(Tensor& x, const Tensor& silu_temb, const Rope& rope) const;
  size_t weight_bytes() const;

 private:
  int64_t dim_ = 0, heads_ = 0, mlp_ = 0;
  DType compute_ = DType::F32;
  nn::Linear norm_;      // norm.linear [3D]: shift, scale, gate
  QKVProjection qkv_;    // attn.to_q/k/v + norm_q/k (pre_only: no to_out)
  nn::Linear proj_mlp_;  // [D] -> [4D], GELU-tanh
  nn::Linear proj_out_;  // cat([attn, mlp]) [5D] -> [D]
};

}  // namespace qdit::models::flux
