// Tensor lists of every model class `qdit make-model` writes, from the component config, with the
// names and shapes diffusers/transformers state dicts use (and qdit's models bind), and the
// initialisation that keeps activations finite through a whole random pipeline:
//  - Linear / conv weights ~ N(0, 1/fan_in): each layer roughly preserves the activation scale;
//  - biases ~ N(0, 0.02^2); norm weights 1, norm biases 0;
//  - adaLN modulation layers (shift/scale/gate producers) at a tenth of that and their learned
//    tables at 0.02, so gates stay small and the residual streams do not grow over many blocks;
//  - embeddings as transformers initialises them (T5 N(0,1), CLIP 0.02 / 0.01); T5's q is scaled
//    by 1/sqrt(d_kv) (T5 has no attention scaling; transformers' init folds it into q).
#include <cmath>

#include "qdit/api/make_model_internal.h"
#include "qdit/core/error.h"

namespace qdit::api::make_model_detail {

namespace {

using nlohmann::json;

constexpr float kBiasStd = 0.02f;
constexpr float kModulationGain = 0.1f;
constexpr float kTableStd = 0.02f;
constexpr int64_t kTimeProjDim = 256;  // sinusoidal timestep features of every DiT here

class Builder {
 public:
  explicit Builder(std::vector<WeightSpec>& out, std::string prefix = "") : out_(&out), prefix_(std::move(prefix)) {}
  Builder sub(const std::string& name) const { return Builder(*out_, prefix_ + name + "."); }
  Builder sub(const std::string& name, int64_t i) const { return sub(name + "." + std::to_string(i)); }

  void linear(const std::string& name, int64_t in, int64_t out, bool bias = true, float gain = 1.0f) const {
    normal(name + ".weight", {out, in}, gain / std::sqrt(static_cast<float>(in)));
    if (bias) normal(name + ".bias", {out}, kBiasStd);
  }
  void conv(const std::string& name, int64_t in, int64_t out, int64_t k) const {
    normal(name + ".weight", {out, in, k, k}, 1.0f / std::sqrt(static_cast<float>(in * k * k)));
    normal(name + ".bias", {out}, kBiasStd);
  }
  // LayerNorm / GroupNorm (weight and bias) or RMSNorm (weight only).
  void norm(const std::string& name, int64_t dim, bool bias = true) const {
    add({prefix_ + name + ".weight", {dim}, WeightInit::Ones});
    if (bias) add({prefix_ + name + ".bias", {dim}, WeightInit::Zeros});
  }
  void normal(const std::string& name, Shape shape, float std) const {
    add({prefix_ + name, std::move(shape), WeightInit::Normal, std});
  }
  void add(WeightSpec w) const { out_->push_back(std::move(w)); }

 private:
  std::vector<WeightSpec>* out_;
  std::string prefix_;
};

int64_t geti(const json& c, const char* key) { return c.at(key).get<int64_t>(); }

// diffusers FeedForward(dim, mult=4): net.0.proj (GELU) and net.2.
void feed_forward(const Builder& b, const std::string& name, int64_t d) {
  b.linear(name + ".net.0.proj", d, 4 * d);
  b.linear(name + ".net.2", 4 * d, d);
}

void pixart(const Builder& b, const json& c) {
  const int64_t d = geti(c, "num_attention_heads") * geti(c, "attention_head_dim"), p = geti(c, "patch_size");
  const int64_t cross = geti(c, "cross_attention_dim");
  b.conv("pos_embed.proj", geti(c, "in_channels"), d, p);
  for (int64_t i = 0; i < geti(c, "num_layers"); ++i) {
    const Builder blk = b.sub("transformer_blocks", i);
    for (const char* attn : {"attn1", "attn2"}) {
      const int64_t kv_in = std::string(attn) == "attn2" ? cross : d;
      blk.linear(std::string(attn) + ".to_q", d, d);
      blk.linear(std::string(attn) + ".to_k", kv_in, d);
      blk.linear(std::string(attn) + ".to_v", kv_in, d);
      blk.linear(std::string(attn) + ".to_out.0", d, d);
    }
    feed_forward(blk, "ff", d);
    blk.normal("scale_shift_table", {6, d}, kTableStd);
  }
  b.normal("scale_shift_table", {2, d}, kTableStd);
  b.linear("proj_out", d, p * p * geti(c, "out_channels"));
  b.linear("adaln_single.emb.timestep_embedder.linear_1", kTimeProjDim, d);
  b.linear("adaln_single.emb.timestep_embedder.linear_2", d, d);
  b.linear("adaln_single.linear", d, 6 * d, true, kModulationGain);
  b.linear("caption_projection.linear_1", geti(c, "caption_channels"), d);
  b.linear("caption_projection.linear_2", d, d);
}

void sd3(const Builder& b, const json& c) {
  const int64_t d = geti(c, "num_attention_heads") * geti(c, "attention_head_dim"), p = geti(c, "patch_size");
  const int64_t mx = geti(c, "pos_embed_max_size"), layers = geti(c, "num_layers");
  b.conv("pos_embed.proj", geti(c, "in_channels"), d, p);
  // Persistent buffer: the sin-cos table diffusers builds at pos_embed_max_size (stored in checkpoints).
  WeightSpec table{"pos_embed.pos_embed", {1, mx * mx, d}, WeightInit::SinCosPosEmbed};
  table.buffer = true;
  table.sincos_grid = mx;
  table.sincos_base = static_cast<float>(geti(c, "sample_size") / p);
  b.add(table);
  b.linear("time_text_embed.timestep_embedder.linear_1", kTimeProjDim, d);
  b.linear("time_text_embed.timestep_embedder.linear_2", d, d);
  b.linear("time_text_embed.text_embedder.linear_1", geti(c, "pooled_projection_dim"), d);
  b.linear("time_text_embed.text_embedder.linear_2", d, d);
  b.linear("context_embedder", geti(c, "joint_attention_dim"), geti(c, "caption_projection_dim"));
  for (int64_t i = 0; i < layers; ++i) {
    const Builder blk = b.sub("transformer_blocks", i);
    const bool last = i == layers - 1;  // context_pre_only: no context output path
    blk.linear("norm1.linear", d, 6 * d, true, kModulationGain);
    blk.linear("norm1_context.linear", d, (last ? 2 : 6) * d, true, kModulationGain);
    for (const char* n : {"to_q", "to_k", "to_v", "add_k_proj", "add_v_proj", "add_q_proj", "to_out.0"})
      blk.linear(std::string("attn.") + n, d, d);
    if (!last) blk.linear("attn.to_add_out", d, d);
    feed_forward(blk, "ff", d);
    if (!last) feed_forward(blk, "ff_context", d);
  }
  b.linear("norm_out.linear", d, 2 * d, true, kModulationGain);
  b.linear("proj_out", d, p * p * geti(c, "out_channels"));
}

void flux(const Builder& b, const json& c) {
  const int64_t head = geti(c, "attention_head_dim"), d = geti(c, "num_attention_heads") * head;
  b.linear("x_embedder", geti(c, "in_channels"), d);
  b.linear("context_embedder", geti(c, "joint_attention_dim"), d);
  b.linear("time_text_embed.timestep_embedder.linear_1", kTimeProjDim, d);
  b.linear("time_text_embed.timestep_embedder.linear_2", d, d);
  if (c.at("guidance_embeds").get<bool>()) {
    b.linear("time_text_embed.guidance_embedder.linear_1", kTimeProjDim, d);
    b.linear("time_text_embed.guidance_embedder.linear_2", d, d);
  }
  b.linear("time_text_embed.text_embedder.linear_1", geti(c, "pooled_projection_dim"), d);
  b.linear("time_text_embed.text_embedder.linear_2", d, d);
  for (int64_t i = 0; i < geti(c, "num_layers"); ++i) {
    const Builder blk = b.sub("transformer_blocks", i);
    blk.linear("norm1.linear", d, 6 * d, true, kModulationGain);
    blk.linear("norm1_context.linear", d, 6 * d, true, kModulationGain);
    blk.norm("attn.norm_q", head, false);
    blk.norm("attn.norm_k", head, false);
    for (const char* n : {"to_q", "to_k", "to_v", "add_k_proj", "add_v_proj", "add_q_proj"})
      blk.linear(std::string("attn.") + n, d, d);
    blk.norm("attn.norm_added_q", head, false);
    blk.norm("attn.norm_added_k", head, false);
    blk.linear("attn.to_out.0", d, d);
    blk.linear("attn.to_add_out", d, d);
    feed_forward(blk, "ff", d);
    feed_forward(blk, "ff_context", d);
  }
  for (int64_t i = 0; i < geti(c, "num_single_layers"); ++i) {
    const Builder blk = b.sub("single_transformer_blocks", i);
    blk.linear("norm.linear", d, 3 * d, true, kModulationGain);
    blk.linear("proj_mlp", d, 4 * d);
    blk.linear("proj_out", 5 * d, d);  // over cat(attention, mlp)
    blk.norm("attn.norm_q", head, false);
    blk.norm("attn.norm_k", head, false);
    for (const char* n : {"to_q", "to_k", "to_v"}) blk.linear(std::string("attn.") + n, d, d);
  }
  b.linear("norm_out.linear", d, 2 * d, true, kModulationGain);
  b.linear("proj_out", d, geti(c, "patch_size") * geti(c, "patch_size") * geti(c, "in_channels"));
}

// AuraFlow: bias-free except the patch and timestep projections; SwiGLU hidden rounded up to 256.
void auraflow(const Builder& b, const json& c) {
  const int64_t d = geti(c, "num_attention_heads") * geti(c, "attention_head_dim"), p = geti(c, "patch_size");
  const int64_t h = 2 * (4 * d) / 3, ff = (h + 255) / 256 * 256;
  auto swiglu = [&](const Builder& blk, const std::string& name) {
    blk.linear(name + ".linear_1", d, ff, false);
    blk.linear(name + ".linear_2", d, ff, false);
    blk.linear(name + ".out_projection", ff, d, false);
  };
  b.normal("pos_embed.pos_embed", {1, geti(c, "pos_embed_max_size"), d}, 0.1f);  // randn * 0.1 in diffusers
  b.linear("pos_embed.proj", geti(c, "in_channels") * p * p, d);
  b.linear("time_step_proj.linear_1", kTimeProjDim, d);
  b.linear("time_step_proj.linear_2", d, d);
  b.linear("context_embedder", geti(c, "joint_attention_dim"), geti(c, "caption_projection_dim"), false);
  for (int64_t i = 0; i < geti(c, "num_mmdit_layers"); ++i) {
    const Builder blk = b.sub("joint_transformer_blocks", i);
    blk.linear("norm1.linear", d, 6 * d, false, kModulationGain);
    blk.linear("norm1_context.linear", d, 6 * d, false, kModulationGain);
    for (const char* n : {"to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"})
      blk.linear(std::string("attn.") + n, d, d, false);
    swiglu(blk, "ff");
    swiglu(blk, "ff_context");
  }
  for (int64_t i = 0; i < geti(c, "num_single_dit_layers"); ++i) {
    const Builder blk = b.sub("single_transformer_blocks", i);
    blk.linear("norm1.linear", d, 6 * d, false, kModulationGain);
    for (const char* n : {"to_q", "to_k", "to_v", "to_out.0"}) blk.linear(std::string("attn.") + n, d, d, false);
    swiglu(blk, "ff");
  }
  b.linear("norm_out.linear", d, 2 * d, false, kModulationGain);
  b.linear("proj_out", d, p * p * geti(c, "out_channels"), false);
  b.normal("register_tokens", {1, 8, d}, 0.02f);  // randn * 0.02 in diffusers
}

// T5EncoderModel / UMT5EncoderModel: shared embedding (encoder.embed_tokens is tied to it and not
// stored), relative position bias in block 0 (T5) or every block (UMT5), no biases.
void t5(const Builder& b, const json& c, bool umt5) {
  const int64_t d = geti(c, "d_model"), d_kv = geti(c, "d_kv"), heads = geti(c, "num_heads");
  const int64_t inner = heads * d_kv, d_ff = geti(c, "d_ff");
  const bool gated = c.value("is_gated_act", false);
  b.normal("shared.weight", {geti(c, "vocab_size"), d}, 1.0f);
  for (int64_t i = 0; i < geti(c, "num_layers"); ++i) {
    const Builder blk = b.sub("encoder.block", i);
    const Builder sa = blk.sub("layer.0.SelfAttention");
    sa.linear("q", d, inner, false, 1.0f / std::sqrt(static_cast<float>(d_kv)));
    sa.linear("k", d, inner, false);
    sa.linear("v", d, inner, false);
    sa.linear("o", inner, d, false);
    if (i == 0 || umt5)
      sa.normal("relative_attention_bias.weight", {geti(c, "relative_attention_num_buckets"), heads},
                1.0f / std::sqrt(static_cast<float>(d)));
    blk.norm("layer.0.layer_norm", d, false);
    const Builder ff = blk.sub("layer.1.DenseReluDense");
    ff.linear(gated ? "wi_0" : "wi", d, d_ff, false);
    if (gated) ff.linear("wi_1", d, d_ff, false);
    ff.linear("wo", d_ff, d, false);
    blk.norm("layer.1.layer_norm", d, false);
  }
  b.norm("encoder.final_layer_norm", d, false);
}

void clip(const Builder& b, const json& c, bool projection) {
  const int64_t h = geti(c, "hidden_size"), inter = geti(c, "intermediate_size");
  const Builder tm = b.sub("text_model");
  tm.normal("embeddings.token_embedding.weight", {geti(c, "vocab_size"), h}, 0.02f);
  tm.normal("embeddings.position_embedding.weight", {geti(c, "max_position_embeddings"), h}, 0.01f);
  for (int64_t i = 0; i < geti(c, "num_hidden_layers"); ++i) {
    const Builder l = tm.sub("encoder.layers", i);
    for (const char* n : {"k_proj", "v_proj", "q_proj", "out_proj"}) l.linear(std::string("self_attn.") + n, h, h);
    l.norm("layer_norm1", h);
    l.linear("mlp.fc1", h, inter);
    l.linear("mlp.fc2", inter, h);
    l.norm("layer_norm2", h);
  }
  tm.norm("final_layer_norm", h);
  if (projection) b.linear("text_projection", h, geti(c, "projection_dim"), false);
}

void vae_resnet(const Builder& b, int64_t in, int64_t out) {
  b.norm("norm1", in);
  b.conv("conv1", in, out, 3);
  b.norm("norm2", out);
  b.conv("conv2", out, out, 3);
  if (in != out) b.conv("conv_shortcut", in, out, 1);
}

void vae_mid(const Builder& b, int64_t ch) {
  const Builder a = b.sub("attentions.0");
  a.norm("group_norm", ch);
  for (const char* n : {"to_q", "to_k", "to_v", "to_out.0"}) a.linear(n, ch, ch);
  vae_resnet(b.sub("resnets", 0), ch, ch);
  vae_resnet(b.sub("resnets", 1), ch, ch);
}

void autoencoder_kl(const Builder& b, const json& c) {
  const auto bo = c.at("block_out_channels").get<std::vector<int64_t>>();
  const int64_t layers = geti(c, "layers_per_block"), latent = geti(c, "latent_channels");
  const int64_t n = static_cast<int64_t>(bo.size()), top = bo.back();
  QDIT_CHECK(c.value("mid_block_add_attention", true), "[make-model] AutoencoderKL without mid-block attention");
  const Builder enc = b.sub("encoder");
  enc.conv("conv_in", geti(c, "in_channels"), bo[0], 3);
  for (int64_t i = 0; i < n; ++i) {
    const Builder blk = enc.sub("down_blocks", i);
    for (int64_t j = 0; j < layers; ++j) vae_resnet(blk.sub("resnets", j), j == 0 ? bo[i == 0 ? 0 : i - 1] : bo[i], bo[i]);
    if (i + 1 < n) blk.conv("downsamplers.0.conv", bo[i], bo[i], 3);
  }
  vae_mid(enc.sub("mid_block"), top);
  enc.norm("conv_norm_out", top);
  enc.conv("conv_out", top, 2 * latent, 3);
  const Builder dec = b.sub("decoder");
  dec.conv("conv_in", latent, top, 3);
  for (int64_t i = 0; i < n; ++i) {
    const Builder blk = dec.sub("up_blocks", i);
    const int64_t out = bo[n - 1 - i], prev = i == 0 ? top : bo[n - i];
    for (int64_t j = 0; j <= layers; ++j) vae_resnet(blk.sub("resnets", j), j == 0 ? prev : out, out);
    if (i + 1 < n) blk.conv("upsamplers.0.conv", out, out, 3);
  }
  vae_mid(dec.sub("mid_block"), top);
  dec.norm("conv_norm_out", bo[0]);
  dec.conv("conv_out", bo[0], geti(c, "out_channels"), 3);
  if (c.value("use_quant_conv", true)) b.conv("quant_conv", 2 * latent, 2 * latent, 1);
  if (c.value("use_post_quant_conv", true)) b.conv("post_quant_conv", latent, latent, 1);
}

}  // namespace

std::vector<WeightSpec> plan_weights(const std::string& class_name, const nlohmann::json& config) {
  std::vector<WeightSpec> out;
  const Builder b(out);
  if (class_name == "PixArtTransformer2DModel") pixart(b, config);
  else if (class_name == "SD3Transformer2DModel") sd3(b, config);
  else if (class_name == "FluxTransformer2DModel") flux(b, config);
  else if (class_name == "AuraFlowTransformer2DModel") auraflow(b, config);
  else if (class_name == "T5EncoderModel") t5(b, config, false);
  else if (class_name == "UMT5EncoderModel") t5(b, config, true);
  else if (class_name == "CLIPTextModel") clip(b, config, false);
  else if (class_name == "CLIPTextModelWithProjection") clip(b, config, true);
  else if (class_name == "AutoencoderKL") autoencoder_kl(b, config);
  else fail("[make-model] no weight plan for model class '", class_name, "'");
  return out;
}

}  // namespace qdit::api::make_model_detail
