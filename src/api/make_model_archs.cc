// The pipelines `qdit make-model` writes: the real component configs (diffusers/transformers
// save_pretrained dicts from /work/shared/guides/real-configs.md) and tiny variants that keep every
// architectural feature (gated-GELU T5, UMT5 per-layer bias with heads*d_kv != d_model, CLIP quick_gelu
// vs gelu, SD3's context_pre_only last block and cropped pos-embed, Flux guidance and 3-axis RoPE,
// AuraFlow registers and learned pos-embed, 4-level VAEs with quant convs or 16 channels).
#include <map>

#include "qdit/api/make_model_internal.h"
#include "qdit/core/error.h"
#include "qdit/io/json_config.h"

namespace qdit::api::make_model_detail {

namespace {

using nlohmann::json;

json parse(const char* text) { return json(io::parse_json(text, "make-model built-in config")); }

// `base` with the keys of `changes` replaced (tiny variants).
json with(json base, const char* changes) {
  base.update(parse(changes));
  return base;
}

const char* kDiffusersVersion = "0.40.0.dev0";  // the snapshot the real configs were taken from
constexpr uint64_t kDiffusersShard = 10'000'000'000ull;    // diffusers save_pretrained max_shard_size "10GB"
constexpr uint64_t kTransformersShard = 5'000'000'000ull;  // transformers save_pretrained max_shard_size "5GB"

// --- real configs -----------------------------------------------------------------------------

const char* kT5XXL = R"({
  "architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": 32128, "d_model": 4096, "d_kv": 64,
  "d_ff": 10240, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 64, "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-06,
  "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": true,
  "is_encoder_decoder": true, "tie_word_embeddings": false, "use_cache": true, "pad_token_id": 0,
  "eos_token_id": 1, "decoder_start_token_id": 0})";

const char* kPileT5XL = R"({
  "architectures": ["UMT5EncoderModel"], "model_type": "umt5", "vocab_size": 32128, "d_model": 2048, "d_kv": 64,
  "d_ff": 5120, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 32, "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "dropout_rate": 0.1, "classifier_dropout": 0.0,
  "layer_norm_epsilon": 1e-06, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
  "dense_act_fn": "gelu_new", "is_gated_act": true, "is_encoder_decoder": true, "scalable_attention": true,
  "tie_word_embeddings": false, "tokenizer_class": "LlamaTokenizerFast", "pad_token_id": 0, "eos_token_id": 2,
  "decoder_start_token_id": 0, "use_cache": true})";

const char* kClipL = R"({
  "architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model", "vocab_size": 49408,
  "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
  "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 768,
  "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02,
  "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1})";

const char* kClipBigG = R"({
  "architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model", "vocab_size": 49408,
  "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
  "max_position_embeddings": 77, "hidden_act": "gelu", "layer_norm_eps": 1e-05, "projection_dim": 1280,
  "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02,
  "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1})";

const char* kVaeSdxl = R"({
  "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu", "latent_channels": 4,
  "norm_num_groups": 32, "sample_size": 1024, "scaling_factor": 0.13025, "shift_factor": null,
  "latents_mean": null, "latents_std": null, "force_upcast": true, "use_quant_conv": true,
  "use_post_quant_conv": true, "mid_block_add_attention": true})";

const char* kVae16 = R"({"latent_channels": 16, "use_quant_conv": false, "use_post_quant_conv": false})";

const char* kPixArtSigma = R"({
  "_class_name": "PixArtTransformer2DModel", "num_attention_heads": 16, "attention_head_dim": 72,
  "in_channels": 4, "out_channels": 8, "num_layers": 28, "dropout": 0.0, "norm_num_groups": 32,
  "cross_attention_dim": 1152, "attention_bias": true, "sample_size": 128, "patch_size": 2,
  "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000, "upcast_attention": false,
  "norm_type": "ada_norm_single", "norm_elementwise_affine": false, "norm_eps": 1e-06, "interpolation_scale": 2,
  "use_additional_conditions": false, "caption_channels": 4096, "attention_type": "default"})";

const char* kSd3Medium = R"({
  "_class_name": "SD3Transformer2DModel", "sample_size": 128, "patch_size": 2, "in_channels": 16,
  "num_layers": 24, "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
  "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192,
  "dual_attention_layers": [], "qk_norm": null})";

const char* kFluxDev = R"({
  "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "out_channels": null,
  "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
  "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": true,
  "axes_dims_rope": [16, 56, 56]})";

const char* kAuraFlow = R"({
  "_class_name": "AuraFlowTransformer2DModel", "sample_size": 64, "patch_size": 2, "in_channels": 4,
  "num_mmdit_layers": 4, "num_single_dit_layers": 32, "attention_head_dim": 256, "num_attention_heads": 12,
  "joint_attention_dim": 2048, "caption_projection_dim": 3072, "out_channels": 4, "pos_embed_max_size": 9216})";

const char* kDpmSolver = R"({
  "_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001,
  "beta_end": 0.02, "beta_schedule": "linear", "trained_betas": null, "solver_order": 2,
  "prediction_type": "epsilon", "thresholding": false, "dynamic_thresholding_ratio": 0.995,
  "sample_max_value": 1.0, "algorithm_type": "dpmsolver++", "solver_type": "midpoint", "lower_order_final": true,
  "euler_at_final": false, "use_karras_sigmas": false, "use_exponential_sigmas": false, "use_beta_sigmas": false,
  "use_lu_lambdas": false, "use_flow_sigmas": false, "flow_shift": 1.0, "final_sigmas_type": "zero",
  "lambda_min_clipped": -Infinity, "variance_type": null, "timestep_spacing": "linspace", "steps_offset": 0,
  "rescale_betas_zero_snr": false, "use_dynamic_shifting": false, "time_shift_type": "exponential"})";

const char* kFlowMatch = R"({
  "_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
  "use_dynamic_shifting": false, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
  "max_image_seq_len": 4096, "invert_sigmas": false, "shift_terminal": null, "use_karras_sigmas": false,
  "use_exponential_sigmas": false, "use_beta_sigmas": false, "time_shift_type": "exponential",
  "stochastic_sampling": false})";

// --- tiny variants (a few MB; same keys) -------------------------------------------------------

// T5 keeps 32 buckets / distance 128 and gated-gelu; 400 pieces + 100 extra ids + 12 padding rows.
const char* kTinyT5 = R"({"vocab_size": 512, "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2,
  "num_decoder_layers": 2, "num_heads": 4})";
// heads * d_kv (64) != d_model (48), like pile-t5's 32*64 = 2048 only by coincidence.
const char* kTinyUmt5 = R"({"vocab_size": 512, "d_model": 48, "d_kv": 16, "d_ff": 96, "num_layers": 2,
  "num_decoder_layers": 2, "num_heads": 4})";
// CLIP-L + bigG hidden sizes (24 + 32) fit in the T5 width (64) that SD3 zero-pads them to.
const char* kTinyClipL = R"({"vocab_size": 1014, "hidden_size": 24, "intermediate_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 24})";
const char* kTinyClipG = R"({"vocab_size": 1014, "hidden_size": 32, "intermediate_size": 80,
  "num_hidden_layers": 3, "num_attention_heads": 4, "projection_dim": 32})";
const char* kTinyVae = R"({"block_out_channels": [8, 16, 32, 32], "norm_num_groups": 4, "sample_size": 64})";
const char* kTinyPixArt = R"({"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2,
  "cross_attention_dim": 32, "caption_channels": 64, "sample_size": 8, "interpolation_scale": 1})";
const char* kTinySd3 = R"({"sample_size": 8, "num_layers": 3, "attention_head_dim": 16, "num_attention_heads": 2,
  "joint_attention_dim": 64, "caption_projection_dim": 32, "pooled_projection_dim": 56, "pos_embed_max_size": 16})";
const char* kTinyFlux = R"({"num_layers": 1, "num_single_layers": 2, "attention_head_dim": 16,
  "num_attention_heads": 2, "joint_attention_dim": 64, "pooled_projection_dim": 24, "axes_dims_rope": [4, 6, 6]})";
const char* kTinyAuraFlow = R"({"sample_size": 8, "num_mmdit_layers": 1, "num_single_dit_layers": 2,
  "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 48, "caption_projection_dim": 32,
  "pos_embed_max_size": 64})";

constexpr int64_t kT5Pieces = 32000, kTinyT5Pieces = 400;
constexpr int64_t kClipVocab = 49408, kTinyClipVocab = 1014;

const char* dtype_torch_name(DType d) { return d == DType::BF16 ? "bfloat16" : "float32"; }

// A diffusers model component (transformer, vae).
ComponentSpec diffusers_model(const std::string& name, json config) {
  ComponentSpec c;
  c.name = name;
  c.library = "diffusers";
  c.class_name = config.at("_class_name").get<std::string>();
  config["_diffusers_version"] = kDiffusersVersion;
  c.config = std::move(config);
  c.config_file = "config.json";
  c.weights_stem = "diffusion_pytorch_model";
  c.max_shard_bytes = kDiffusersShard;
  return c;
}

// A transformers text encoder; its class is architectures[0] and save_pretrained adds torch_dtype.
ComponentSpec text_encoder(const std::string& name, json config, DType dtype) {
  ComponentSpec c;
  c.name = name;
  c.library = "transformers";
  c.class_name = config.at("architectures").at(0).get<std::string>();
  config["torch_dtype"] = dtype_torch_name(dtype);
  c.config = std::move(config);
  c.config_file = "config.json";
  c.weights_stem = "model";
  c.max_shard_bytes = kTransformersShard;
  return c;
}

ComponentSpec scheduler(json config) {
  ComponentSpec c;
  c.name = "scheduler";
  c.library = "diffusers";
  c.class_name = config.at("_class_name").get<std::string>();
  config["_diffusers_version"] = kDiffusersVersion;
  c.config = std::move(config);
  c.config_file = "scheduler_config.json";
  return c;
}

ComponentSpec tokenizer(const std::string& name, TokenizerSpec spec) {
  ComponentSpec c;
  c.name = name;
  c.library = "transformers";
  c.class_name = spec.tokenizer_class;
  c.has_tokenizer = true;
  c.tokenizer = std::move(spec);
  return c;
}

TokenizerSpec t5_tokenizer(bool tiny, const std::string& cls) {
  return {TokenizerSpec::Kind::T5, tiny ? kTinyT5Pieces : kT5Pieces, cls, "", 512};
}
TokenizerSpec clip_tokenizer(bool tiny, const std::string& pad) {
  return {TokenizerSpec::Kind::Clip, tiny ? kTinyClipVocab : kClipVocab, "CLIPTokenizer", pad, 77};
}

json pick(bool tiny, const char* real, const char* tiny_changes) {
  return tiny ? with(parse(real), tiny_changes) : parse(real);
}

json vae_config(bool tiny, bool sixteen, double scaling, std::optional<double> shift) {
  json v = parse(kVaeSdxl);
  if (sixteen) v.update(parse(kVae16));
  if (tiny) v.update(parse(kTinyVae));
  v["scaling_factor"] = scaling;
  v["shift_factor"] = shift ? json(*shift) : json(nullptr);
  return v;
}

PipelineSpec pixart_sigma(bool tiny, DType dtype) {
  PipelineSpec p;
  p.components.push_back(scheduler(parse(kDpmSolver)));
  p.components.push_back(text_encoder("text_encoder", pick(tiny, kT5XXL, kTinyT5), dtype));
  p.components.push_back(tokenizer("tokenizer", t5_tokenizer(tiny, "T5Tokenizer")));
  p.components.push_back(diffusers_model("transformer", pick(tiny, kPixArtSigma, kTinyPixArt)));
  p.components.push_back(diffusers_model("vae", vae_config(tiny, false, 0.13025, std::nullopt)));
  p.model_index = {{"_class_name", "PixArtSigmaPipeline"}};
  return p;
}

PipelineSpec sd3_medium(bool tiny, DType dtype) {
  PipelineSpec p;
  json fm = parse(kFlowMatch);
  p.components.push_back(scheduler(fm));
  p.components.push_back(text_encoder("text_encoder", pick(tiny, kClipL, kTinyClipL), dtype));
  p.components.push_back(text_encoder("text_encoder_2", pick(tiny, kClipBigG, kTinyClipG), dtype));
  p.components.push_back(text_encoder("text_encoder_3", pick(tiny, kT5XXL, kTinyT5), dtype));
  p.components.push_back(tokenizer("tokenizer", clip_tokenizer(tiny, "<|endoftext|>")));
  p.components.push_back(tokenizer("tokenizer_2", clip_tokenizer(tiny, "!")));
  p.components.push_back(tokenizer("tokenizer_3", t5_tokenizer(tiny, "T5TokenizerFast")));
  p.components.push_back(diffusers_model("transformer", pick(tiny, kSd3Medium, kTinySd3)));
  p.components.push_back(diffusers_model("vae", vae_config(tiny, true, 1.5305, 0.0609)));
  p.model_index = {{"_class_name", "StableDiffusion3Pipeline"},
                   {"image_encoder", {nullptr, nullptr}},
                   {"feature_extractor", {nullptr, nullptr}}};
  return p;
}

PipelineSpec flux(bool tiny, DType dtype, bool dev) {
  PipelineSpec p;
  json fm = parse(kFlowMatch);
  if (dev) fm["use_dynamic_shifting"] = true;  // mu from the image sequence length
  else fm["shift"] = 1.0;
  p.components.push_back(scheduler(fm));
  json clip = pick(tiny, kClipL, kTinyClipL);
  clip["architectures"] = {"CLIPTextModel"};  // Flux reads pooler_output: no projection
  p.components.push_back(text_encoder("text_encoder", clip, dtype));
  p.components.push_back(text_encoder("text_encoder_2", pick(tiny, kT5XXL, kTinyT5), dtype));
  p.components.push_back(tokenizer("tokenizer", clip_tokenizer(tiny, "<|endoftext|>")));
  p.components.push_back(tokenizer("tokenizer_2", t5_tokenizer(tiny, "T5TokenizerFast")));
  json t = pick(tiny, kFluxDev, kTinyFlux);
  t["guidance_embeds"] = dev;
  p.components.push_back(diffusers_model("transformer", t));
  p.components.push_back(diffusers_model("vae", vae_config(tiny, true, 0.3611, 0.1159)));
  p.model_index = {{"_class_name", "FluxPipeline"}};
  return p;
}

PipelineSpec auraflow(bool tiny, DType dtype) {
  PipelineSpec p;
  json fm = parse(kFlowMatch);
  fm["shift"] = 1.73;
  p.components.push_back(scheduler(fm));
  p.components.push_back(text_encoder("text_encoder", pick(tiny, kPileT5XL, kTinyUmt5), dtype));
  // The real repo ships a LlamaTokenizerFast (tokenizer.json) over pile-t5's 32000-piece
  // sentencepiece vocabulary; qdit reads sentencepiece through T5Tokenizer, so that is written.
  p.components.push_back(tokenizer("tokenizer", t5_tokenizer(tiny, "T5Tokenizer")));
  p.components.push_back(diffusers_model("transformer", pick(tiny, kAuraFlow, kTinyAuraFlow)));
  p.components.push_back(diffusers_model("vae", vae_config(tiny, false, 0.13025, std::nullopt)));
  p.model_index = {{"_class_name", "AuraFlowPipeline"}};
  return p;
}

}  // namespace

PipelineSpec plan_components(const std::string& arch, bool tiny, DType dtype) {
  PipelineSpec p;
  if (arch == "pixart-sigma") p = pixart_sigma(tiny, dtype);
  else if (arch == "sd3-medium") p = sd3_medium(tiny, dtype);
  else if (arch == "flux-dev") p = flux(tiny, dtype, true);
  else if (arch == "flux-schnell") p = flux(tiny, dtype, false);
  else if (arch == "auraflow") p = auraflow(tiny, dtype);
  else {
    std::string known;
    for (const auto& a : make_model_archs()) known += (known.empty() ? "" : ", ") + a;
    fail("[make-model] unknown --arch '", arch, "' (known: ", known, ")");
  }
  p.arch = arch;
  p.tiny = tiny;
  p.dtype = dtype;
  p.model_index["_diffusers_version"] = kDiffusersVersion;
  for (const ComponentSpec& c : p.components) p.model_index[c.name] = {c.library, c.class_name};
  return p;
}

}  // namespace qdit::api::make_model_detail

namespace qdit::api {
const std::vector<std::string>& make_model_archs() {
  static const std::vector<std::string> archs{"pixart-sigma", "sd3-medium", "flux-dev", "flux-schnell", "auraflow"};
  return archs;
}
}  // namespace qdit::api
