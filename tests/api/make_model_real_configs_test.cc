// The real-size plans of `qdit make-model` (no weights written): every config value equals the
// real model's (copied here from /work/shared/guides/real-configs.md, independently of the
// generator's own copy), the parameter counts computed from the planned shapes match the real
// models' (exact counts from the guide; the issue asks for 0.5%), and qdit's model config parsers
// accept the real configs.
#include <gtest/gtest.h>

#include "qdit/api/make_model.h"
#include "qdit/io/json_config.h"
#include "qdit/models/auraflow/auraflow_transformer.h"
#include "qdit/models/flux/flux_transformer.h"
#include "qdit/models/pixart/pixart_transformer.h"
#include "qdit/models/sd3/sd3_transformer.h"
#include "qdit/models/t5/t5_encoder.h"

namespace qdit::api {
namespace {

using nlohmann::json;

json parse(const char* s) { return io::parse_json(s, "expected config"); }

// --- real-configs.md --------------------------------------------------------------------------

const char* kT5XXL = R"({"architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": 32128,
  "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 64,
  "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.1,
  "layer_norm_epsilon": 1e-06, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
  "dense_act_fn": "gelu_new", "is_gated_act": true, "is_encoder_decoder": true, "tie_word_embeddings": false,
  "use_cache": true, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0})";
const char* kClipL = R"({"architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model",
  "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
  "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
  "projection_dim": 768, "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0,
  "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1})";
const char* kClipG = R"({"architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model",
  "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
  "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu", "layer_norm_eps": 1e-05,
  "projection_dim": 1280, "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0,
  "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1})";
const char* kUmt5 = R"({"architectures": ["UMT5EncoderModel"], "model_type": "umt5", "vocab_size": 32128,
  "d_model": 2048, "d_kv": 64, "d_ff": 5120, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 32,
  "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.1,
  "classifier_dropout": 0.0, "layer_norm_epsilon": 1e-06, "initializer_factor": 1.0,
  "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": true, "is_encoder_decoder": true,
  "scalable_attention": true, "tie_word_embeddings": false, "tokenizer_class": "LlamaTokenizerFast",
  "pad_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 0, "use_cache": true})";
const char* kVae = R"({"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu", "latent_channels": 4,
  "norm_num_groups": 32, "sample_size": 1024, "scaling_factor": 0.13025, "shift_factor": null,
  "latents_mean": null, "latents_std": null, "force_upcast": true, "use_quant_conv": true,
  "use_post_quant_conv": true, "mid_block_add_attention": true})";
const char* kPixArt = R"({"_class_name": "PixArtTransformer2DModel", "num_attention_heads": 16,
  "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28, "dropout": 0.0,
  "norm_num_groups": 32, "cross_attention_dim": 1152, "attention_bias": true, "sample_size": 128, "patch_size": 2,
  "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000, "upcast_attention": false,
  "norm_type": "ada_norm_single", "norm_elementwise_affine": false, "norm_eps": 1e-06, "interpolation_scale": 2,
  "use_additional_conditions": false, "caption_channels": 4096, "attention_type": "default"})";
const char* kSd3 = R"({"_class_name": "SD3Transformer2DModel", "sample_size": 128, "patch_size": 2,
  "in_channels": 16, "num_layers": 24, "attention_head_dim": 64, "num_attention_heads": 24,
  "joint_attention_dim": 4096, "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "out_channels": 16,
  "pos_embed_max_size": 192, "dual_attention_layers": [], "qk_norm": null})";
const char* kFlux = R"({"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64,
  "out_channels": null, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
  "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": true,
  "axes_dims_rope": [16, 56, 56]})";
const char* kAuraFlow = R"({"_class_name": "AuraFlowTransformer2DModel", "sample_size": 64, "patch_size": 2,
  "in_channels": 4, "num_mmdit_layers": 4, "num_single_dit_layers": 32, "attention_head_dim": 256,
  "num_attention_heads": 12, "joint_attention_dim": 2048, "caption_projection_dim": 3072, "out_channels": 4,
  "pos_embed_max_size": 9216})";
const char* kDpm = R"({"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000,
  "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "trained_betas": null, "solver_order": 2,
  "prediction_type": "epsilon", "thresholding": false, "dynamic_thresholding_ratio": 0.995,
  "sample_max_value": 1.0, "algorithm_type": "dpmsolver++", "solver_type": "midpoint", "lower_order_final": true,
  "euler_at_final": false, "use_karras_sigmas": false, "use_exponential_sigmas": false, "use_beta_sigmas": false,
  "use_lu_lambdas": false, "use_flow_sigmas": false, "flow_shift": 1.0, "final_sigmas_type": "zero",
  "lambda_min_clipped": -Infinity, "variance_type": null, "timestep_spacing": "linspace", "steps_offset": 0,
  "rescale_betas_zero_snr": false, "use_dynamic_shifting": false, "time_shift_type": "exponential"})";
const char* kFlowMatch = R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
  "shift": 3.0, "use_dynamic_shifting": false, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
  "max_image_seq_len": 4096, "invert_sigmas": false, "shift_terminal": null, "use_karras_sigmas": false,
  "use_exponential_sigmas": false, "use_beta_sigmas": false, "time_shift_type": "exponential",
  "stochastic_sampling": false})";

json with(const char* base, const char* changes) {
  json j = parse(base);
  j.update(parse(changes));
  return j;
}

struct Expected {
  std::string component;
  json config;
  int64_t params;
  int64_t buffer = 0;
};

std::vector<Expected> expected_for(const std::string& arch) {
  const json vae16 = with(kVae, R"({"latent_channels": 16, "use_quant_conv": false, "use_post_quant_conv": false,
    "scaling_factor": 1.5305, "shift_factor": 0.0609})");
  const json flux_vae = with(kVae, R"({"latent_channels": 16, "use_quant_conv": false, "use_post_quant_conv": false,
    "scaling_factor": 0.3611, "shift_factor": 0.1159})");
  const json flux_clip = with(kClipL, R"({"architectures": ["CLIPTextModel"]})");
  if (arch == "pixart-sigma")
    return {{"transformer", parse(kPixArt), 610'856'096},
            {"text_encoder", parse(kT5XXL), 4'762'310'656},
            {"vae", parse(kVae), 83'653'863},
            {"scheduler", parse(kDpm), 0}};
  if (arch == "sd3-medium")
    return {{"transformer", parse(kSd3), 2'028'328'000, 56'623'104},
            {"text_encoder", parse(kClipL), 123'650'304},
            {"text_encoder_2", parse(kClipG), 694'659'840},
            {"text_encoder_3", parse(kT5XXL), 4'762'310'656},
            {"vae", vae16, 83'819'683},
            {"scheduler", parse(kFlowMatch), 0}};
  if (arch == "flux-dev" || arch == "flux-schnell") {
    const bool dev = arch == "flux-dev";
    json t = parse(kFlux);
    t["guidance_embeds"] = dev;
    return {{"transformer", t, dev ? 11'901'408'320 : 11'891'178'560},
            {"text_encoder", flux_clip, 123'060'480},
            {"text_encoder_2", parse(kT5XXL), 4'762'310'656},
            {"vae", flux_vae, 83'819'683},
            {"scheduler", dev ? with(kFlowMatch, R"({"use_dynamic_shifting": true})")
                              : with(kFlowMatch, R"({"shift": 1.0})"),
             0}};
  }
  return {{"transformer", parse(kAuraFlow), 6'858'605'568},
          {"text_encoder", parse(kUmt5), 1'223'550'976},
          {"vae", parse(kVae), 83'653'863},
          {"scheduler", with(kFlowMatch, R"({"shift": 1.73})"), 0}};
}

// Pipeline totals from the guide's summary.
int64_t expected_total(const std::string& arch) {
  if (arch == "pixart-sigma") return 5'456'820'615;
  if (arch == "sd3-medium") return 7'692'768'483;
  if (arch == "flux-dev") return 16'870'599'139;
  if (arch == "flux-schnell") return 16'860'369'379;
  return 8'165'810'407;  // AuraFlow v0.3 (pos_embed_max_size 9216)
}

class RealArch : public ::testing::TestWithParam<std::string> {};

TEST_P(RealArch, ConfigsEqualTheRealOnesAndParameterCountsMatch) {
  const PipelineSpec plan = plan_pipeline(GetParam(), false, DType::BF16);
  int64_t total = 0;
  for (const ComponentSpec& c : plan.components) total += c.parameters();
  EXPECT_EQ(total, expected_total(GetParam()));

  for (const Expected& e : expected_for(GetParam())) {
    SCOPED_TRACE(e.component);
    const ComponentSpec* c = plan.find(e.component);
    ASSERT_NE(c, nullptr);
    for (const auto& [key, value] : e.config.items()) {
      ASSERT_TRUE(c->config.contains(key)) << key;
      EXPECT_EQ(c->config.at(key), value) << key;
    }
    // Besides the real keys, only what save_pretrained adds.
    for (const auto& [key, value] : c->config.items()) {
      if (e.config.contains(key)) continue;
      EXPECT_EQ(key, c->library == "diffusers" ? "_diffusers_version" : "torch_dtype");
    }
    if (c->library == "transformers") {
      EXPECT_EQ(c->config.at("torch_dtype"), "bfloat16");
    }
    if (e.params) {
      EXPECT_EQ(c->parameters(), e.params);
      EXPECT_NEAR(static_cast<double>(c->parameters()), static_cast<double>(e.params), 0.005 * e.params);
      EXPECT_EQ(c->buffer_elements(), e.buffer);
      EXPECT_EQ(c->weight_bytes(DType::BF16), 2 * static_cast<uint64_t>(e.params + e.buffer));
    }
  }

  // model_index.json: every component with the class the real pipeline lists.
  const json& mi = plan.model_index;
  for (const ComponentSpec& c : plan.components) EXPECT_EQ(mi.at(c.name), json({c.library, c.class_name}));
  if (GetParam() == "sd3-medium") {
    EXPECT_EQ(mi.at("image_encoder"), json({nullptr, nullptr}));
    EXPECT_EQ(mi.at("tokenizer_3").at(1), "T5TokenizerFast");
  }
}

INSTANTIATE_TEST_SUITE_P(All, RealArch, ::testing::ValuesIn(make_model_archs()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(RealArch, ModelIndexClassesAndTokenizerVocabularies) {
  const PipelineSpec pixart = plan_pipeline("pixart-sigma", false, DType::BF16);
  EXPECT_EQ(pixart.model_index.at("_class_name"), "PixArtSigmaPipeline");
  EXPECT_EQ(pixart.find("tokenizer")->tokenizer.pieces, 32000);  // + 100 extra ids, 28 unused rows of 32128
  const PipelineSpec sd3 = plan_pipeline("sd3-medium", false, DType::BF16);
  EXPECT_EQ(sd3.find("tokenizer")->tokenizer.pieces, 49408);
  EXPECT_EQ(sd3.find("tokenizer")->tokenizer.pad_token, "<|endoftext|>");
  EXPECT_EQ(sd3.find("tokenizer_2")->tokenizer.pad_token, "!");  // bigG pads with "!" (id 0)
  const PipelineSpec flux = plan_pipeline("flux-schnell", false, DType::BF16);
  EXPECT_EQ(flux.model_index.at("text_encoder"), json({"transformers", "CLIPTextModel"}));
  // AuraFlow's real tokenizer is a LlamaTokenizerFast over a 32000-piece sentencepiece model; qdit
  // reads sentencepiece through T5Tokenizer, so the generated folder names that class.
  const PipelineSpec aura = plan_pipeline("auraflow", false, DType::BF16);
  EXPECT_EQ(aura.model_index.at("tokenizer"), json({"transformers", "T5Tokenizer"}));
}

// qdit's own config parsers accept the real configs (what loading the real-size folder does first).
TEST(RealArch, QditModelConfigParsersAcceptTheRealConfigs) {
  auto cfg = [](const std::string& arch, const std::string& comp) {
    return io::JsonConfig::from_json(plan_pipeline(arch, false, DType::BF16).find(comp)->config, arch + "/" + comp);
  };
  const auto pixart = models::PixArtConfig::from_json(cfg("pixart-sigma", "transformer"));
  EXPECT_FALSE(pixart.use_additional_conditions);
  EXPECT_EQ(pixart.interpolation_scale, 2.0f);
  EXPECT_EQ(models::SD3Config::from_json(cfg("sd3-medium", "transformer")).pos_embed_max_size, 192);
  EXPECT_TRUE(models::FluxConfig::from_json(cfg("flux-dev", "transformer")).guidance_embeds);
  EXPECT_FALSE(models::FluxConfig::from_json(cfg("flux-schnell", "transformer")).guidance_embeds);
  EXPECT_EQ(models::AuraFlowConfig::from_json(cfg("auraflow", "transformer")).pos_grid, 96);
  const auto t5 = models::T5Config::from_json(cfg("pixart-sigma", "text_encoder"), false);
  EXPECT_TRUE(t5.gated);
  EXPECT_EQ(t5.vocab_size, 32128);
  EXPECT_EQ(models::T5Config::from_json(cfg("auraflow", "text_encoder"), true).d_model, 2048);
}

}  // namespace
}  // namespace qdit::api
