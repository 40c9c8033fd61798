// CLIP text encoders against the transformers goldens (CLIP-L plain / with projection, CLIP-G), the
// CLIP encoders inside the SD3 and Flux text pipelines, eos-id pooling, and load/input errors.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/clip/clip_text_encoder.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::ClipTextEncoder;
using models::TextEncoder;
using models::TextEncoderOutput;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<TextEncoder> load_encoder(const io::ModelFolder& folder, const std::string& component) {
  return models::create_model_as<TextEncoder>(folder.class_name(),
                                              models::ModelSource{component, &folder.config(), folder.weights(), {}});
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_clip_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Every output a CLIP golden case records: the unmasked call with all hidden states, and the
// *_masked outputs of the call with the attention mask.
void check_clip_case(const std::string& name, const std::string& cls, int64_t hidden, int64_t layers) {
  SCOPED_TRACE(name);
  io::ModelFolder folder = io::ModelFolder::open(golden(name + "/text_encoder"));
  std::unique_ptr<TextEncoder> enc = load_encoder(folder, "text_encoder");
  EXPECT_EQ(enc->class_name(), cls);
  EXPECT_EQ(enc->hidden_size(), hidden);
  EXPECT_GT(enc->weight_bytes(), 0u);
  const bool proj = cls == "CLIPTextModelWithProjection";

  auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  Tensor ids = in->tensor("input_ids"), mask = in->tensor("attention_mask");

  TextEncoderOutput o = enc->encode(ids, Tensor(), true);
  expect_close(o.last_hidden_state, out->tensor("last_hidden_state"), kTol, "last_hidden_state");
  ASSERT_EQ(o.hidden_states.size(), static_cast<size_t>(layers + 1));
  for (int64_t i = 0; i <= layers; ++i) {
    const std::string key = "hidden_states." + std::to_string(i);
    ASSERT_TRUE(out->contains(key)) << key;
    expect_close(o.hidden_states[i], out->tensor(key), kTol, key);
  }
  EXPECT_FALSE(out->contains("hidden_states." + std::to_string(layers + 1)));
  expect_close(o.hidden_states[layers - 1], out->tensor("penultimate_hidden_state"), kTol, "penultimate");
  ASSERT_TRUE(o.pooled.defined());
  if (proj) {
    ASSERT_TRUE(o.text_embeds.defined());
    expect_close(o.text_embeds, out->tensor("text_embeds"), kTol, "text_embeds");
  } else {
    EXPECT_FALSE(o.text_embeds.defined());
    expect_close(o.pooled, out->tensor("pooler_output"), kTol, "pooler_output");
  }

  TextEncoderOutput m = enc->encode(ids, mask, false);
  EXPECT_TRUE(m.hidden_states.empty());
  expect_close(m.last_hidden_state, out->tensor("last_hidden_state_masked"), kTol, "last_hidden_state_masked");
  if (proj)
    expect_close(m.text_embeds, out->tensor("text_embeds_masked"), kTol, "text_embeds_masked");
  else
    expect_close(m.pooled, out->tensor("pooler_output_masked"), kTol, "pooler_output_masked");
  // The padding mask must actually change the padded positions (else the masked check proves nothing).
  EXPECT_GT(testing::max_abs_diff(o.last_hidden_state, m.last_hidden_state), 1e-3f);
}

TEST(ClipTextEncoder, GoldenClipLPlain) { check_clip_case("text_encoder_clip_l_plain", "CLIPTextModel", 24, 2); }

TEST(ClipTextEncoder, GoldenClipLWithProjection) {
  check_clip_case("text_encoder_clip_l_withproj", "CLIPTextModelWithProjection", 24, 2);
}

TEST(ClipTextEncoder, GoldenClipGWithProjectionGeluErf) {
  check_clip_case("text_encoder_clip_g_withproj", "CLIPTextModelWithProjection", 32, 3);
}

// [B, L, D] slice [:, :L, d0:d1] as a contiguous tensor.
Tensor feature_slice(const Tensor& t, int64_t len, int64_t d0, int64_t d1) {
  return t.slice(1, 0, len).slice(2, d0, d1).contiguous();
}

// SD3 encode_prompt: prompt_embeds[:, :77] = cat(clipL.hidden_states[-2], clipG.hidden_states[-2]) padded
// with zeros to the T5 width; pooled = cat(clipL.text_embeds, clipG.text_embeds). No masks.
TEST(ClipTextEncoder, Sd3PipelineClipEmbeddings) {
  const std::string dir = golden("pipeline_sd3_text");
  io::PipelineFolder pipe = io::PipelineFolder::open(dir + "/pipeline");
  io::ModelFolder fl = pipe.open_component("text_encoder"), fg = pipe.open_component("text_encoder_2");
  auto clip_l = load_encoder(fl, "text_encoder"), clip_g = load_encoder(fg, "text_encoder_2");
  auto out = io::SafetensorsFile::open(dir + "/outputs.safetensors");
  const int64_t dl = clip_l->hidden_size(), dg = clip_g->hidden_size();
  for (const std::string which : {"prompt", "negative"}) {
    SCOPED_TRACE(which);
    TextEncoderOutput l = clip_l->encode(out->tensor("tok.clip_l." + which + ".input_ids"), Tensor(), true);
    TextEncoderOutput g = clip_g->encode(out->tensor("tok.clip_g." + which + ".input_ids"), Tensor(), true);
    const std::string pre = which == "prompt" ? "encode_prompt." : "encode_prompt.negative_";
    Tensor embeds = out->tensor(pre + "prompt_embeds"), pooled = out->tensor(pre + "pooled_prompt_embeds");
    const int64_t len = l.last_hidden_state.size(1);
    ASSERT_EQ(len, 77);
    ASSERT_GE(embeds.size(2), dl + dg);
    expect_close(l.hidden_states[l.hidden_states.size() - 2], feature_slice(embeds, len, 0, dl), kTol, "clip_l[-2]");
    expect_close(g.hidden_states[g.hidden_states.size() - 2], feature_slice(embeds, len, dl, dl + dg), kTol,
                 "clip_g[-2]");
    expect_close(l.text_embeds, pooled.slice(1, 0, dl).contiguous(), kTol, "clip_l text_embeds");
    expect_close(g.text_embeds, pooled.slice(1, dl, dl + dg).contiguous(), kTol, "clip_g text_embeds");
  }
}

// Flux encode_prompt: pooled_prompt_embeds = CLIP-L pooler_output.
TEST(ClipTextEncoder, FluxPipelinePooledOutput) {
  const std::string dir = golden("pipeline_flux_dev_text");
  io::PipelineFolder pipe = io::PipelineFolder::open(dir + "/pipeline");
  io::ModelFolder f = pipe.open_component("text_encoder");
  auto clip = load_encoder(f, "text_encoder");
  EXPECT_EQ(clip->class_name(), "CLIPTextModel");
  auto out = io::SafetensorsFile::open(dir + "/outputs.safetensors");
  TextEncoderOutput o = clip->encode(out->tensor("tok.clip_l.prompt.input_ids"), Tensor(), false);
  expect_close(o.pooled, out->tensor("encode_prompt.pooled_prompt_embeds"), kTol, "pooled_prompt_embeds");
}

std::unique_ptr<ClipTextEncoder> encoder_with(const std::string& case_name, const nlohmann::json& overrides,
                                              std::shared_ptr<const io::WeightSource> weights = nullptr,
                                              bool with_projection = false) {
  const std::string dir = golden(case_name + "/text_encoder");
  io::JsonConfig base = io::JsonConfig::load(dir + "/config.json");
  nlohmann::json j = base.raw();
  for (auto it = overrides.begin(); it != overrides.end(); ++it) j[it.key()] = it.value();
  static std::vector<std::unique_ptr<io::JsonConfig>> keep;  // ModelSource holds a pointer
  keep.push_back(std::make_unique<io::JsonConfig>(io::JsonConfig::from_json(j, "text_encoder/config.json")));
  if (!weights) weights = io::SafetensorsWeights::open_file(dir + "/model.safetensors");
  return std::make_unique<ClipTextEncoder>(models::ModelSource{"text_encoder", keep.back().get(), weights, {}},
                                           with_projection);
}

// Non-legacy configs pool at the first index holding eos_token_id (variant b and newer checkpoints).
TEST(ClipTextEncoder, EosIdPooling) {
  auto in = io::SafetensorsFile::open(golden("text_encoder_clip_l_plain/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("text_encoder_clip_l_plain/outputs.safetensors"));
  Tensor ids = in->tensor("input_ids");
  // EOS (511) is also the largest id here, so eos-id pooling reproduces the argmax golden.
  auto eos = encoder_with("text_encoder_clip_l_plain", {{"eos_token_id", 511}});
  ASSERT_EQ(eos->pooling_positions(ids), (std::vector<int64_t>{5, 21}));
  TextEncoderOutput o = eos->encode(ids, Tensor());
  expect_close(o.pooled, out->tensor("pooler_output"), kTol, "eos 511");

  // eos = BOS (510, at position 0 of every row): the first match, not the argmax, is pooled.
  auto bos = encoder_with("text_encoder_clip_l_plain", {{"eos_token_id", 510}});
  ASSERT_EQ(bos->pooling_positions(ids), (std::vector<int64_t>{0, 0}));
  o = bos->encode(ids, Tensor());
  Tensor last = out->tensor("last_hidden_state");
  Tensor rows0 = last.select(1, 0).contiguous();
  expect_close(o.pooled, rows0, kTol, "eos 510 -> row 0");

  // An eos id that never occurs pools row 0, as torch's argmax over all-zero matches does.
  std::vector<float> idv = ids.to_vector();
  ASSERT_EQ(std::count(idv.begin(), idv.end(), 3.0f), 0);
  auto none = encoder_with("text_encoder_clip_l_plain", {{"eos_token_id", 3}});
  EXPECT_EQ(none->pooling_positions(ids), (std::vector<int64_t>{0, 0}));

  // A hand-made batch: legacy pools the first maximum, eos-id pooling the first eos.
  Tensor hand = Tensor::empty({2, 6}, DType::I64);
  const int64_t h[12] = {510, 7, 300, 511, 511, 400, 510, 400, 9, 400, 300, 511};
  std::copy(h, h + 12, hand.data<int64_t>());
  auto legacy = encoder_with("text_encoder_clip_l_plain", {});
  EXPECT_EQ(legacy->pooling_positions(hand), (std::vector<int64_t>{3, 5}));
  auto e400 = encoder_with("text_encoder_clip_l_plain", {{"eos_token_id", 400}});
  EXPECT_EQ(e400->pooling_positions(hand), (std::vector<int64_t>{5, 1}));
}

// Copies a golden checkpoint through an editing hook (rename, reshape, drop, add tensors).
std::shared_ptr<io::SafetensorsWeights> edited_weights(const TempDir& tmp, const std::string& case_name,
                                                       const std::function<bool(std::string&, Tensor&)>& edit,
                                                       std::vector<std::pair<std::string, Tensor>> extra = {}) {
  auto src = io::SafetensorsFile::open(golden(case_name + "/text_encoder/model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const io::TensorRecord& r : src->records()) {
    std::string name = r.name;
    Tensor t = src->tensor(r);
    if (edit(name, t)) tensors.emplace_back(name, t);
  }
  for (auto& e : extra) tensors.push_back(e);
  const std::string path = tmp.path + "/model.safetensors";
  io::save_safetensors(path, tensors);
  return io::SafetensorsWeights::open_file(path);
}

TEST(ClipTextEncoder, PositionIdsBufferAndHalfWeights) {
  TempDir tmp;
  Tensor pos_ids = Tensor::empty({1, 77}, DType::I64);
  for (int64_t i = 0; i < 77; ++i) pos_ids.data<int64_t>()[i] = i;
  // Weights stored as f16 (as in the SD3 checkpoints) plus the position_ids buffer.
  auto weights = edited_weights(
      tmp, "text_encoder_clip_l_withproj",
      [](std::string&, Tensor& t) {
        t = t.to(DType::F16);
        return true;
      },
      {{"text_model.embeddings.position_ids", pos_ids}});
  auto enc = encoder_with("text_encoder_clip_l_withproj", {}, weights, true);
  auto in = io::SafetensorsFile::open(golden("text_encoder_clip_l_withproj/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("text_encoder_clip_l_withproj/outputs.safetensors"));
  TextEncoderOutput o = enc->encode(in->tensor("input_ids"), Tensor(), true);
  // f16 weights: close to the f32 golden, not equal.
  expect_close(o.last_hidden_state, out->tensor("last_hidden_state"), 2e-2f, "f16 last_hidden_state");
  expect_close(o.text_embeds, out->tensor("text_embeds"), 2e-2f, "f16 text_embeds");
}

TEST(ClipTextEncoder, BadWeightsNameTheTensors) {
  TempDir tmp;
  auto weights = edited_weights(tmp, "text_encoder_clip_l_withproj", [](std::string& name, Tensor& t) {
    if (name == "text_model.encoder.layers.1.mlp.fc2.bias") return false;                              // drop
    if (name == "text_model.encoder.layers.0.self_attn.k_proj.weight") t = t.slice(0, 0, 8).contiguous();  // [8, 24]
    return true;
  });
  try {
    encoder_with("text_encoder_clip_l_withproj", {}, weights, true);
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("text_model.encoder.layers.1.mlp.fc2.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("text_model.encoder.layers.0.self_attn.k_proj.weight: expected [24, 24], found [8, 24]"),
              std::string::npos)
        << msg;
  }
  // CLIPTextModelWithProjection on a plain CLIPTextModel checkpoint: the projection is missing.
  auto plain = io::SafetensorsWeights::open_file(golden("text_encoder_clip_l_plain/text_encoder/model.safetensors"));
  try {
    encoder_with("text_encoder_clip_l_plain", {}, plain, true);
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text_projection.weight"), std::string::npos) << e.what();
  }
  // The plain model on a WithProjection checkpoint leaves text_projection unused, which is fine.
  auto proj = io::SafetensorsWeights::open_file(golden("text_encoder_clip_l_withproj/text_encoder/model.safetensors"));
  EXPECT_NO_THROW(encoder_with("text_encoder_clip_l_withproj", {}, proj, false));
}

TEST(ClipTextEncoder, ConfigErrorsNameTheKey) {
  auto expect_error = [](const nlohmann::json& overrides, const std::string& needle) {
    try {
      encoder_with("text_encoder_clip_l_plain", overrides);
      ADD_FAILURE() << "expected an error for " << overrides.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{"hidden_act", "mish"}}, "hidden_act");
  expect_error({{"num_attention_heads", 5}}, "num_attention_heads");
  expect_error({{"hidden_size", "24"}}, "hidden_size");
  expect_error({{"intermediate_size", 32}}, "text_model.encoder.layers.0.mlp.fc1.weight");
  expect_error({{"max_position_embeddings", 64}}, "text_model.embeddings.position_embedding.weight");
}

TEST(ClipTextEncoder, InputErrors) {
  auto enc = encoder_with("text_encoder_clip_l_plain", {});
  Tensor ok = Tensor::zeros({1, 5}, DType::I64);
  EXPECT_NO_THROW(enc->encode(ok, Tensor()));
  auto expect_error = [&](const Tensor& ids, const Tensor& mask, const std::string& needle) {
    try {
      enc->encode(ids, mask);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(Tensor::zeros({1, 78}, DType::I64), Tensor(), "max_position_embeddings");
  Tensor big = Tensor::zeros({1, 5}, DType::I64);
  big.data<int64_t>()[3] = 512;
  expect_error(big, Tensor(), "token id 512");
  expect_error(Tensor::zeros({1, 5}, DType::F32), Tensor(), "input_ids");
  expect_error(Tensor::zeros({5}, DType::I64), Tensor(), "input_ids");
  expect_error(Tensor(), Tensor(), "input_ids");
  expect_error(ok, Tensor::zeros({1, 4}, DType::I64), "attention_mask");
}

// Batch rows are independent, and a shorter sequence equals the prefix of a longer one (causal).
TEST(ClipTextEncoder, BatchAndPrefixConsistency) {
  io::ModelFolder folder = io::ModelFolder::open(golden("text_encoder_clip_g_withproj/text_encoder"));
  auto enc = load_encoder(folder, "text_encoder");
  auto in = io::SafetensorsFile::open(golden("text_encoder_clip_g_withproj/inputs.safetensors"));
  Tensor ids = in->tensor("input_ids");
  TextEncoderOutput full = enc->encode(ids, Tensor());
  TextEncoderOutput row1 = enc->encode(ids.slice(0, 1, 2).contiguous(), Tensor());
  expect_close(row1.last_hidden_state, full.last_hidden_state.slice(0, 1, 2).contiguous(), 1e-5f, "row 1");
  TextEncoderOutput prefix = enc->encode(ids.slice(1, 0, 20).contiguous(), Tensor());
  expect_close(prefix.last_hidden_state, full.last_hidden_state.slice(1, 0, 20).contiguous(), 1e-5f, "prefix");
}

// Naive CLIP forward in double from the checkpoint tensors. The mask is applied as PyTorch does in
// float32 (score + causal + padding, finfo.min overflowing to -inf where both apply), so rows whose
// visible keys are all padded (left padding) get its uniform distribution over them.
struct NaiveClip {
  std::shared_ptr<io::SafetensorsFile> f;
  int64_t d, heads, inter, layers;
  bool quick;
  std::vector<float> w(const std::string& n) const { return f->tensor(n).to_vector(); }

  static void layer_norm(std::vector<double>& x, int64_t rows, int64_t d, const std::vector<float>& g,
                         const std::vector<float>& b, std::vector<double>& out) {
    out.resize(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < d; ++i) mean += x[r * d + i];
      mean /= d;
      for (int64_t i = 0; i < d; ++i) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
      var /= d;
      for (int64_t i = 0; i < d; ++i) out[r * d + i] = (x[r * d + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
    }
  }
  static std::vector<double> linear(const std::vector<double>& x, int64_t rows, int64_t in, int64_t out,
                                    const std::vector<float>& w, const std::vector<float>& b) {
    std::vector<double> y(rows * out);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double acc = b.empty() ? 0.0 : b[o];
        for (int64_t i = 0; i < in; ++i) acc += x[r * in + i] * w[o * in + i];
        y[r * out + o] = acc;
      }
    return y;
  }

  // Returns last_hidden_state [B, L, D] as a flat vector.
  std::vector<double> forward(const std::vector<int64_t>& ids, int64_t B, int64_t L,
                              const std::vector<int64_t>* keep) const {
    const float kMin = std::numeric_limits<float>::lowest();
    const std::vector<float> tok = w("text_model.embeddings.token_embedding.weight"),
                             pos = w("text_model.embeddings.position_embedding.weight");
    std::vector<double> x(B * L * d), h;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < d; ++i)
          x[(b * L + l) * d + i] = static_cast<double>(tok[ids[b * L + l] * d + i] + pos[l * d + i]);
    const int64_t hd = d / heads;
    for (int64_t li = 0; li < layers; ++li) {
      const std::string p = "text_model.encoder.layers." + std::to_string(li) + ".";
      layer_norm(x, B * L, d, w(p + "layer_norm1.weight"), w(p + "layer_norm1.bias"), h);
      auto proj = [&](const char* n) {
        return linear(h, B * L, d, d, w(p + "self_attn." + n + ".weight"), w(p + "self_attn." + n + ".bias"));
      };
      std::vector<double> q = proj("q_proj"), k = proj("k_proj"), v = proj("v_proj"), o(B * L * d, 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t hh = 0; hh < heads; ++hh)
          for (int64_t i = 0; i < L; ++i) {
            std::vector<float> s(L);
            float mx = -INFINITY;
            for (int64_t j = 0; j < L; ++j) {
              double dot = 0;
              for (int64_t e = 0; e < hd; ++e) dot += q[(b * L + i) * d + hh * hd + e] * k[(b * L + j) * d + hh * hd + e];
              const float causal = j > i ? kMin : 0.0f;
              const float pad = keep && (*keep)[b * L + j] == 0 ? kMin : 0.0f;
              s[j] = static_cast<float>(dot / std::sqrt(static_cast<double>(hd))) + causal + pad;
              mx = std::max(mx, s[j]);
            }
            double z = 0;
            std::vector<double> pr(L);
            for (int64_t j = 0; j < L; ++j) z += pr[j] = std::isinf(s[j]) ? 0.0 : std::exp(double(s[j]) - mx);
            for (int64_t j = 0; j < L; ++j)
              for (int64_t e = 0; e < hd; ++e) o[(b * L + i) * d + hh * hd + e] += pr[j] / z * v[(b * L + j) * d + hh * hd + e];
          }
      std::vector<double> a = linear(o, B * L, d, d, w(p + "self_attn.out_proj.weight"), w(p + "self_attn.out_proj.bias"));
      for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
      layer_norm(x, B * L, d, w(p + "layer_norm2.weight"), w(p + "layer_norm2.bias"), h);
      std::vector<double> f = linear(h, B * L, d, inter, w(p + "mlp.fc1.weight"), w(p + "mlp.fc1.bias"));
      for (double& t : f) t = quick ? t / (1.0 + std::exp(-1.702 * t)) : 0.5 * t * (1.0 + std::erf(t / std::sqrt(2.0)));
      std::vector<double> m = linear(f, B * L, inter, d, w(p + "mlp.fc2.weight"), w(p + "mlp.fc2.bias"));
      for (size_t i = 0; i < x.size(); ++i) x[i] += m[i];
    }
    layer_norm(x, B * L, d, w("text_model.final_layer_norm.weight"), w("text_model.final_layer_norm.bias"), h);
    return h;
  }
};

// Left padding (the first keys of a row masked) and a mask on the pooled token are outside the
// goldens: compare against the naive forward.
TEST(ClipTextEncoder, LeftPaddedMaskMatchesNaiveReference) {
  for (const std::string name : {"text_encoder_clip_l_plain", "text_encoder_clip_g_withproj"}) {
    SCOPED_TRACE(name);
    io::ModelFolder folder = io::ModelFolder::open(golden(name + "/text_encoder"));
    auto enc = load_encoder(folder, "text_encoder");
    const io::JsonConfig& cfg = folder.config();
    NaiveClip ref{io::SafetensorsFile::open(golden(name + "/text_encoder/model.safetensors")),
                  cfg.get<int64_t>("hidden_size"), cfg.get<int64_t>("num_attention_heads"),
                  cfg.get<int64_t>("intermediate_size"), cfg.get<int64_t>("num_hidden_layers"),
                  cfg.get<std::string>("hidden_act") == "quick_gelu"};
    const int64_t B = 2, L = 12;
    Tensor ids = Tensor::empty({B, L}, DType::I64), mask = Tensor::empty({B, L}, DType::I64);
    std::vector<int64_t> idv(B * L), keep(B * L);
    for (int64_t i = 0; i < B * L; ++i) {
      idv[i] = (i * 37 + 11) % 512;
      keep[i] = (i < L) ? (i % L < 3 ? 0 : 1)      // row 0: three left-padded keys
                        : (i % L % 4 == 1 ? 0 : 1);  // row 1: holes in the middle
    }
    std::copy(idv.begin(), idv.end(), ids.data<int64_t>());
    std::copy(keep.begin(), keep.end(), mask.data<int64_t>());
    std::vector<Tensor> got;
    for (const bool masked : {false, true}) {
      SCOPED_TRACE(masked ? "masked" : "unmasked");
      std::vector<double> r = ref.forward(idv, B, L, masked ? &keep : nullptr);
      std::vector<float> rf(r.begin(), r.end());
      got.push_back(enc->encode(ids, masked ? mask : Tensor()).last_hidden_state);
      expect_close(got.back(), Tensor::from_vector(rf, {B, L, ref.d}), kTol, "last_hidden_state");
    }
    EXPECT_GT(testing::max_abs_diff(got[0], got[1]), 1e-2f);  // the mask matters
  }
}

TEST(ClipTextEncoder, RegisteredClasses) {
  EXPECT_TRUE(models::has_model("CLIPTextModel"));
  EXPECT_TRUE(models::has_model("CLIPTextModelWithProjection"));
}

}  // namespace
}  // namespace qdit
