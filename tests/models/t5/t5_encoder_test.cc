// T5EncoderModel / UMT5EncoderModel against the transformers goldens (masked, unmasked, hidden
// states) and the encoders inside the pipeline cases (PixArt, SD3, Flux, AuraFlow), plus bucket
// edges, a double-precision reference for uncovered configs, tied embeddings and load errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/registry.h"
#include "qdit/models/t5/t5_encoder.h"
#include "qdit/models/t5/t5_position_bias.h"
#include "support/random.h"
#include "t5_reference.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::TextEncoder;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<TextEncoder> load_encoder(const io::ModelFolder& folder, const std::string& component,
                                          const nn::ModuleContext& ctx = {}) {
  std::unique_ptr<models::Model> m = models::load_model(folder, component, ctx);
  auto* e = dynamic_cast<TextEncoder*>(m.get());
  if (!e) throw Error("not a TextEncoder: " + folder.path());
  m.release();
  return std::unique_ptr<TextEncoder>(e);
}

std::unique_ptr<TextEncoder> load_pipeline_encoder(const std::string& pipeline_case, const std::string& component) {
  io::PipelineFolder pipe = io::PipelineFolder::open(golden(pipeline_case + "/pipeline"));
  return load_encoder(pipe.open_component(component), component);
}

// Embeddings * mask[..., None], as AuraFlow's encode_prompt does.
Tensor times_mask(const Tensor& x, const Tensor& mask) {
  std::vector<float> v = x.to_vector(), m = mask.to_vector();
  const int64_t d = x.size(-1);
  for (size_t i = 0; i < v.size(); ++i) v[i] *= m[i / static_cast<size_t>(d)];
  return Tensor::from_vector(v, x.shape());
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_t5_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void check_encoder_case(const std::string& name, const std::string& cls, int64_t hidden) {
  SCOPED_TRACE(name);
  io::ModelFolder folder = io::ModelFolder::open(golden(name + "/text_encoder"));
  auto enc = load_encoder(folder, "text_encoder");
  EXPECT_EQ(enc->class_name(), cls);
  EXPECT_EQ(enc->hidden_size(), hidden);
  EXPECT_GT(enc->weight_bytes(), 0u);
  const int64_t layers = folder.config().get<int64_t>("num_layers");

  auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  Tensor ids = in->tensor("input_ids"), mask = in->tensor("attention_mask");
  models::TextEncoderOutput o = enc->encode(ids, mask, true);
  expect_close(o.last_hidden_state, out->tensor("last_hidden_state"), kTol, "last_hidden_state");
  EXPECT_FALSE(o.pooled.defined());
  EXPECT_FALSE(o.text_embeds.defined());
  ASSERT_EQ(static_cast<int64_t>(o.hidden_states.size()), layers + 1);
  for (int64_t i = 0; i <= layers; ++i) {
    const std::string key = "hidden_states." + std::to_string(i);
    ASSERT_TRUE(out->contains(key)) << key;
    expect_close(o.hidden_states[static_cast<size_t>(i)], out->tensor(key), kTol, key);
  }
  EXPECT_FALSE(out->contains("hidden_states." + std::to_string(layers + 1)));

  models::TextEncoderOutput nomask = enc->encode(ids, Tensor(), false);
  EXPECT_TRUE(nomask.hidden_states.empty());
  expect_close(nomask.last_hidden_state, out->tensor("last_hidden_state_nomask"), kTol, "last_hidden_state_nomask");
  // An all-ones mask is the same as no mask.
  expect_close(enc->encode(ids, Tensor::full(ids.shape(), 1.0f), false).last_hidden_state,
               out->tensor("last_hidden_state_nomask"), kTol, "all-ones f32 mask");
}

TEST(T5Encoder, GoldenT5GatedGelu) { check_encoder_case("text_encoder_t5", "T5EncoderModel", 64); }

TEST(T5Encoder, GoldenUMT5GatedSilu) { check_encoder_case("text_encoder_umt5", "UMT5EncoderModel", 48); }

TEST(T5Encoder, Bf16ComputeStaysClose) {
  io::ModelFolder folder = io::ModelFolder::open(golden("text_encoder_t5/text_encoder"));
  nn::ModuleContext ctx;
  ctx.compute = DType::BF16;
  auto enc = load_encoder(folder, "text_encoder", ctx);
  auto in = io::SafetensorsFile::open(golden("text_encoder_t5/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("text_encoder_t5/outputs.safetensors"));
  Tensor got = enc->encode(in->tensor("input_ids"), in->tensor("attention_mask")).last_hidden_state;
  expect_close(got, out->tensor("last_hidden_state"), 3e-2f, "bf16 compute");
}

// PixArt-Sigma: text_encoder(ids, attention_mask=mask)[0], for the prompt and the negative prompt.
TEST(T5Encoder, PixArtSigmaPipelines) {
  for (const char* c : {"pipeline_pixart_sigma_text", "pipeline_pixart_sigma"}) {
    SCOPED_TRACE(c);
    const std::string name = c;
    auto enc = load_pipeline_encoder(name, "text_encoder");
    auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
    const bool text = name.find("_text") != std::string::npos;
    for (const char* which : {"prompt", "negative"}) {
      const std::string w = which, neg = w == "negative" ? "negative_" : "";
      Tensor ids = text ? out->tensor("tok.t5." + w + ".input_ids") : in->tensor("t5_" + neg + "input_ids");
      Tensor mask = text ? out->tensor("tok.t5." + w + ".attention_mask") : in->tensor(neg + "prompt_attention_mask");
      Tensor ref = text ? out->tensor("encode_prompt." + neg + "prompt_embeds") : in->tensor(neg + "prompt_embeds");
      expect_close(enc->encode(ids, mask).last_hidden_state, ref, kTol, w);
    }
  }
}

// The CFG batch in one call: each row with its own padding gives the single-prompt result.
TEST(T5Encoder, BatchedPromptsWithDifferentPadding) {
  const std::string name = "pipeline_pixart_sigma_text";
  auto enc = load_pipeline_encoder(name, "text_encoder");
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  Tensor ids = kernels::concat({out->tensor("tok.t5.negative.input_ids"), out->tensor("tok.t5.prompt.input_ids")}, 0);
  Tensor mask =
      kernels::concat({out->tensor("tok.t5.negative.attention_mask"), out->tensor("tok.t5.prompt.attention_mask")}, 0);
  Tensor got = enc->encode(ids, mask).last_hidden_state;
  ASSERT_EQ(got.shape(), (Shape{2, 32, 64}));
  expect_close(got.slice(0, 0, 1).contiguous(), out->tensor("encode_prompt.negative_prompt_embeds"), kTol, "neg");
  expect_close(got.slice(0, 1, 2).contiguous(), out->tensor("encode_prompt.prompt_embeds"), kTol, "prompt");
}

// AuraFlow: umt5(ids, attention_mask=mask)[0] * mask[..., None] (the multiply is the pipeline's).
TEST(T5Encoder, AuraFlowPipelinesUMT5) {
  for (const char* c : {"pipeline_auraflow_text", "pipeline_auraflow"}) {
    SCOPED_TRACE(c);
    const std::string name = c;
    auto enc = load_pipeline_encoder(name, "text_encoder");
    EXPECT_EQ(enc->class_name(), "UMT5EncoderModel");
    auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
    const bool text = name.find("_text") != std::string::npos;
    for (const char* which : {"prompt", "negative"}) {
      const std::string w = which, neg = w == "negative" ? "negative_" : "";
      Tensor ids = text ? out->tensor("tok.umt5." + w + ".input_ids") : in->tensor("umt5_" + neg + "input_ids");
      Tensor mask = text ? out->tensor("tok.umt5." + w + ".attention_mask") : in->tensor(neg + "prompt_attention_mask");
      Tensor ref = text ? out->tensor("encode_prompt." + neg + "prompt_embeds") : in->tensor(neg + "prompt_embeds");
      expect_close(times_mask(enc->encode(ids, mask).last_hidden_state, mask), ref, kTol, w);
    }
  }
}

// Flux: T5 (text_encoder_2) without a mask gives prompt_embeds directly.
TEST(T5Encoder, FluxPipelinesNoMask) {
  for (const char* c : {"pipeline_flux_dev_text", "pipeline_flux_schnell_text", "pipeline_flux_dev"}) {
    SCOPED_TRACE(c);
    const std::string name = c;
    auto enc = load_pipeline_encoder(name, "text_encoder_2");
    auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
    const bool text = name.find("_text") != std::string::npos;
    Tensor ids = text ? out->tensor("tok.t5.prompt.input_ids") : in->tensor("t5_input_ids");
    Tensor ref = text ? out->tensor("encode_prompt.prompt_embeds") : in->tensor("prompt_embeds");
    expect_close(enc->encode(ids, Tensor()).last_hidden_state, ref, kTol, "prompt_embeds");
  }
}

// SD3: T5 (text_encoder_3) without a mask fills the last L rows of prompt_embeds (after 77 CLIP rows).
TEST(T5Encoder, SD3PipelinesNoMask) {
  for (const char* c : {"pipeline_sd3_text", "pipeline_sd3"}) {
    SCOPED_TRACE(c);
    const std::string name = c;
    auto enc = load_pipeline_encoder(name, "text_encoder_3");
    auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
    const bool text = name.find("_text") != std::string::npos;
    for (const char* which : {"prompt", "negative"}) {
      const std::string w = which, neg = w == "negative" ? "negative_" : "";
      Tensor ids = text ? out->tensor("tok.t5." + w + ".input_ids") : in->tensor("t5_" + neg + "input_ids");
      Tensor all = text ? out->tensor("encode_prompt." + neg + "prompt_embeds") : in->tensor(neg + "prompt_embeds");
      const int64_t l = ids.size(1);
      ASSERT_EQ(all.size(1), 77 + l);
      expect_close(enc->encode(ids, Tensor()).last_hidden_state, all.slice(1, 77, 77 + l).contiguous(), kTol, w);
    }
  }
}

// Bucket of |distance| for the real T5/UMT5 setting (32 buckets, max distance 128): exact below 8,
// then log-spaced; 16, 32 and 64 sit exactly on bucket edges in float32.
TEST(T5PositionBias, BucketsOfRealConfig) {
  auto expected_abs = [](int64_t n) -> int64_t {
    if (n < 8) return n;
    const int64_t edges[] = {8, 12, 16, 23, 32, 46, 64, 91};
    int64_t b = 7;
    for (int64_t e : edges)
      if (n >= e) ++b;
    return b;
  };
  for (int64_t n = 0; n < 600; ++n) {
    EXPECT_EQ(models::t5::relative_position_bucket(-n, 32, 128), expected_abs(n)) << "rel " << -n;
    if (n > 0) {
      EXPECT_EQ(models::t5::relative_position_bucket(n, 32, 128), 16 + expected_abs(n)) << "rel " << n;
    }
  }
  // The tiny golden setting (8 buckets, max distance 20): exact for 0, 1; bucket 2 up to 6; 3 beyond.
  const int64_t tiny[] = {0, 1, 2, 2, 2, 2, 2, 3, 3, 3};
  for (int64_t n = 0; n < 10; ++n) {
    EXPECT_EQ(models::t5::relative_position_bucket(-n, 8, 20), tiny[n]);
    if (n > 0) {
      EXPECT_EQ(models::t5::relative_position_bucket(n, 8, 20), 4 + tiny[n]);
    }
  }
  // The [Sq, Skv] table is bucket(j - i).
  std::vector<int32_t> t = models::t5::relative_position_buckets(3, 5, 32, 128);
  ASSERT_EQ(t.size(), 15u);
  EXPECT_EQ(t[0 * 5 + 4], 16 + 4);
  EXPECT_EQ(t[2 * 5 + 0], 2);
  EXPECT_EQ(t[1 * 5 + 1], 0);
}

TEST(T5PositionBias, BiasPlusMask) {
  // table [4 buckets, 2 heads]; buckets for a 2x2 grid; mask drops key 1 of batch item 1.
  Tensor table = Tensor::from_vector({0.5f, -1.f, 1.5f, 2.f, 3.f, 4.f, -2.f, 7.f}, {4, 2});
  std::vector<int32_t> buckets = models::t5::relative_position_buckets(2, 2, 4, 2);  // 4 buckets: {0 | 2+0}
  EXPECT_EQ(buckets, (std::vector<int32_t>{0, 3, 1, 0}));
  std::vector<float> km = models::t5::extended_key_mask(Tensor::from_vector({1, 1, 1, 0}, {2, 2}), 2, 2);
  EXPECT_EQ(km[0], 0.0f);
  EXPECT_EQ(km[3], std::numeric_limits<float>::lowest());
  Tensor out = Tensor::empty({2, 2, 2, 2}, DType::F32);
  models::t5::fill_attention_bias(table, buckets, km, out);
  // b=0, h=1, i=0: buckets {0, 3} -> table[0][1], table[3][1]
  EXPECT_EQ(out.item_f32(((0 * 2 + 1) * 2 + 0) * 2 + 0), -1.f);
  EXPECT_EQ(out.item_f32(((0 * 2 + 1) * 2 + 0) * 2 + 1), 7.f);
  // b=1, h=0, i=1: buckets {1, 0}; key 1 masked
  EXPECT_EQ(out.item_f32(((1 * 2 + 0) * 2 + 1) * 2 + 0), 1.5f);
  EXPECT_EQ(out.item_f32(((1 * 2 + 0) * 2 + 1) * 2 + 1), 0.5f + std::numeric_limits<float>::lowest());
  EXPECT_THROW(models::t5::extended_key_mask(Tensor::from_vector({1, 1, 1}, {1, 3}), 2, 2), Error);
}

}  // namespace
}  // namespace qdit
