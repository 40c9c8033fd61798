// FluxTransformer beyond the goldens: the plain reference (flux_reference.cc) reproduces both
// golden cases, then anchors tiny random configs (odd sizes, non-square grids, other
// axes_dims_rope, with and without guidance, patch_size 2), per-row ids, broadcasting, the rotary
// table, load-time errors for bad checkpoints and configs, and input validation.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "flux_reference.h"
#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/norm.h"
#include "qdit/models/flux/flux_rope.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::FluxConfig;
using models::FluxTransformer;
using testing::expect_close;
using testing::random_tensor;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }
const std::string kGuidanceDir = golden("transformer_flux_guidance/transformer");
const std::string kNoGuidanceDir = golden("transformer_flux_noguidance/transformer");

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_flux_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<FluxTransformer> load(const std::string& dir) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer");
  auto* t = dynamic_cast<FluxTransformer*>(m.get());
  if (!t) throw Error("not a FluxTransformer: " + dir);
  m.release();
  return std::unique_ptr<FluxTransformer>(t);
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

nlohmann::json read_config(const std::string& dir) {
  std::ifstream f(dir + "/config.json");
  return nlohmann::json::parse(f);
}

std::vector<std::pair<std::string, Tensor>> read_tensors(const std::string& dir) {
  auto w = io::SafetensorsWeights::open(dir + "/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> t;
  for (const std::string& n : w->names()) t.emplace_back(n, w->tensor(n).clone());
  return t;
}

void write_folder(const std::string& dir, const nlohmann::json& cfg,
                  const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors);
}

// A tiny config with every size odd or unusual, and a random checkpoint for it.
nlohmann::json tiny_config(bool guidance, int64_t patch = 1) {
  return {{"_class_name", "FluxTransformer2DModel"},
          {"attention_head_dim", 10},
          {"num_attention_heads", 3},
          {"axes_dims_rope", {2, 4, 4}},
          {"in_channels", 12},
          {"joint_attention_dim", 20},
          {"pooled_projection_dim", 7},
          {"num_layers", 2},
          {"num_single_layers", 2},
          {"guidance_embeds", guidance},
          {"patch_size", patch}};
}

void write_random_model(const std::string& dir, const nlohmann::json& cfg, uint32_t seed) {
  const FluxConfig c = FluxConfig::from_json(io::JsonConfig::from_json(cfg, "tiny/config.json"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, shape] : testing::flux::checkpoint_layout(c)) {
    const bool rms = name.find(".norm_") != std::string::npos;  // q/k RMSNorm weights around 1
    tensors.emplace_back(name,
                         rms ? random_tensor(shape, seed++, 0.5f, 1.5f) : random_tensor(shape, seed++, -0.3f, 0.3f));
  }
  write_folder(dir, cfg, tensors);
}

// (0, row, col) over a gh x gw grid, [gh*gw, 3].
Tensor grid_ids(int64_t gh, int64_t gw) {
  Tensor ids = Tensor::zeros({gh * gw, 3}, DType::F32);
  for (int64_t i = 0; i < gh * gw; ++i) {
    ids.data<float>()[i * 3 + 1] = static_cast<float>(i / gw);
    ids.data<float>()[i * 3 + 2] = static_cast<float>(i % gw);
  }
  return ids;
}

// [S, n] -> [B, S, n] (the same ids for every row).
Tensor per_row(const Tensor& ids, int64_t batch) {
  std::vector<Tensor> rows(static_cast<size_t>(batch), ids.unsqueeze(0));
  return kernels::concat(rows, 0);
}

models::DiTInputs random_inputs(const FluxConfig& c, int64_t batch, int64_t gh, int64_t gw, int64_t seq,
                                uint32_t seed) {
  models::DiTInputs d;
  d.latents = random_tensor({batch, gh * gw, c.in_channels}, seed, -2.0f, 2.0f);
  d.encoder_hidden_states = random_tensor({batch, seq, c.joint_attention_dim}, seed + 1);
  d.pooled_projections = random_tensor({batch, c.pooled_projection_dim}, seed + 2);
  for (int64_t i = 0; i < batch; ++i) {
    d.timestep.push_back(0.9375f - 0.4f * static_cast<float>(i));
    if (c.guidance_embeds) d.guidance.push_back(3.5f + 1.25f * static_cast<float>(i));
  }
  d.txt_ids = Tensor::zeros({seq, 3}, DType::F32);
  d.img_ids = grid_ids(gh, gw);
  return d;
}

testing::flux::RefInputs ref_inputs(const models::DiTInputs& d) {
  const int64_t b = d.latents.size(0);
  return {d.latents,
          d.encoder_hidden_states,
          d.pooled_projections,
          d.timestep,
          d.guidance,
          d.txt_ids.dim() == 2 ? per_row(d.txt_ids, b) : d.txt_ids,
          d.img_ids.dim() == 2 ? per_row(d.img_ids, b) : d.img_ids};
}

Tensor reference(const std::string& dir, const models::DiTInputs& d) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  return testing::flux::reference_forward(*folder.weights(), FluxConfig::from_json(folder.config()), ref_inputs(d));
}

TEST(FluxModel, ReferenceMatchesTransformerCases) {
  for (const char* name : {"transformer_flux_guidance", "transformer_flux_noguidance"}) {
    SCOPED_TRACE(name);
    io::ModelFolder folder = io::ModelFolder::open(golden(std::string(name) + "/transformer"));
    auto in = io::SafetensorsFile::open(golden(std::string(name) + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(std::string(name) + "/outputs.safetensors"));
    testing::flux::RefInputs r{in->tensor("hidden_states"),
                               in->tensor("encoder_hidden_states"),
                               in->tensor("pooled_projections"),
                               in->tensor("timestep").to_vector(),
                               {},
                               in->tensor("txt_ids"),
                               in->tensor("img_ids")};
    if (in->contains("guidance")) r.guidance = in->tensor("guidance").to_vector();
    expect_close(testing::flux::reference_forward(*folder.weights(), FluxConfig::from_json(folder.config()), r),
                 out->tensor("sample"), kTol, "reference");
  }
}

// Odd sizes everywhere (3 heads of 10, axes [2, 4, 4], 12 input channels, 5 text tokens, a 3x5
// grid, 2 double and 2 single blocks), with and without the guidance embedder.
TEST(FluxModel, TinyRandomConfigsMatchReference) {
  for (bool guidance : {true, false}) {
    SCOPED_TRACE(guidance ? "guidance" : "no guidance");
    TempDir tmp;
    write_random_model(tmp.path, tiny_config(guidance), guidance ? 100 : 200);
    auto model = load(tmp.path);
    for (auto [gh, gw, seq] : {std::tuple<int64_t, int64_t, int64_t>{3, 5, 5}, {7, 2, 1}}) {
      const models::DiTInputs d = random_inputs(model->config(), 2, gh, gw, seq, 7 + static_cast<uint32_t>(gh));
      const Tensor got = model->forward(d);
      ASSERT_EQ(got.shape(), (Shape{2, gh * gw, 12}));
      expect_close(got, reference(tmp.path, d), kTol, "tiny " + std::to_string(gh) + "x" + std::to_string(gw));
    }
  }
}

// patch_size 2 only widens proj_out (0.30.3: Linear(inner, p*p*in_channels)).
TEST(FluxModel, PatchSizeWidensProjOut) {
  TempDir tmp;
  write_random_model(tmp.path, tiny_config(false, 2), 300);
  auto model = load(tmp.path);
  EXPECT_EQ(model->config().out_features(), 48);
  const models::DiTInputs d = random_inputs(model->config(), 1, 2, 3, 4, 31);
  const Tensor got = model->forward(d);
  ASSERT_EQ(got.shape(), (Shape{1, 6, 48}));
  expect_close(got, reference(tmp.path, d), kTol, "patch 2");
}

// 0.30.3 takes ids per row: rows with different ids rotate differently, and each row matches the
// reference with its own ids (non-zero text ids, shifted and fractional image ids).
TEST(FluxModel, PerRowIdsMatchReference) {
  TempDir tmp;
  write_random_model(tmp.path, tiny_config(true), 400);
  auto model = load(tmp.path);
  models::DiTInputs d = random_inputs(model->config(), 2, 3, 4, 3, 41);
  Tensor img = per_row(grid_ids(3, 4), 2), txt = random_tensor({2, 3, 3}, 42, -4.0f, 4.0f);
  for (int64_t i = 0; i < 12; ++i) {
    img.data<float>()[(12 + i) * 3 + 0] = 1.0f;                                               // row 1: axis 0 = 1
    img.data<float>()[(12 + i) * 3 + 2] = img.data<float>()[(12 + i) * 3 + 2] * 1.5f + 2.0f;  // shifted columns
  }
  d.img_ids = img;
  d.txt_ids = txt;
  const Tensor got = model->forward(d);
  expect_close(got, reference(tmp.path, d), kTol, "per-row ids");
  // Row 0's ids for both rows give a different row 1 (the ids really are per row).
  models::DiTInputs same = d;
  same.img_ids = per_row(img.select(0, 0).contiguous(), 2);
  same.txt_ids = per_row(txt.select(0, 0).contiguous(), 2);
  const Tensor other = model->forward(same);
  EXPECT_GT(testing::max_abs_diff(got.slice(0, 1, 2).contiguous(), other.slice(0, 1, 2).contiguous()), 1e-3f);
  expect_close(got.slice(0, 0, 1).contiguous(), other.slice(0, 0, 1).contiguous(), kTol, "row 0 unchanged");
}

// [S, 3], [1, S, 3] and [B, S, 3] ids agree; one timestep/guidance value broadcasts; rows are
// independent of each other.
TEST(FluxModel, BroadcastingAndBatchRows) {
  auto model = load(kGuidanceDir);
  models::DiTInputs d = random_inputs(model->config(), 2, 8, 8, 9, 51);
  d.timestep = {0.625f};
  d.guidance = {4.0f};
  const Tensor base = model->forward(d);
  models::DiTInputs e = d;
  e.timestep = {0.625f, 0.625f};
  e.guidance = {4.0f, 4.0f};
  e.img_ids = d.img_ids.unsqueeze(0).contiguous();
  e.txt_ids = per_row(d.txt_ids, 2);
  expect_close(model->forward(e), base, 0.0f, "broadcast");
  models::DiTInputs r1;
  r1.latents = d.latents.slice(0, 1, 2).contiguous();
  r1.encoder_hidden_states = d.encoder_hidden_states.slice(0, 1, 2).contiguous();
  r1.pooled_projections = d.pooled_projections.slice(0, 1, 2).contiguous();
  r1.timestep = d.timestep;
  r1.guidance = d.guidance;
  r1.img_ids = d.img_ids;
  r1.txt_ids = d.txt_ids;
  expect_close(model->forward(r1), base.slice(0, 1, 2).contiguous(), kTol, "single row");
}

// The table against values written out by hand: axes [2, 4, 2] give omegas [1 | 1, 1/100 | 1].
TEST(FluxRope, TableMatchesHandValues) {
  const Tensor ids = Tensor::from_vector({3.0f, 5.0f, 0.5f, 0.0f, 0.0f, 0.0f}, {2, 3});
  const models::flux::RopeTable t = models::flux::rope_table(ids, {2, 4, 2});
  ASSERT_EQ(t.cos.shape(), (Shape{2, 4}));
  const double angles[4] = {3.0, 5.0, 0.05, 0.5};
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(t.cos.data<float>()[j], static_cast<float>(std::cos(angles[j]))) << j;
    EXPECT_EQ(t.sin.data<float>()[j], static_cast<float>(std::sin(angles[j]))) << j;
    EXPECT_EQ(t.cos.data<float>()[4 + j], 1.0f);
    EXPECT_EQ(t.sin.data<float>()[4 + j], 0.0f);
  }
}

// Float64 angles: large positions (a 4096-wide grid) match the float64 formula bit for bit,
// where float32 angles would be off by ~1e-4.
TEST(FluxRope, TableIsFloat64ForLargePositions) {
  std::vector<float> v;
  for (int i = 0; i < 64; ++i) v.insert(v.end(), {0.0f, static_cast<float>(4095 - i * 61), static_cast<float>(i * 37)});
  const Tensor ids = Tensor::from_vector(v, {64, 3});
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{16, 56, 56}, {4, 6, 6}, {2, 2, 2}}) {
    const models::flux::RopeTable t = models::flux::rope_table(ids, axes);
    const auto [c, s] = testing::flux::reference_rope_table(ids, axes);
    EXPECT_EQ(testing::max_abs_diff(t.cos, c), 0.0f);
    EXPECT_EQ(testing::max_abs_diff(t.sin, s), 0.0f);
  }
  // The same table with float32 omega and angles is measurably different (what the test guards).
  const models::flux::RopeTable t = models::flux::rope_table(ids, {16, 56, 56});
  float worst = 0.0f;
  for (int64_t i = 0; i < 64; ++i)
    for (int64_t j = 0; j < 28; ++j) {
      const float omega = 1.0f / std::pow(10000.0f, static_cast<float>(2 * j) / 56.0f);
      const float angle = v[static_cast<size_t>(i * 3 + 1)] * omega;
      worst = std::max(worst, std::fabs(std::cos(angle) - t.cos.data<float>()[i * 64 + 8 + j]));
    }
  EXPECT_GT(worst, 1e-5f);
}

// Rope::apply rotates interleaved pairs; identical rows share one table, distinct rows get theirs.
TEST(FluxRope, ApplyRotatesInterleavedPairsPerRow) {
  const Tensor ids = Tensor::from_vector({0, 1, 2, 0, 3, 1, 0, 1, 2, 0, 3, 4}, {2, 2, 3});
  const models::flux::Rope rope(ids, {2, 2, 2});
  EXPECT_EQ(rope.tables(), 2u);
  EXPECT_EQ(models::flux::Rope(per_row(ids.select(0, 0).contiguous(), 3), {2, 2, 2}).tables(), 1u);
  const Tensor x = random_tensor({2, 2, 2, 6}, 61);  // [B, S, H, Dh]
  const Tensor y = rope.apply(x);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = 0; j < 3; ++j) {
          const double angle = ids.data<float>()[(b * 2 + s) * 3 + j];
          const float c = static_cast<float>(std::cos(angle)), sn = static_cast<float>(std::sin(angle));
          const float* xp = x.data<float>() + ((b * 2 + s) * 2 + h) * 6 + 2 * j;
          const float* yp = y.data<float>() + ((b * 2 + s) * 2 + h) * 6 + 2 * j;
          EXPECT_NEAR(yp[0], c * xp[0] - sn * xp[1], 1e-6f);
          EXPECT_NEAR(yp[1], sn * xp[0] + c * xp[1], 1e-6f);
        }
}

// norm_apply_into (the blocks' fused q/k path) equals apply(rms_norm(x)) bit for bit, per-row
// tables included, when the sequence is filled in two row ranges (a double block's text + image).
TEST(FluxRope, NormApplyIntoMatchesNormThenApply) {
  const Tensor ids = Tensor::from_vector({0, 1, 2, 0, 3, 1, 5, 0, 1, 2, 0, 3, 4, 5, 6, 1, 1, 1}, {2, 3, 3});
  const Tensor w = random_tensor({6}, 63, 0.5f, 1.5f);
  for (const Tensor& i : {ids.contiguous(), per_row(ids.select(0, 0).contiguous(), 2)}) {
    const models::flux::Rope rope(i, {2, 2, 2});
    const Tensor x = random_tensor({2, 3, 6, 6}, 62, -3.0f, 3.0f).slice(2, 2, 4);  // k heads of a fused q/k/v
    Tensor out = Tensor::empty({2, 3, 2, 6}, DType::F32);
    Tensor head = out.slice(1, 0, 1), tail = out.slice(1, 1, 3);
    rope.norm_apply_into(x.slice(1, 0, 1), w, 1e-6f, 0, head);
    rope.norm_apply_into(x.slice(1, 1, 3), w, 1e-6f, 1, tail);
    EXPECT_EQ(out.to_vector(), rope.apply(kernels::rms_norm(x, w, 1e-6f)).to_vector()) << rope.tables();
    EXPECT_THROW(rope.norm_apply_into(x.slice(1, 1, 3), w, 1e-6f, 2, tail), Error);  // past the table
  }
}

// A checkpoint with missing and mis-shaped tensors fails at load with each one named.
TEST(FluxModel, BadWeightsReportEveryProblem) {
  auto tensors = read_tensors(kGuidanceDir);
  std::erase_if(tensors, [](const auto& t) {
    return t.first == "transformer_blocks.0.attn.norm_added_k.weight" ||
           t.first == "time_text_embed.guidance_embedder.linear_2.bias";
  });
  for (auto& [name, t] : tensors) {
    if (name == "single_transformer_blocks.1.proj_out.weight") t = random_tensor({32, 128}, 3);
    if (name == "proj_out.weight") t = random_tensor({16, 32}, 4);
    if (name == "single_transformer_blocks.0.attn.norm_q.weight") t = random_tensor({32}, 5);
  }
  TempDir tmp;
  write_folder(tmp.path, read_config(kGuidanceDir), tensors);
  const std::string msg = error_of([&] { load(tmp.path); });
  for (const char* name :
       {"transformer_blocks.0.attn.norm_added_k.weight", "time_text_embed.guidance_embedder.linear_2.bias",
        "single_transformer_blocks.1.proj_out.weight", "proj_out.weight",
        "single_transformer_blocks.0.attn.norm_q.weight"})
    EXPECT_NE(msg.find(name), std::string::npos) << name << " not in: " << msg;

  // guidance_embeds true on a checkpoint without the guidance embedder names its tensors.
  nlohmann::json cfg = read_config(kNoGuidanceDir);
  cfg["guidance_embeds"] = true;
  TempDir tmp2;
  write_folder(tmp2.path, cfg, read_tensors(kNoGuidanceDir));
  EXPECT_NE(error_of([&] { load(tmp2.path); }).find("time_text_embed.guidance_embedder.linear_1.weight"),
            std::string::npos);

  // The unedited set written the same way loads (so the errors come from the edits alone).
  TempDir ok;
  write_folder(ok.path, read_config(kGuidanceDir), read_tensors(kGuidanceDir));
  EXPECT_NO_THROW(load(ok.path));
}

TEST(FluxModel, UnsupportedConfigsAreRejected) {
  const nlohmann::json base = read_config(kGuidanceDir);
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base;
    j[key] = std::move(value);
    const std::string msg = error_of([&] { FluxConfig::from_json(io::JsonConfig::from_json(j, "bad/config.json")); });
    EXPECT_NE(msg.find(needle), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find("bad/config.json"), std::string::npos) << msg;
  };
  expect_error("axes_dims_rope", nlohmann::json::array({4, 6, 4}), "axes_dims_rope");  // sums to 14 != 16
  expect_error("axes_dims_rope", nlohmann::json::array({3, 7, 6}), "axes_dims_rope");  // odd axis
  expect_error("axes_dims_rope", nlohmann::json::array(), "axes_dims_rope");
  expect_error("axes_dims_rope", "4,6,6", "axes_dims_rope");
  expect_error("out_channels", 16, "out_channels");
  expect_error("num_layers", "1", "num_layers");
  expect_error("num_single_layers", -1, "num_single_layers");
  expect_error("guidance_embeds", 1, "guidance_embeds");
  expect_error("patch_size", 0, "patch_size");
  expect_error("num_attention_heads", 0, "num_attention_heads");
  expect_error("pooled_projection_dim", 0, "pooled_projection_dim");
  // Later diffusers' out_channels is accepted when it means 0.30.3 behaviour.
  for (nlohmann::json oc : {nlohmann::json(nullptr), nlohmann::json(64)}) {
    nlohmann::json j = base;
    j["out_channels"] = oc;
    EXPECT_NO_THROW(FluxConfig::from_json(io::JsonConfig::from_json(j, "ok/config.json")));
  }
  // Defaults are diffusers' (FLUX.1 sizes) for an otherwise empty config.
  const FluxConfig c = FluxConfig::from_json(io::JsonConfig::from_json(nlohmann::json::object(), "empty.json"));
  EXPECT_EQ(c.inner_dim, 3072);
  EXPECT_EQ(c.num_layers, 19);
  EXPECT_EQ(c.num_single_layers, 38);
  EXPECT_EQ(c.axes_dims_rope, (std::vector<int64_t>{16, 56, 56}));
  EXPECT_FALSE(c.guidance_embeds);
}

TEST(FluxModel, BadInputsAreRejected) {
  auto model = load(kGuidanceDir);
  auto plain = load(kNoGuidanceDir);
  const models::DiTInputs good = random_inputs(model->config(), 1, 4, 6, 5, 71);
  ASSERT_NO_THROW(model->forward(good));
  auto expect_error = [&](const FluxTransformer& m, const models::DiTInputs& d, const std::string& needle) {
    const std::string msg = error_of([&] { m.forward(d); });
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  models::DiTInputs d = good;
  d.latents = random_tensor({1, 24, 16}, 72);
  expect_error(*model, d, "latents");
  d.latents = random_tensor({1, 64, 4, 6}, 72);
  expect_error(*model, d, "latents");
  d.latents = Tensor();
  expect_error(*model, d, "latents");
  d = good;
  d.encoder_hidden_states = random_tensor({1, 5, 32}, 73);
  expect_error(*model, d, "encoder_hidden_states");
  d = good;
  d.pooled_projections = Tensor();
  expect_error(*model, d, "pooled_projections");
  d = good;
  d.timestep = {};
  expect_error(*model, d, "timestep");
  d = good;
  d.guidance = {};
  expect_error(*model, d, "guidance");
  d.guidance = {1.0f, 2.0f, 3.0f};
  expect_error(*model, d, "guidance");
  expect_error(*plain, good, "guidance");  // the plain model has no guidance embedder
  d = good;
  d.img_ids = grid_ids(4, 5);  // 20 ids for 24 tokens
  expect_error(*model, d, "img_ids");
  d.img_ids = Tensor::zeros({24, 2}, DType::F32);  // 2 axes for axes_dims_rope of 3
  expect_error(*model, d, "img_ids");
  d.img_ids = Tensor();
  expect_error(*model, d, "img_ids");
  d = good;
  d.txt_ids = Tensor::zeros({3, 5, 3}, DType::F32);  // 3 rows for a batch of 1
  expect_error(*model, d, "txt_ids");
  d.txt_ids = Tensor::zeros({6, 3}, DType::F32);
  expect_error(*model, d, "txt_ids");
  d = good;
  d.encoder_attention_mask = Tensor::full({1, 5}, 1.0f);
  expect_error(*model, d, "encoder_attention_mask");
}

}  // namespace
}  // namespace qdit
