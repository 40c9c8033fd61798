// PixArt transformer beyond the goldens: non-square latents and config variants (size
// conditions, affine norms, erf GELU, no caption projection, patch 1) against the plain reference;
// batching; load-time errors for bad checkpoints and configs; input validation.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "pixart_reference.h"
#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/pixart/pixart_transformer.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::PixArtTransformer;
using testing::expect_close;
using testing::random_tensor;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_pixart_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<PixArtTransformer> load(const std::string& dir) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer");
  auto* t = dynamic_cast<PixArtTransformer*>(m.get());
  if (!t) throw Error("not a PixArtTransformer: " + dir);
  m.release();
  return std::unique_ptr<PixArtTransformer>(t);
}

// Runs `fn` and returns the qdit::Error message ("" when nothing was thrown).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Tensor mask_tensor(const std::vector<float>& v, int64_t b, int64_t l) {
  Tensor m = Tensor::from_vector(v, {b, l});
  return m.to(DType::I64);
}

// Non-square 12x20 latents (6x10 patch grid on an 8-sample model: the position table is rebuilt
// for a new, non-square size), padded mask rows, two different timesteps.
TEST(PixArtModel, NonSquareLatentsMatchReference) {
  const std::string dir = golden("transformer_pixart_sigma/transformer");
  auto model = load(dir);
  io::ModelFolder folder = io::ModelFolder::open(dir);
  testing::pixart::RefInputs r;
  r.latents = random_tensor({2, 4, 12, 20}, 11, -2.0f, 2.0f);
  r.encoder_hidden_states = random_tensor({2, 7, 64}, 12);
  r.mask = mask_tensor({1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0}, 2, 7);
  r.timestep = {999.0f, 37.0f};
  const Tensor ref = testing::pixart::reference_forward(*folder.weights(), model->config(), r);

  models::DiTInputs d;
  d.latents = r.latents;
  d.encoder_hidden_states = r.encoder_hidden_states;
  d.encoder_attention_mask = r.mask;
  d.timestep = r.timestep;
  const Tensor got = model->forward(d);
  ASSERT_EQ(got.shape(), (Shape{2, 8, 12, 20}));
  expect_close(got, ref, kTol, "non-square");

  // Transposed latents (20x12) are a different problem; the reference follows there too.
  r.latents = random_tensor({2, 4, 20, 12}, 13, -2.0f, 2.0f);
  d.latents = r.latents;
  expect_close(model->forward(d), testing::pixart::reference_forward(*folder.weights(), model->config(), r), kTol,
               "transposed");
}

// Text padding after every item's last kept token is cut before the caption projection; the result
// still follows the reference (which runs every token, masked). An item that keeps no token
// spreads its softmax over all the masked ones: then nothing may be cut.
TEST(PixArtModel, TrailingTextPaddingCutMatchesReference) {
  const std::string dir = golden("transformer_pixart_sigma/transformer");
  auto model = load(dir);
  io::ModelFolder folder = io::ModelFolder::open(dir);
  for (const std::vector<float>& m : {std::vector<float>{1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0},   // cut to 3
                                      std::vector<float>{1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1},   // none cut, masked inside
                                      std::vector<float>{0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0}}) {  // item 0 keeps none
    testing::pixart::RefInputs r;
    r.latents = random_tensor({2, 4, 8, 8}, 31, -2.0f, 2.0f);
    r.encoder_hidden_states = random_tensor({2, 6, 64}, 32);
    r.mask = mask_tensor(m, 2, 6);
    r.timestep = {400.0f, 40.0f};
    models::DiTInputs d;
    d.latents = r.latents;
    d.encoder_hidden_states = r.encoder_hidden_states;
    d.encoder_attention_mask = r.mask;
    d.timestep = r.timestep;
    expect_close(model->forward(d), testing::pixart::reference_forward(*folder.weights(), model->config(), r), kTol,
                 "mask starting " + std::to_string(m[0]) + std::to_string(m[1]) + std::to_string(m[2]));
  }
}

// One timestep for the whole batch broadcasts; each batch row is independent of the others; a
// float mask equals the integer one; no mask equals an all-ones mask.
TEST(PixArtModel, BatchingTimestepAndMaskForms) {
  auto model = load(golden("transformer_pixart_sigma/transformer"));
  models::DiTInputs d;
  d.latents = random_tensor({2, 4, 8, 6}, 21);
  d.encoder_hidden_states = random_tensor({2, 5, 64}, 22);
  d.encoder_attention_mask = mask_tensor({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, 2, 5);
  d.timestep = {500.0f, 500.0f};
  const Tensor both = model->forward(d);

  models::DiTInputs one = d;
  one.timestep = {500.0f};
  expect_close(model->forward(one), both, kTol, "broadcast timestep");

  models::DiTInputs row1;
  row1.latents = d.latents.slice(0, 1, 2).contiguous();
  row1.encoder_hidden_states = d.encoder_hidden_states.slice(0, 1, 2).contiguous();
  row1.timestep = {500.0f};
  // Row 1's mask is all ones: no mask at all must give the same result.
  expect_close(model->forward(row1), both.slice(0, 1, 2).contiguous(), kTol, "row 1 alone, no mask");

  models::DiTInputs fmask = d;
  fmask.encoder_attention_mask = d.encoder_attention_mask.to(DType::F32);
  expect_close(model->forward(fmask), both, kTol, "float mask");

  // The padded keys really are masked: changing them in row 0 changes nothing.
  models::DiTInputs padded = d;
  padded.encoder_hidden_states = d.encoder_hidden_states.clone();
  float* e = padded.encoder_hidden_states.data<float>();
  for (int64_t j = 3 * 64; j < 5 * 64; ++j) e[j] += 5.0f;
  expect_close(model->forward(padded), both, kTol, "padded keys ignored");
}

// A PixArt-Alpha-like config: sample_size 128 with use_additional_conditions unset (-> true) and
// interpolation_scale unset (-> 2), D = 24, patch 1, affine norms, erf GELU, no caption
// projection (cross_attention_dim 20 != D), out_channels null (-> in_channels), no qkv bias.
TEST(PixArtModel, SizeConditionsAndConfigVariantsMatchReference) {
  TempDir tmp;
  const nlohmann::json cfg_json = {{"_class_name", "PixArtTransformer2DModel"},
                                   {"num_attention_heads", 2},
                                   {"attention_head_dim", 12},
                                   {"in_channels", 4},
                                   {"out_channels", nullptr},
                                   {"num_layers", 2},
                                   {"sample_size", 128},
                                   {"patch_size", 1},
                                   {"cross_attention_dim", 20},
                                   {"caption_channels", nullptr},
                                   {"attention_bias", false},
                                   {"activation_fn", "gelu"},
                                   {"norm_elementwise_affine", true},
                                   {"norm_eps", 1e-5},
                                   {"interpolation_scale", nullptr},
                                   {"use_additional_conditions", nullptr}};
  const models::PixArtConfig c =
      models::PixArtConfig::from_json(io::JsonConfig::from_json(cfg_json, "variant config.json"));
  EXPECT_TRUE(c.use_additional_conditions);
  EXPECT_FLOAT_EQ(c.interpolation_scale, 2.0f);
  EXPECT_EQ(c.out_channels, 4);
  EXPECT_EQ(c.caption_channels, 0);
  EXPECT_EQ(c.ff_act, kernels::Activation::GeluErf);
  testing::pixart::write_model_folder(tmp.path, cfg_json.dump(), testing::pixart::checkpoint_shapes(c), 31);
  auto model = load(tmp.path);

  testing::pixart::RefInputs r;
  r.latents = random_tensor({2, 4, 6, 10}, 32);
  r.encoder_hidden_states = random_tensor({2, 3, 20}, 33);
  r.mask = mask_tensor({1, 1, 0, 1, 1, 1}, 2, 3);
  r.timestep = {250.0f, 999.0f};
  r.resolution = {48.0f, 80.0f, 1024.0f, 768.0f};
  r.aspect_ratio = {0.6f, 1024.0f / 768.0f};
  io::ModelFolder folder = io::ModelFolder::open(tmp.path);
  const Tensor ref = testing::pixart::reference_forward(*folder.weights(), c, r);

  models::DiTInputs d;
  d.latents = r.latents;
  d.encoder_hidden_states = r.encoder_hidden_states;
  d.encoder_attention_mask = r.mask;
  d.timestep = r.timestep;
  models::PixArtSizeConditions sizes{r.resolution, r.aspect_ratio};
  const Tensor got = model->forward(d, &sizes);
  ASSERT_EQ(got.shape(), (Shape{2, 4, 6, 10}));
  expect_close(got, ref, kTol, "variant");

  // The size conditions matter, and the plain interface refuses to guess them.
  sizes.resolution[0] = 64.0f;
  EXPECT_GT(testing::max_abs_diff(model->forward(d, &sizes), got), 1e-3f);
  EXPECT_NE(error_of([&] { model->forward(d); }).find("use_additional_conditions"), std::string::npos);
  sizes.aspect_ratio.pop_back();
  EXPECT_NE(error_of([&] { model->forward(d, &sizes); }).find("aspect_ratio"), std::string::npos);
}

// A checkpoint with a missing and a mis-shaped tensor fails at load with both named.
TEST(PixArtModel, BadWeightsReportEveryProblem) {
  const std::string dir = golden("transformer_pixart_sigma/transformer");
  io::ModelFolder folder = io::ModelFolder::open(dir);
  const models::PixArtConfig c = models::PixArtConfig::from_json(folder.config());
  auto shapes = testing::pixart::checkpoint_shapes(c);
  ASSERT_EQ(shapes.size(), folder.weights()->names().size());  // the generator knows every tensor
  shapes.erase("transformer_blocks.1.attn2.to_k.weight");
  shapes["proj_out.weight"] = {32, 31};
  shapes["pos_embed.proj.weight"] = {32, 4, 3, 3};
  TempDir tmp;
  std::ifstream cfg(dir + "/config.json");
  const std::string cfg_text((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  testing::pixart::write_model_folder(tmp.path, cfg_text, shapes, 41);
  const std::string msg = error_of([&] { load(tmp.path); });
  EXPECT_NE(msg.find("transformer_blocks.1.attn2.to_k.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("proj_out.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pos_embed.proj.weight"), std::string::npos) << msg;

  // The generator's full set loads (so the errors above come from the edits alone).
  TempDir ok;
  testing::pixart::write_model_folder(ok.path, cfg_text, testing::pixart::checkpoint_shapes(c), 42);
  EXPECT_NO_THROW(load(ok.path));
}

TEST(PixArtModel, UnsupportedConfigsAreRejected) {
  io::ModelFolder folder = io::ModelFolder::open(golden("transformer_pixart_sigma/transformer"));
  const nlohmann::json base = folder.config().raw();
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base;
    j[key] = std::move(value);
    const std::string msg =
        error_of([&] { models::PixArtConfig::from_json(io::JsonConfig::from_json(j, "bad/config.json")); });
    EXPECT_NE(msg.find(needle), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find("bad/config.json"), std::string::npos) << msg;
  };
  expect_error("norm_type", "ada_norm_zero", "norm_type");
  expect_error("activation_fn", "geglu", "activation_fn");
  expect_error("attention_type", "gated", "attention_type");
  expect_error("cross_attention_dim", 48, "cross_attention_dim");
  expect_error("cross_attention_dim", nullptr, "cross_attention_dim");
  expect_error("num_embeds_ada_norm", nullptr, "num_embeds_ada_norm");
  expect_error("use_additional_conditions", true, "divisible by 3");
  expect_error("attention_head_dim", 15, "divisible by 4");
  expect_error("patch_size", 0, "patch_size");
  expect_error("num_layers", "2", "num_layers");
}

TEST(PixArtModel, BadInputsAreRejected) {
  auto model = load(golden("transformer_pixart_sigma/transformer"));
  models::DiTInputs good;
  good.latents = random_tensor({1, 4, 8, 8}, 51);
  good.encoder_hidden_states = random_tensor({1, 5, 64}, 52);
  good.timestep = {10.0f};
  ASSERT_NO_THROW(model->forward(good));
  auto expect_error = [&](models::DiTInputs d, const std::string& needle) {
    const std::string msg = error_of([&] { model->forward(d); });
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  models::DiTInputs d = good;
  d.latents = random_tensor({1, 3, 8, 8}, 53);
  expect_error(d, "latents");
  d.latents = random_tensor({1, 4, 9, 8}, 53);
  expect_error(d, "patch_size");
  d.latents = Tensor();
  expect_error(d, "latents");
  d = good;
  d.encoder_hidden_states = random_tensor({1, 5, 32}, 54);
  expect_error(d, "encoder_hidden_states");
  d.encoder_hidden_states = random_tensor({2, 5, 64}, 54);
  expect_error(d, "encoder_hidden_states");
  d = good;
  d.encoder_attention_mask = mask_tensor({1, 1, 1, 1}, 1, 4);
  expect_error(d, "encoder_attention_mask");
  d = good;
  d.timestep = {};
  expect_error(d, "timestep");
  d.latents = random_tensor({2, 4, 8, 8}, 55);
  d.encoder_hidden_states = random_tensor({2, 5, 64}, 56);
  d.timestep = {1.0f, 2.0f, 3.0f};
  expect_error(d, "timestep");
}

}  // namespace
}  // namespace qdit
