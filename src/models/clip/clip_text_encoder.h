// CLIP text encoders (transformers 4.44.2 CLIPTextModel / CLIPTextModelWithProjection): CLIP-L for
// SD3 and Flux, CLIP-G for SD3. Registered as "CLIPTextModel" and "CLIPTextModelWithProjection";
// pipelines use them through models::TextEncoder.
#pragma once
#include <string>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/models/model.h"
#include "qdit/nn/layers.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"

namespace qdit::models {

class ClipTextEncoder : public TextEncoder {
 public:
  // Reads config.json (CLIPTextConfig defaults for optional keys) and binds text_model.* (and
  // text_projection.weight when with_projection); throws one error listing every missing or
  // mis-shaped tensor. The position_ids buffer some checkpoints carry is accepted and ignored.
  ClipTextEncoder(const ModelSource& src, bool with_projection);

  std::string class_name() const override {
    return with_projection_ ? "CLIPTextModelWithProjection" : "CLIPTextModel";
  }
  size_t weight_bytes() const override { return weight_bytes_; }

  // ids: I64/I32 [B, L] with 1 <= L <= max_position_embeddings; attention_mask: [B, L] (1 keep, 0 pad)
  // or undefined. Returns last_hidden_state (after the final LayerNorm), pooled (final-LN row at
  // the EOS position), text_embeds (WithProjection only) and, when asked, hidden_states: the
  // embeddings, then every layer's output before the final LayerNorm (so [-2] is SD3's input).
  TextEncoderOutput encode(const Tensor& ids, const Tensor& attention_mask,
                           bool output_hidden_states = false) const override;
  int64_t hidden_size() const override { return hidden_; }

  bool with_projection() const { return with_projection_; }
  int64_t projection_dim() const { return projection_dim_; }
  int64_t num_layers() const { return layers_.size(); }
  int64_t max_positions() const { return max_positions_; }
  int64_t eos_token_id() const { return eos_token_id_; }

  // The row pooled for each batch entry: argmax(ids) when eos_token_id == 2 (legacy configs),
  // else the first index holding eos_token_id (0 when there is none, as torch's argmax gives).
  std::vector<int64_t> pooling_positions(const Tensor& ids) const;

 private:
  struct Layer {
    nn::LayerNorm layer_norm1, layer_norm2;
    nn::LinearGroup qkv;  // q_proj, k_proj, v_proj
    nn::Linear out_proj, fc1, fc2;
    size_t weight_bytes() const;
  };

  Tensor embed(const std::vector<int64_t>& ids, int64_t batch, int64_t len) const;
  void run_layer(const Layer& layer, Tensor& x, const Tensor& mask) const;

  bool with_projection_ = false;
  int64_t hidden_ = 0, intermediate_ = 0, heads_ = 0, max_positions_ = 0, vocab_ = 0, projection_dim_ = 0;
  int64_t eos_token_id_ = 0;
  bool quick_gelu_ = false;  // fc1 then x*sigmoid(1.702x); otherwise act_ is fused into fc1
  kernels::Activation act_ = kernels::Activation::None;
  DType compute_ = DType::F32;
  size_t weight_bytes_ = 0;

  Tensor token_embedding_;     // [vocab, D] as stored (may be f16/bf16); rows converted on lookup
  Tensor position_embedding_;  // [max_positions, D] f32
  nn::LazyBlocks<Layer> layers_;
  nn::LayerNorm final_layer_norm_;
  nn::Linear text_projection_;
};

void register_clip_models();

}  // namespace qdit::models
