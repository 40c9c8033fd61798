// T5 / UMT5 text encoders (transformers 4.44.2 T5EncoderModel, UMT5EncoderModel): the prompt
// encoders of PixArt-Sigma, SD3, Flux (T5) and AuraFlow (UMT5). Registered under both class names
// by register_t5_models(); pipelines use them through models::TextEncoder.
#pragma once
#include <string>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/models/model.h"
#include "qdit/nn/layers.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"
#include "qdit/nn/weight_binder.h"

namespace qdit::models {

// Hyper-parameters from config.json (transformers' defaults for absent keys).
struct T5Config {
  bool umt5 = false;  // a relative_attention_bias per layer (UMT5) or only in layer 0 (T5)
  int64_t vocab_size = 32128, d_model = 512, d_kv = 64, d_ff = 2048, num_layers = 6, num_heads = 8;
  int64_t num_buckets = 32, max_distance = 128;
  float eps = 1e-6f;
  bool gated = false;
  kernels::Activation act = kernels::Activation::Relu;

  // feed_forward_proj ("relu", "gated-gelu", "gated-silu", ...) sets gated/act as T5Config does;
  // explicit dense_act_fn / is_gated_act keys (saved by transformers) take precedence.
  static T5Config from_json(const io::JsonConfig& cfg, bool umt5);
  int64_t inner_dim() const { return num_heads * d_kv; }
};

class T5Encoder : public TextEncoder {
 public:
  // Binds shared.weight and/or encoder.embed_tokens.weight (tied copies; either suffices) and
  // encoder.*; throws one error listing every missing/mis-shaped tensor.
  T5Encoder(const ModelSource& src, bool umt5);

  std::string class_name() const override { return cfg_.umt5 ? "UMT5EncoderModel" : "T5EncoderModel"; }
  size_t weight_bytes() const override { return weight_bytes_; }
  int64_t hidden_size() const override { return cfg_.d_model; }
  const T5Config& config() const { return cfg_; }
  // What finish() found (unused tensors, e.g. a decoder's, are allowed and listed here).
  const nn::BindReport& bind_report() const { return report_; }

  // ids: I64/I32 [B, L]; attention_mask: [B, L] (1 keep, 0 pad) or undefined (all ones).
  // hidden_states (when asked), as transformers returns them: the embeddings, then the output of
  // every block but the last, then the final-norm output (== last_hidden_state).
  TextEncoderOutput encode(const Tensor& ids, const Tensor& attention_mask,
                           bool output_hidden_states = false) const override;

 private:
  struct Block {
    nn::RMSNorm attn_norm, ff_norm;
    nn::LinearGroup qkv;  // q, k, v
    nn::Linear o;
    Tensor rel_bias;  // f32 [num_buckets, heads]; T5: block 0 only
    nn::Linear wi0, wi1, wo;  // wi0 is "wi" when not gated
    int64_t d_model = 0;
    size_t weight_bytes() const;
  };
  static Block build_block(const T5Config& cfg, const nn::WeightBinder& b, int64_t index, const nn::ModuleContext& ctx);

  Tensor embed(const Tensor& ids) const;

  T5Config cfg_;
  DType compute_ = DType::F32;
  Tensor embed_tokens_;  // [vocab, d_model] as stored (any float dtype), rows converted on lookup
  nn::LazyBlocks<Block> blocks_;
  nn::RMSNorm final_norm_;
  nn::BindReport report_;
  size_t weight_bytes_ = 0;
};

void register_t5_models();

}  // namespace qdit::models
