// Prompt encoding and latent decoding shared by the pipelines: tokenize one text with a pipeline's
// tokenizer settings, run a text encoder on it (tracing "tok.<name>.<role>.*" as the goldens name
// them), and decode final latents with the VAE's scaling (and shift) factors.
#pragma once
#include <string>

#include "qdit/models/model.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/tokenizers/tokenizer.h"

namespace qdit::pipelines {

struct TextEncodeSpec {
  int max_length = 77;
  bool pass_mask = false;       // give the attention mask to the encoder (PixArt, AuraFlow)
  bool hidden_states = false;   // keep all hidden states (SD3 uses the penultimate)
  std::string trace_name;       // "t5", "clip_l", ...: traces tok.<name>.<role>.input_ids/attention_mask
  bool trace_mask = false;
};

struct EncodedText {
  Tensor ids, mask;  // I64 [1, L]
  models::TextEncoderOutput out;
};

EncodedText encode_text(const tokenizers::Tokenizer& tok, const models::TextEncoder& enc, const std::string& text,
                        const TextEncodeSpec& spec, const std::string& role, const RunHooks& hooks);

// image = vae.decode(latents / scaling_factor (+ shift_factor when add_shift)); traces
// image_decoded and images_np, fills result.image with (x/2 + 0.5).clamp(0, 1).
void decode_latents(const models::VaeDecoder& vae, const Tensor& latents, bool add_shift, const RunHooks& hooks,
                    GenerateResult& result);

// Zero-pads the last dim of x [B, L, D] to `dim` (SD3 pads CLIP features to the T5 width).
Tensor pad_last_dim(const Tensor& x, int64_t dim);

}  // namespace qdit::pipelines
