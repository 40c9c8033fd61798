// AuraFlowTransformer beyond the goldens: the plain reference (auraflow_reference.cc) reproduces
// the golden, then anchors tiny random configs (odd widths, non-square grids, a non-square
// pos_embed_max_size, patch 3, no joint or no single blocks), the position crop against hand-made
// indices, timestep broadcasting; load-time errors for bad checkpoints and configs; input checks.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "auraflow_reference.h"
#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::AuraFlowConfig;
using models::AuraFlowTransformer;
using testing::expect_close;
using testing::random_tensor;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }
const std::string kModelDir = golden("transformer_auraflow/transformer");

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_auraflow_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<AuraFlowTransformer> load(const std::string& dir) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer");
  auto* t = dynamic_cast<AuraFlowTransformer*>(m.get());
  if (!t) throw Error("not an AuraFlowTransformer: " + dir);
  m.release();
  return std::unique_ptr<AuraFlowTransformer>(t);
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

Tensors golden_tensors() {
  auto w = io::SafetensorsWeights::open(kModelDir + "/diffusion_pytorch_model.safetensors");
  Tensors t;
  for (const std::string& n : w->names()) t.emplace_back(n, w->tensor(n).clone());
  return t;
}

void write_folder(const std::string& dir, const nlohmann::json& cfg, const Tensors& tensors) {
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors);
}

models::DiTInputs random_inputs(const AuraFlowConfig& c, int64_t batch, int64_t h, int64_t w, int64_t seq,
                                uint32_t seed) {
  models::DiTInputs d;
  d.latents = random_tensor({batch, c.in_channels, h, w}, seed, -2.0f, 2.0f);
  d.encoder_hidden_states = random_tensor({batch, seq, c.joint_attention_dim}, seed + 1);
  for (int64_t i = 0; i < batch; ++i) d.timestep.push_back(0.9995f - 0.61325f * static_cast<float>(i));
  return d;
}

testing::auraflow::RefInputs ref_inputs(const models::DiTInputs& d) {
  return {d.latents, d.encoder_hidden_states, d.timestep};
}

// A tiny config: every size differs from the others and from the golden's.
nlohmann::json tiny_config(int64_t heads, int64_t head_dim, int64_t patch, int64_t pos_max, int64_t mmdit,
                           int64_t single) {
  return {{"_class_name", "AuraFlowTransformer2DModel"},
          {"attention_head_dim", head_dim},
          {"num_attention_heads", heads},
          {"caption_projection_dim", heads * head_dim},
          {"in_channels", 3},
          {"out_channels", 5},
          {"joint_attention_dim", 13},
          {"num_mmdit_layers", mmdit},
          {"num_single_dit_layers", single},
          {"patch_size", patch},
          {"pos_embed_max_size", pos_max},
          {"sample_size", 6}};
}

TEST(AuraFlowModel, ReferenceMatchesTransformerCase) {
  io::ModelFolder folder = io::ModelFolder::open(kModelDir);
  const AuraFlowConfig c = AuraFlowConfig::from_json(folder.config());
  auto in = io::SafetensorsFile::open(golden("transformer_auraflow/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_auraflow/outputs.safetensors"));
  const testing::auraflow::RefInputs r{in->tensor("hidden_states"), in->tensor("encoder_hidden_states"),
                                       in->tensor("timestep").to_vector()};
  expect_close(testing::auraflow::reference_forward(*folder.weights(), c, r), out->tensor("sample"), kTol,
               "reference");
}

// The golden model on non-square latents: 10x16 (5x8 grid: full width, odd height) and 16x6.
TEST(AuraFlowModel, GoldenModelNonSquareLatentsMatchReference) {
  io::ModelFolder folder = io::ModelFolder::open(kModelDir);
  auto model = load(kModelDir);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{10, 16}, {16, 6}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const models::DiTInputs d = random_inputs(model->config(), 2, h, w, 7, 11 + static_cast<uint32_t>(h));
    const Tensor got = model->forward(d);
    ASSERT_EQ(got.shape(), (Shape{2, 4, h, w}));
    expect_close(got, testing::auraflow::reference_forward(*folder.weights(), model->config(), ref_inputs(d)), kTol,
                 "non-square");
  }
}

// Random checkpoints for tiny configs: odd head counts and widths (D = 3*8 = 24, 5*4 = 20),
// a non-square pos_embed_max_size (50 -> a 7x7 view, the last row unused), patch 3, and models
// without joint or without single blocks.
TEST(AuraFlowModel, TinyRandomConfigsMatchReference) {
  struct Case {
    nlohmann::json cfg;
    int64_t batch, h, w, seq;
  };
  const std::vector<Case> cases = {
      {tiny_config(3, 8, 2, 50, 2, 2), 2, 10, 6, 5},  // 5x3 grid
      {tiny_config(3, 8, 2, 50, 2, 2), 1, 4, 14, 9},  // 2x7 grid: full table width
      {tiny_config(5, 4, 3, 36, 1, 0), 2, 9, 15, 3},  // patch 3, 3x5 grid, no single blocks
      {tiny_config(2, 6, 1, 30, 0, 3), 1, 3, 5, 4},   // patch 1, no joint blocks
  };
  uint32_t seed = 100;
  for (const Case& k : cases) {
    SCOPED_TRACE(k.cfg.dump());
    const AuraFlowConfig c = AuraFlowConfig::from_json(io::JsonConfig::from_json(k.cfg, "tiny/config.json"));
    TempDir tmp;
    write_folder(tmp.path, k.cfg, testing::auraflow::random_checkpoint(c, seed));
    auto model = load(tmp.path);
    io::ModelFolder folder = io::ModelFolder::open(tmp.path);
    const models::DiTInputs d = random_inputs(c, k.batch, k.h, k.w, k.seq, seed + 50);
    const Tensor got = model->forward(d);
    ASSERT_EQ(got.shape(), (Shape{k.batch, 5, k.h, k.w}));
    expect_close(got, testing::auraflow::reference_forward(*folder.weights(), c, ref_inputs(d)), kTol, "tiny");
    EXPECT_GT(testing::max_abs(got), 1e-2f);  // not a degenerate all-zero output
    seed += 1000;
  }
}

// The crop alone, observed through a model that outputs its position rows: no blocks, zero patch
// projection, zero final modulation and an identity proj_out (D = p*p*out_channels = 8), with
// table row r holding r*100 + channel. pos_embed_max_size 70 is viewed as 8x8 (rows 64..69
// unused); the indices are written out by hand. On this even side the start s//2 - g//2 differs
// from SD3's (s - g)//2 for odd grids (3 rows start at row 3, not 2).
TEST(AuraFlowModel, PosEmbedCropMatchesHandIndices) {
  nlohmann::json cfg = tiny_config(2, 4, 2, 70, 0, 0);
  cfg["in_channels"] = 1;
  cfg["out_channels"] = 2;
  const AuraFlowConfig c = AuraFlowConfig::from_json(io::JsonConfig::from_json(cfg, "crop/config.json"));
  ASSERT_EQ(c.pos_grid, 8);  // int(70 ** 0.5)
  Tensors t = testing::auraflow::random_checkpoint(c, 7);
  for (auto& [name, v] : t) {
    float* p = v.data<float>();
    if (name == "pos_embed.proj.weight" || name == "pos_embed.proj.bias" || name == "norm_out.linear.weight")
      for (int64_t i = 0; i < v.numel(); ++i) p[i] = 0.0f;
    if (name == "pos_embed.pos_embed")
      for (int64_t i = 0; i < v.numel(); ++i) p[i] = static_cast<float>((i / 8) * 100 + i % 8);
    if (name == "proj_out.weight")
      for (int64_t i = 0; i < v.numel(); ++i) p[i] = i / 8 == i % 8 ? 1.0f : 0.0f;
  }
  TempDir tmp;
  write_folder(tmp.path, cfg, t);
  auto model = load(tmp.path);

  struct Case {
    int64_t gh, gw;
    std::vector<int64_t> rows;
  };
  std::vector<int64_t> all;
  for (int64_t i = 0; i < 64; ++i) all.push_back(i);
  const std::vector<Case> cases = {
      {3, 4, {26, 27, 28, 29, 34, 35, 36, 37, 42, 43, 44, 45}},  // start (4 - 1, 4 - 2)
      {1, 1, {36}},                                              // start (4, 4)
      {5, 2, {19, 20, 27, 28, 35, 36, 43, 44, 51, 52}},          // start (4 - 2, 4 - 1)
      {8, 8, all},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(std::to_string(k.gh) + "x" + std::to_string(k.gw));
    EXPECT_EQ(testing::auraflow::pos_indices(70, k.gh, k.gw), k.rows);
    const models::PosCrop pc = models::auraflow_pos_crop(8, k.gh, k.gw);
    EXPECT_EQ(pc.top * 8 + pc.left, k.rows.front());
    const Tensor y = model->forward(random_inputs(c, 1, 2 * k.gh, 2 * k.gw, 3, 9));
    Tensor want = Tensor::empty(y.shape(), DType::F32);
    for (int64_t co = 0; co < 2; ++co)
      for (int64_t gy = 0; gy < k.gh; ++gy)
        for (int64_t gx = 0; gx < k.gw; ++gx)
          for (int64_t u = 0; u < 2; ++u)
            for (int64_t v = 0; v < 2; ++v)
              want.data<float>()[(co * 2 * k.gh + gy * 2 + u) * 2 * k.gw + gx * 2 + v] =
                  static_cast<float>(k.rows[static_cast<size_t>(gy * k.gw + gx)] * 100 + (u * 2 + v) * 2 + co);
    expect_close(y, want, 0.0f, "crop");
  }
  // A 9-row grid does not fit the 8x8 view.
  EXPECT_NE(error_of([&] { model->forward(random_inputs(c, 1, 18, 2, 3, 9)); }).find("position table"),
            std::string::npos);
}

// One timestep value broadcasts over the batch; rows are independent of each other.
TEST(AuraFlowModel, TimestepBroadcastAndBatchRows) {
  auto model = load(kModelDir);
  models::DiTInputs d = random_inputs(model->config(), 2, 8, 12, 5, 21);
  d.timestep = {0.321f};
  const Tensor one = model->forward(d);
  d.timestep = {0.321f, 0.321f};
  expect_close(one, model->forward(d), 0.0f, "broadcast timestep");
  models::DiTInputs r1;
  r1.latents = d.latents.slice(0, 1, 2).contiguous();
  r1.encoder_hidden_states = d.encoder_hidden_states.slice(0, 1, 2).contiguous();
  r1.timestep = {0.321f};
  expect_close(model->forward(r1), one.slice(0, 1, 2).contiguous(), kTol, "single row");
}

// An empty caption (L = 0) leaves the 8 register tokens as the whole text stream.
TEST(AuraFlowModel, EmptyCaptionUsesRegisterTokensOnly) {
  io::ModelFolder folder = io::ModelFolder::open(kModelDir);
  auto model = load(kModelDir);
  models::DiTInputs d = random_inputs(model->config(), 2, 6, 10, 1, 61);
  d.encoder_hidden_states = Tensor::zeros({2, 0, 48}, DType::F32);
  expect_close(model->forward(d), testing::auraflow::reference_forward(*folder.weights(), model->config(),
                                                                        ref_inputs(d)),
               kTol, "empty caption");
}

// A checkpoint with missing and mis-shaped tensors fails at load with each one named.
TEST(AuraFlowModel, BadWeightsReportEveryProblem) {
  Tensors tensors = golden_tensors();
  std::erase_if(tensors, [](const auto& t) {
    return t.first == "joint_transformer_blocks.0.attn.add_k_proj.weight" ||
           t.first == "single_transformer_blocks.1.ff.linear_2.weight" || t.first == "time_step_proj.linear_1.bias";
  });
  for (auto& [name, t] : tensors) {
    if (name == "proj_out.weight") t = random_tensor({16, 31}, 3);
    if (name == "register_tokens") t = random_tensor({1, 4, 32}, 4);
    if (name == "pos_embed.pos_embed") t = random_tensor({1, 63, 32}, 5);
    if (name == "single_transformer_blocks.0.ff.out_projection.weight") t = random_tensor({32, 128}, 6);
  }
  TempDir tmp;
  write_folder(tmp.path, golden_config(), tensors);
  const std::string msg = error_of([&] { load(tmp.path); });
  for (const char* name : {"joint_transformer_blocks.0.attn.add_k_proj.weight",
                           "single_transformer_blocks.1.ff.linear_2.weight", "time_step_proj.linear_1.bias",
                           "proj_out.weight", "register_tokens", "pos_embed.pos_embed",
                           "single_transformer_blocks.0.ff.out_projection.weight"})
    EXPECT_NE(msg.find(name), std::string::npos) << name << " not in: " << msg;

  TempDir ok;
  write_folder(ok.path, golden_config(), golden_tensors());
  EXPECT_NO_THROW(load(ok.path));
}

TEST(AuraFlowModel, UnsupportedConfigsAreRejected) {
  const nlohmann::json base = golden_config();
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base;
    j[key] = std::move(value);
    const std::string msg =
        error_of([&] { AuraFlowConfig::from_json(io::JsonConfig::from_json(j, "bad/config.json")); });
    EXPECT_NE(msg.find(needle), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find("bad/config.json"), std::string::npos) << msg;
  };
  expect_error("caption_projection_dim", 48, "caption_projection_dim");
  expect_error("out_channels", nullptr, "out_channels");
  expect_error("pos_embed_max_size", nullptr, "pos_embed_max_size");
  expect_error("pos_embed_max_size", 0, "pos_embed_max_size");
  expect_error("patch_size", 0, "patch_size");
  expect_error("num_mmdit_layers", "1", "num_mmdit_layers");
  expect_error("num_single_dit_layers", -1, "num_single_dit_layers");
  expect_error("attention_head_dim", 0, "attention_head_dim");
  expect_error("joint_attention_dim", 1.5, "joint_attention_dim");

  // Missing keys take diffusers' defaults.
  const AuraFlowConfig d = AuraFlowConfig::from_json(io::JsonConfig::from_json(nlohmann::json::object(), "d.json"));
  EXPECT_EQ(d.inner_dim, 3072);
  EXPECT_EQ(d.caption_projection_dim, 3072);
  EXPECT_EQ(d.num_mmdit_layers, 4);
  EXPECT_EQ(d.num_single_dit_layers, 32);
  EXPECT_EQ(d.pos_embed_max_size, 1024);
  EXPECT_EQ(d.pos_grid, 32);
  EXPECT_EQ(d.joint_attention_dim, 2048);
  EXPECT_EQ(d.out_channels, 4);
}

TEST(AuraFlowModel, BadInputsAreRejected) {
  auto model = load(kModelDir);
  const models::DiTInputs good = random_inputs(model->config(), 1, 8, 8, 5, 41);
  ASSERT_NO_THROW(model->forward(good));
  auto expect_error = [&](const models::DiTInputs& d, const std::string& needle) {
    const std::string msg = error_of([&] { model->forward(d); });
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  models::DiTInputs d = good;
  d.latents = random_tensor({1, 16, 8, 8}, 42);
  expect_error(d, "latents");
  d.latents = random_tensor({1, 4, 9, 8}, 42);
  expect_error(d, "patch_size");
  d.latents = random_tensor({1, 4, 18, 8}, 42);  // 9 patch rows > the 8x8 table view
  expect_error(d, "pos_embed_max_size");
  d.latents = random_tensor({1, 4, 8, 18}, 42);
  expect_error(d, "position table");
  d.latents = Tensor();
  expect_error(d, "latents");
  d = good;
  d.encoder_hidden_states = random_tensor({1, 5, 32}, 43);
  expect_error(d, "encoder_hidden_states");
  d.encoder_hidden_states = random_tensor({2, 5, 48}, 43);
  expect_error(d, "encoder_hidden_states");
  d.encoder_hidden_states = Tensor();
  expect_error(d, "encoder_hidden_states");
  d = good;
  d.timestep = {};
  expect_error(d, "timestep");
  d.timestep = {0.5f, 0.5f};
  expect_error(d, "timestep");
  d = good;
  d.encoder_attention_mask = Tensor::full({1, 5}, 1.0f);
  expect_error(d, "encoder_attention_mask");
  d = good;
  d.pooled_projections = Tensor::full({1, 32}, 1.0f);
  expect_error(d, "pooled_projections");
}

}  // namespace
}  // namespace qdit
