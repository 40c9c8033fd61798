// SD3Transformer beyond the goldens: the plain reference (sd3_reference.cc) reproduces the golden,
// then anchors non-square latents, timestep broadcasting, a checkpoint without the pos_embed
// buffer and a config without pos_embed_max_size; load-time errors for bad checkpoints and
// configs; input validation.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/registry.h"
#include "qdit/nn/embeddings.h"
#include "sd3_reference.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::SD3Config;
using models::SD3Transformer;
using testing::expect_close;
using testing::random_tensor;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }
const std::string kModelDir = golden("transformer_sd3/transformer");

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_sd3_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<SD3Transformer> load(const std::string& dir) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer");
  auto* t = dynamic_cast<SD3Transformer*>(m.get());
  if (!t) throw Error("not an SD3Transformer: " + dir);
  m.release();
  return std::unique_ptr<SD3Transformer>(t);
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

nlohmann::json golden_config() {
  std::ifstream f(kModelDir + "/config.json");
  return nlohmann::json::parse(f);
}

// The golden checkpoint's tensors, to edit and write back as a model folder.
std::vector<std::pair<std::string, Tensor>> golden_tensors() {
  auto w = io::SafetensorsWeights::open(kModelDir + "/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> t;
  for (const std::string& n : w->names()) t.emplace_back(n, w->tensor(n).clone());
  return t;
}

void write_folder(const std::string& dir, const nlohmann::json& cfg,
                  const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors);
}

models::DiTInputs random_inputs(int64_t batch, int64_t h, int64_t w, int64_t seq, uint32_t seed) {
  models::DiTInputs d;
  d.latents = random_tensor({batch, 16, h, w}, seed, -2.0f, 2.0f);
  d.encoder_hidden_states = random_tensor({batch, seq, 64}, seed + 1);
  d.pooled_projections = random_tensor({batch, 56}, seed + 2);
  for (int64_t i = 0; i < batch; ++i) d.timestep.push_back(999.5f - 613.25f * static_cast<float>(i));
  return d;
}

testing::sd3::RefInputs ref_inputs(const models::DiTInputs& d) {
  return {d.latents, d.encoder_hidden_states, d.pooled_projections, d.timestep};
}

Tensor checkpoint_crop(const io::ModelFolder& folder, int64_t m, int64_t gh, int64_t gw) {
  return testing::sd3::crop_table(folder.weights()->tensor("pos_embed.pos_embed"), m, gh, gw);
}

TEST(SD3Model, ReferenceMatchesTransformerCase) {
  io::ModelFolder folder = io::ModelFolder::open(kModelDir);
  const SD3Config c = SD3Config::from_json(folder.config());
  auto in = io::SafetensorsFile::open(golden("transformer_sd3/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_sd3/outputs.safetensors"));
  testing::sd3::RefInputs r{in->tensor("hidden_states"), in->tensor("encoder_hidden_states"),
                            in->tensor("pooled_projections"), in->tensor("timestep").to_vector()};
  expect_close(testing::sd3::reference_forward(*folder.weights(), c, checkpoint_crop(folder, 16, 8, 8), r),
               out->tensor("sample"), kTol, "reference");
}

// Non-square latents: 12x20 (6x10 patch grid: an off-center, non-square crop of the 16x16 table)
// and 32x6 (the full table height), against the reference.
TEST(SD3Model, NonSquareLatentsMatchReference) {
  io::ModelFolder folder = io::ModelFolder::open(kModelDir);
  const SD3Config c = SD3Config::from_json(folder.config());
  auto model = load(kModelDir);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{12, 20}, {32, 6}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const models::DiTInputs d = random_inputs(2, h, w, 7, 11 + static_cast<uint32_t>(h));
    const Tensor got = model->forward(d);
    ASSERT_EQ(got.shape(), (Shape{2, 16, h, w}));
    expect_close(got,
                 testing::sd3::reference_forward(*folder.weights(), c, checkpoint_crop(folder, 16, h / 2, w / 2),
                                                 ref_inputs(d)),
                 kTol, "non-square");
  }
}

// One timestep value broadcasts over the batch; rows are independent of each other.
TEST(SD3Model, TimestepBroadcastAndBatchRows) {
  auto model = load(kModelDir);
  models::DiTInputs d = random_inputs(2, 8, 12, 5, 21);
  d.timestep = {321.0f};
  const Tensor one = model->forward(d);
  d.timestep = {321.0f, 321.0f};
  expect_close(one, model->forward(d), 0.0f, "broadcast timestep");
  // Row 1 alone equals row 1 of the batch.
  models::DiTInputs r1;
  r1.latents = d.latents.slice(0, 1, 2).contiguous();
  r1.encoder_hidden_states = d.encoder_hidden_states.slice(0, 1, 2).contiguous();
  r1.pooled_projections = d.pooled_projections.slice(0, 1, 2).contiguous();
  r1.timestep = {321.0f};
  expect_close(model->forward(r1), one.slice(0, 1, 2).contiguous(), kTol, "single row");
}

// Without the persistent pos_embed buffer in the checkpoint the table PatchEmbed.__init__ computes
// (base_size = sample_size // patch, interpolation 1) is used: it equals the stored one.
TEST(SD3Model, MissingPosEmbedBufferIsComputed) {
  auto tensors = golden_tensors();
  std::erase_if(tensors, [](const auto& t) { return t.first == "pos_embed.pos_embed"; });
  TempDir tmp;
  write_folder(tmp.path, golden_config(), tensors);
  auto model = load(tmp.path);
  auto in = io::SafetensorsFile::open(golden("transformer_sd3/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_sd3/outputs.safetensors"));
  models::DiTInputs d;
  d.latents = in->tensor("hidden_states");
  d.encoder_hidden_states = in->tensor("encoder_hidden_states");
  d.pooled_projections = in->tensor("pooled_projections");
  d.timestep = in->tensor("timestep").to_vector();
  expect_close(model->forward(d), out->tensor("sample"), kTol, "computed pos table");
}

// pos_embed_max_size null: no crop, the table is computed for the latent grid itself.
TEST(SD3Model, NoMaxSizeRecomputesTableForTheGrid) {
  nlohmann::json cfg = golden_config();
  cfg["pos_embed_max_size"] = nullptr;
  auto tensors = golden_tensors();
  std::erase_if(tensors, [](const auto& t) { return t.first == "pos_embed.pos_embed"; });
  TempDir tmp;
  write_folder(tmp.path, cfg, tensors);
  auto model = load(tmp.path);
  EXPECT_EQ(model->config().pos_embed_max_size, 0);
  const models::DiTInputs d = random_inputs(1, 10, 36, 4, 31);  // 5x18 grid: beyond 16, fine without a max
  io::ModelFolder folder = io::ModelFolder::open(tmp.path);
  const Tensor pos = nn::sincos_2d_pos_embed(32, 5, 18, 4.0f, 1.0f);  // base_size = 8 // 2
  expect_close(model->forward(d),
               testing::sd3::reference_forward(*folder.weights(), model->config(), pos, ref_inputs(d)), kTol,
               "no max size");
}

// A checkpoint with missing and mis-shaped tensors fails at load with each one named.
TEST(SD3Model, BadWeightsReportEveryProblem) {
  auto tensors = golden_tensors();
  std::erase_if(tensors, [](const auto& t) {
    return t.first == "transformer_blocks.1.attn.add_k_proj.weight" ||
           t.first == "transformer_blocks.0.ff_context.net.2.bias";
  });
  for (auto& [name, t] : tensors) {
    if (name == "proj_out.weight") t = random_tensor({64, 31}, 3);
    if (name == "transformer_blocks.1.norm1_context.linear.weight") t = random_tensor({192, 32}, 4);
    if (name == "pos_embed.pos_embed") t = random_tensor({1, 255, 32}, 5);
  }
  TempDir tmp;
  write_folder(tmp.path, golden_config(), tensors);
  const std::string msg = error_of([&] { load(tmp.path); });
  for (const char* name : {"transformer_blocks.1.attn.add_k_proj.weight", "transformer_blocks.0.ff_context.net.2.bias",
                           "proj_out.weight", "transformer_blocks.1.norm1_context.linear.weight",
                           "pos_embed.pos_embed"})
    EXPECT_NE(msg.find(name), std::string::npos) << name << " not in: " << msg;

  // The unedited set written the same way loads (so the errors come from the edits alone).
  TempDir ok;
  write_folder(ok.path, golden_config(), golden_tensors());
  EXPECT_NO_THROW(load(ok.path));
}

TEST(SD3Model, UnsupportedConfigsAreRejected) {
  const nlohmann::json base = golden_config();
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base;
    j[key] = std::move(value);
    const std::string msg = error_of([&] { SD3Config::from_json(io::JsonConfig::from_json(j, "bad/config.json")); });
    EXPECT_NE(msg.find(needle), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find("bad/config.json"), std::string::npos) << msg;
  };
  expect_error("qk_norm", "rms_norm", "qk_norm");
  expect_error("dual_attention_layers", nlohmann::json::array({0}), "dual_attention_layers");
  expect_error("caption_projection_dim", 48, "caption_projection_dim");
  expect_error("attention_head_dim", 15, "divisible by 4");
  expect_error("patch_size", 0, "patch_size");
  expect_error("num_layers", "2", "num_layers");
  expect_error("pos_embed_max_size", -1, "pos_embed_max_size");
  // The SD3 values of the SD3.5 keys are accepted.
  nlohmann::json j = base;
  j["qk_norm"] = nullptr;
  j["dual_attention_layers"] = nlohmann::json::array();
  EXPECT_NO_THROW(SD3Config::from_json(io::JsonConfig::from_json(j, "ok/config.json")));
}

TEST(SD3Model, BadInputsAreRejected) {
  auto model = load(kModelDir);
  const models::DiTInputs good = random_inputs(1, 8, 8, 5, 41);
  ASSERT_NO_THROW(model->forward(good));
  auto expect_error = [&](const models::DiTInputs& d, const std::string& needle) {
    const std::string msg = error_of([&] { model->forward(d); });
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  models::DiTInputs d = good;
  d.latents = random_tensor({1, 4, 8, 8}, 42);
  expect_error(d, "latents");
  d.latents = random_tensor({1, 16, 9, 8}, 42);
  expect_error(d, "patch_size");
  d.latents = random_tensor({1, 16, 34, 8}, 42);  // 17 patches > pos_embed_max_size 16
  expect_error(d, "pos_embed_max_size");
  d.latents = Tensor();
  expect_error(d, "latents");
  d = good;
  d.encoder_hidden_states = random_tensor({1, 5, 32}, 43);
  expect_error(d, "encoder_hidden_states");
  d = good;
  d.pooled_projections = Tensor();
  expect_error(d, "pooled_projections");
  d.pooled_projections = random_tensor({2, 56}, 44);
  expect_error(d, "pooled_projections");
  d = good;
  d.timestep = {};
  expect_error(d, "timestep");
  d = good;
  d.encoder_attention_mask = Tensor::full({1, 5}, 1.0f);
  expect_error(d, "encoder_attention_mask");
}

}  // namespace
}  // namespace qdit
