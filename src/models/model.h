// Model interfaces the pipelines program against. Each family implements one of them; what a model
// can do (guidance embedding, learned sigma, latent channels...) is a property of the object, so
// shared code never branches on a family or version.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/json_config.h"
#include "qdit/io/weight_source.h"
#include "qdit/nn/context.h"

namespace qdit::models {

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string class_name() const = 0;
  virtual size_t weight_bytes() const = 0;  // resident bytes of the bound weights
};

struct TextEncoderOutput {
  Tensor last_hidden_state;           // [B, L, D] (after the final norm)
  std::vector<Tensor> hidden_states;  // embeddings output, then every layer's output (when asked)
  Tensor pooled;                      // CLIP pooler_output [B, D]; undefined for T5
  Tensor text_embeds;                 // CLIPTextModelWithProjection [B, P]; undefined otherwise
};

class TextEncoder : public Model {
 public:
  // ids: I64 [B, L]; attention_mask: I64/F32 [B, L] (1 keep, 0 pad) or undefined (no mask).
  virtual TextEncoderOutput encode(const Tensor& ids, const Tensor& attention_mask,
                                   bool output_hidden_states = false) const = 0;
  virtual int64_t hidden_size() const = 0;
};

// Everything a DiT forward may consume; each family reads the fields it needs and checks them.
struct DiTInputs {
  Tensor latents;                   // [B, C, H, W] latents (Flux: packed [B, HW/4, 4C])
  Tensor encoder_hidden_states;     // [B, L, D_text]
  Tensor encoder_attention_mask;    // [B, L] or undefined
  Tensor pooled_projections;        // [B, P] (SD3, Flux) or undefined
  std::vector<float> timestep;      // [B], in the units the model's pipeline passes
  std::vector<float> guidance;      // [B] (Flux dev) or empty
  Tensor img_ids, txt_ids;          // Flux position ids
};

class DiffusionTransformer : public Model {
 public:
  virtual Tensor forward(const DiTInputs& in) const = 0;
  virtual int64_t in_channels() const = 0;
  virtual int64_t out_channels() const = 0;
};

class VaeDecoder : public Model {
 public:
  // z: [B, C, h, w] latents already un-scaled (z / scaling_factor + shift_factor) -> image [B, 3, H, W].
  virtual Tensor decode(const Tensor& z) const = 0;
  virtual int64_t latent_channels() const = 0;
  virtual float scaling_factor() const = 0;
  virtual float shift_factor() const = 0;  // 0 when the config has none
  virtual int64_t downscale() const = 0;   // 2^(len(block_out_channels)-1)
};

// What a factory receives: the component's config.json and weights, and the build context.
struct ModelSource {
  std::string component;  // "transformer", "text_encoder_2", ...
  const io::JsonConfig* config = nullptr;
  std::shared_ptr<const io::WeightSource> weights;
  nn::ModuleContext ctx;
};

}  // namespace qdit::models
