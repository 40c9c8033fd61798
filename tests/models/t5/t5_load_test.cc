// T5 encoder loading: tied embedding names, bad checkpoints and configs (errors name the tensor or
// key), bad inputs, and configurations outside the goldens (non-gated relu, heads*d_kv != d_model,
// UMT5 per-layer bias) checked against a double-precision reference.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/t5/t5_encoder.h"
#include "support/random.h"
#include "t5_reference.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::T5Encoder;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_t5_load_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The golden T5 checkpoint with an edit hook (rename, reshape, drop by returning false, or add via `extra`).
std::shared_ptr<io::SafetensorsWeights> edited_weights(const TempDir& tmp, const std::string& case_name,
                                                       const std::function<bool(std::string&, Tensor&)>& edit,
                                                       std::vector<std::pair<std::string, Tensor>> extra = {}) {
  auto src = io::SafetensorsFile::open(golden(case_name + "/text_encoder/model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors = std::move(extra);
  for (const io::TensorRecord& r : src->records()) {
    std::string name = r.name;
    Tensor t = src->tensor(r);
    if (edit(name, t)) tensors.emplace_back(name, t);
  }
  const std::string path = tmp.path + "/model.safetensors";
  io::save_safetensors(path, tensors);
  return io::SafetensorsWeights::open_file(path);
}

io::JsonConfig golden_config(const std::string& case_name) {
  return io::JsonConfig::load(golden(case_name + "/text_encoder/config.json"));
}

Tensor golden_masked_output(const T5Encoder& enc, const std::string& case_name) {
  auto in = io::SafetensorsFile::open(golden(case_name + "/inputs.safetensors"));
  return enc.encode(in->tensor("input_ids"), in->tensor("attention_mask")).last_hidden_state;
}

Tensor golden_ref(const std::string& case_name) {
  return io::SafetensorsFile::open(golden(case_name + "/outputs.safetensors"))->tensor("last_hidden_state");
}

TEST(T5EncoderLoad, EmbedTokensAloneOrTiedCopy) {
  io::JsonConfig cfg = golden_config("text_encoder_t5");
  {
    TempDir tmp;  // only encoder.embed_tokens.weight
    auto w = edited_weights(tmp, "text_encoder_t5", [](std::string& name, Tensor&) {
      if (name == "shared.weight") name = "encoder.embed_tokens.weight";
      return true;
    });
    T5Encoder enc(models::ModelSource{"text_encoder", &cfg, w, {}}, false);
    EXPECT_TRUE(enc.bind_report().unused.empty());
    expect_close(golden_masked_output(enc, "text_encoder_t5"), golden_ref("text_encoder_t5"), kTol, "embed_tokens");
  }
  {
    TempDir tmp;  // both names, as transformers' save of an untied copy would hold
    auto src = io::SafetensorsFile::open(golden("text_encoder_t5/text_encoder/model.safetensors"));
    auto w = edited_weights(tmp, "text_encoder_t5", [](std::string&, Tensor&) { return true; },
                            {{"encoder.embed_tokens.weight", src->tensor("shared.weight")}});
    ASSERT_TRUE(w->contains("shared.weight") && w->contains("encoder.embed_tokens.weight"));
    T5Encoder enc(models::ModelSource{"text_encoder", &cfg, w, {}}, false);
    EXPECT_TRUE(enc.bind_report().unused.empty()) << enc.bind_report().str();
    expect_close(golden_masked_output(enc, "text_encoder_t5"), golden_ref("text_encoder_t5"), kTol, "both");
  }
}

TEST(T5EncoderLoad, DecoderTensorsAreReportedUnusedNotAnError) {
  TempDir tmp;
  io::JsonConfig cfg = golden_config("text_encoder_umt5");
  auto w = edited_weights(tmp, "text_encoder_umt5", [](std::string&, Tensor&) { return true; },
                          {{"decoder.final_layer_norm.weight", Tensor::full({48}, 1.0f)}});
  T5Encoder enc(models::ModelSource{"text_encoder", &cfg, w, {}}, true);
  EXPECT_EQ(enc.bind_report().unused, (std::vector<std::string>{"decoder.final_layer_norm.weight"}));
  expect_close(golden_masked_output(enc, "text_encoder_umt5"), golden_ref("text_encoder_umt5"), kTol, "umt5");
}

TEST(T5EncoderLoad, BadWeightsNameMissingAndWrongShapeTensors) {
  TempDir tmp;
  io::JsonConfig cfg = golden_config("text_encoder_t5");
  auto w = edited_weights(tmp, "text_encoder_t5", [](std::string& name, Tensor& t) {
    if (name == "encoder.block.1.layer.1.DenseReluDense.wi_1.weight") return false;
    if (name == "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight") t = t.slice(0, 0, 6).contiguous();
    return true;
  });
  try {
    T5Encoder enc(models::ModelSource{"text_encoder", &cfg, w, {}}, false);
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("encoder.block.1.layer.1.DenseReluDense.wi_1.weight [128, 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight: expected [8, 4], "
                       "found [6, 4]"),
              std::string::npos)
        << msg;
  }
}

TEST(T5EncoderLoad, MissingEmbeddingsAndUMT5PerLayerBias) {
  TempDir tmp;
  io::JsonConfig cfg = golden_config("text_encoder_umt5");
  auto w = edited_weights(tmp, "text_encoder_umt5", [](std::string& name, Tensor&) {
    return name != "shared.weight" && name != "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight";
  });
  try {
    T5Encoder enc(models::ModelSource{"text_encoder", &cfg, w, {}}, true);
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("shared.weight [128, 48]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"), std::string::npos)
        << msg;
  }
}

TEST(T5EncoderLoad, ConfigErrorsNameTheKey) {
  auto weights = io::SafetensorsWeights::open_file(golden("text_encoder_t5/text_encoder/model.safetensors"));
  io::JsonConfig base = golden_config("text_encoder_t5");
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base.raw();
    j[key] = value;
    io::JsonConfig cfg = io::JsonConfig::from_json(j, "text_encoder/config.json");
    try {
      T5Encoder enc(models::ModelSource{"text_encoder", &cfg, weights, {}}, false);
      ADD_FAILURE() << "expected an error for " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("dense_act_fn", "mish", "dense_act_fn");
  expect_error("feed_forward_proj", "gated-gelu-new", "feed_forward_proj");
  expect_error("num_heads", "4", "num_heads");
  expect_error("relative_attention_num_buckets", 2, "relative_attention_num_buckets");
  // A size change changes the expected shapes: the binder names the tensors.
  expect_error("d_ff", 96, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight: expected [96, 64]");
  expect_error("is_gated_act", false, "encoder.block.0.layer.1.DenseReluDense.wi.weight");
}

TEST(T5EncoderLoad, BadInputsThrow) {
  io::ModelFolder folder = io::ModelFolder::open(golden("text_encoder_t5/text_encoder"));
  T5Encoder enc(models::ModelSource{"text_encoder", &folder.config(), folder.weights(), {}}, false);
  auto ids = [](std::vector<float> v, Shape s) { return Tensor::from_vector(v, s).to(DType::I64); };
  EXPECT_THROW(enc.encode(ids({1, 2, 128}, {1, 3}), Tensor()), Error);  // id == vocab_size
  EXPECT_THROW(enc.encode(ids({1, -1}, {1, 2}), Tensor()), Error);
  EXPECT_THROW(enc.encode(ids({1, 2, 3}, {3}), Tensor()), Error);
  EXPECT_THROW(enc.encode(Tensor::from_vector({1, 2}, {1, 2}), Tensor()), Error);  // f32 ids
  EXPECT_THROW(enc.encode(ids({1, 2}, {1, 2}), Tensor::full({1, 3}, 1.0f)), Error);
  EXPECT_THROW(enc.encode(Tensor(), Tensor()), Error);
  try {
    enc.encode(ids({1, 500}, {1, 2}), Tensor());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input_ids[0, 1] = 500"), std::string::npos) << e.what();
  }
}

// Random tiny model with a config the goldens lack, written to a checkpoint, vs t5_reference.
void check_against_reference(const testing::T5RefConfig& c, bool bf16_weights, uint32_t seed) {
  TempDir tmp;
  const int64_t vocab = 40, d = c.d_model, inner = c.heads * c.d_kv;
  std::vector<std::pair<std::string, Tensor>> t;
  uint32_t s = seed;
  auto add = [&](const std::string& name, Shape shape, float lo, float hi) {
    Tensor x = testing::random_tensor(shape, s++, lo, hi);
    t.emplace_back(name, bf16_weights ? x.to(DType::BF16) : x);
  };
  add("shared.weight", {vocab, d}, -2, 2);
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    for (const char* n : {"q", "k", "v"}) add(p + "0.SelfAttention." + n + ".weight", {inner, d}, -0.4f, 0.4f);
    add(p + "0.SelfAttention.o.weight", {d, inner}, -0.3f, 0.3f);
    if (i == 0 || c.umt5) add(p + "0.SelfAttention.relative_attention_bias.weight", {c.buckets, c.heads}, -2, 2);
    add(p + "0.layer_norm.weight", {d}, 0.5f, 1.5f);
    add(p + "1.layer_norm.weight", {d}, 0.5f, 1.5f);
    const std::string dr = p + "1.DenseReluDense.";
    if (c.gated) {
      add(dr + "wi_0.weight", {c.d_ff, d}, -0.4f, 0.4f);
      add(dr + "wi_1.weight", {c.d_ff, d}, -0.4f, 0.4f);
    } else {
      add(dr + "wi.weight", {c.d_ff, d}, -0.4f, 0.4f);
    }
    add(dr + "wo.weight", {d, c.d_ff}, -0.3f, 0.3f);
  }
  add("encoder.final_layer_norm.weight", {d}, 0.5f, 1.5f);
  io::save_safetensors(tmp.path + "/model.safetensors", t);
  auto weights = io::SafetensorsWeights::open_file(tmp.path + "/model.safetensors");

  const char* acts[] = {"relu", "gelu_new", "silu"};
  nlohmann::json j = {{"d_model", d},          {"d_kv", c.d_kv},
                      {"d_ff", c.d_ff},        {"num_layers", c.layers},
                      {"num_heads", c.heads},  {"relative_attention_num_buckets", c.buckets},
                      {"relative_attention_max_distance", c.max_distance},
                      {"vocab_size", vocab},   {"feed_forward_proj", std::string(c.gated ? "gated-" : "") + acts[c.act]}};
  if (c.act == 1) j["feed_forward_proj"] = c.gated ? "gated-gelu" : "gelu_new";
  io::JsonConfig cfg = io::JsonConfig::from_json(j, "config.json");
  T5Encoder enc(models::ModelSource{"text_encoder", &cfg, weights, {}}, c.umt5);
  EXPECT_EQ(enc.config().gated, c.gated);

  const int64_t b = 2, l = 13;
  std::vector<int64_t> ids(b * l);
  std::vector<float> idf(b * l), mask(b * l, 1.0f);
  for (int64_t i = 0; i < b * l; ++i) idf[i] = static_cast<float>(ids[i] = (i * 7 + 3) % vocab);
  for (int64_t i = 9; i < l; ++i) mask[l + i] = 0.0f;  // second row padded after 9 tokens
  Tensor id_t = Tensor::from_vector(idf, {b, l}).to(DType::I64);
  for (bool masked : {true, false}) {
    SCOPED_TRACE(masked ? "masked" : "no mask");
    std::vector<double> ref = testing::t5_reference(*weights, c, ids, masked ? mask : std::vector<float>(), b, l);
    Tensor got = enc.encode(id_t, masked ? Tensor::from_vector(mask, {b, l}) : Tensor()).last_hidden_state;
    expect_close(got, Tensor::from_vector(std::vector<float>(ref.begin(), ref.end()), {b, l, d}), kTol, "reference");
  }
}

TEST(T5EncoderReference, NonGatedReluWideHeadsT5) {
  // heads * d_kv (24) != d_model (16); 3 layers sharing the layer-0 bias; 16 buckets, distance 12.
  check_against_reference({16, 8, 20, 3, 3, 16, 12, /*umt5=*/false, /*gated=*/false, /*act=*/0}, false, 11);
}

TEST(T5EncoderReference, GatedSiluNarrowHeadsUMT5) {
  // heads * d_kv (12) != d_model (20); a bias per layer; bf16 weights on f32 activations.
  check_against_reference({20, 4, 24, 3, 2, 10, 9, /*umt5=*/true, /*gated=*/true, /*act=*/2}, true, 23);
}

TEST(T5EncoderReference, GatedGeluT5) {
  check_against_reference({16, 4, 32, 4, 2, 32, 128, /*umt5=*/false, /*gated=*/true, /*act=*/1}, false, 37);
}

}  // namespace
}  // namespace qdit
