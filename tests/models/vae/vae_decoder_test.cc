// AutoencoderKL decoder against the diffusers goldens (4- and 16-channel VAEs, the PixArt pipeline's
// VAE), plus batching, legacy attention names, and load-time errors for bad checkpoints/configs.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/registry.h"
#include "qdit/models/vae/autoencoder_kl.h"
#include "support/random.h"

namespace qdit {
namespace {

namespace fs = std::filesystem;
using models::VaeDecoder;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<VaeDecoder> load_vae(const std::string& dir) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<models::Model> m = models::load_model(folder, "vae");
  auto* v = dynamic_cast<VaeDecoder*>(m.get());
  if (!v) throw Error("not a VaeDecoder: " + dir);
  m.release();
  return std::unique_ptr<VaeDecoder>(v);
}

// z / sf + shift, as the SD3/Flux pipelines do before decoding.
Tensor unscale(const Tensor& z, float sf, float shift) {
  std::vector<float> v = z.to_vector();
  for (float& x : v) x = x / sf + shift;
  return Tensor::from_vector(v, z.shape());
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_vae_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void check_vae_case(const std::string& name, int64_t channels, float sf, float shift) {
  SCOPED_TRACE(name);
  auto vae = load_vae(golden(name + "/vae"));
  EXPECT_EQ(vae->class_name(), "AutoencoderKL");
  EXPECT_EQ(vae->latent_channels(), channels);
  EXPECT_FLOAT_EQ(vae->scaling_factor(), sf);
  EXPECT_FLOAT_EQ(vae->shift_factor(), shift);
  EXPECT_EQ(vae->downscale(), 2);
  EXPECT_GT(vae->weight_bytes(), 0u);

  auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  Tensor z = in->tensor("latents");
  expect_close(vae->decode(z), out->tensor("image"), kTol, "image");
  expect_close(vae->decode(unscale(z, vae->scaling_factor(), vae->shift_factor())),
               out->tensor("image_from_scaled_latents"), kTol, "image_from_scaled_latents");
}

TEST(AutoencoderKL, Golden4ChannelsWithQuantConv) { check_vae_case("vae_decode_4ch", 4, 0.13025f, 0.0f); }

TEST(AutoencoderKL, Golden16ChannelsWithShift) { check_vae_case("vae_decode_16ch", 16, 1.5305f, 0.0609f); }

TEST(AutoencoderKL, PixArtPipelineVae) {
  const std::string dir = golden("pipeline_pixart_sigma");
  io::PipelineFolder pipe = io::PipelineFolder::open(dir + "/pipeline");
  io::ModelFolder folder = pipe.open_component("vae");
  std::unique_ptr<VaeDecoder> vae = models::create_model_as<VaeDecoder>(
      folder.class_name(), models::ModelSource{"vae", &folder.config(), folder.weights(), {}});
  auto out = io::SafetensorsFile::open(dir + "/outputs.safetensors");
  // PixArt: decode(latents / sf), no shift.
  Tensor image = vae->decode(unscale(out->tensor("latents_final"), vae->scaling_factor(), 0.0f));
  Tensor ref = out->tensor("image_decoded");
  expect_close(image, ref, kTol, "image_decoded");

  // images_np = (x/2 + 0.5).clamp(0, 1) in NHWC.
  Tensor np_ref = out->tensor("images_np");
  ASSERT_EQ(np_ref.shape(), (Shape{1, 32, 32, 3}));
  float err = 0;
  for (int64_t y = 0; y < 32; ++y)
    for (int64_t x = 0; x < 32; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const float v = std::clamp(image.item_f32((c * 32 + y) * 32 + x) / 2 + 0.5f, 0.0f, 1.0f);
        err = std::max(err, std::fabs(v - np_ref.item_f32((y * 32 + x) * 3 + c)));
      }
  EXPECT_LE(err, kTol);
}

TEST(AutoencoderKL, BatchOfTwoMatchesSingleDecodes) {
  auto vae = load_vae(golden("vae_decode_16ch/vae"));
  auto in = io::SafetensorsFile::open(golden("vae_decode_16ch/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("vae_decode_16ch/outputs.safetensors"));
  Tensor z = in->tensor("latents");
  Tensor z2 = unscale(z, vae->scaling_factor(), vae->shift_factor());
  Tensor batch = kernels::concat({z, z2}, 0);
  Tensor img = vae->decode(batch);
  ASSERT_EQ(img.shape(), (Shape{2, 3, 32, 32}));
  expect_close(img.slice(0, 0, 1).contiguous(), out->tensor("image"), kTol, "batch[0]");
  expect_close(img.slice(0, 1, 2).contiguous(), out->tensor("image_from_scaled_latents"), kTol, "batch[1]");
  // Non-square latents go through the same path (the attention sees h*w tokens).
  Tensor wide = vae->decode(z.slice(3, 0, 12).contiguous());
  EXPECT_EQ(wide.shape(), (Shape{1, 3, 32, 24}));
}

// Copies the golden 4-channel VAE with a tensor renaming/editing hook into a temp safetensors file.
std::shared_ptr<io::SafetensorsWeights> edited_weights(
    const TempDir& tmp, const std::function<bool(std::string&, Tensor&)>& edit) {
  auto src = io::SafetensorsFile::open(golden("vae_decode_4ch/vae/diffusion_pytorch_model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const io::TensorRecord& r : src->records()) {
    std::string name = r.name;
    Tensor t = src->tensor(r);
    if (edit(name, t)) tensors.emplace_back(name, t);
  }
  const std::string path = tmp.path + "/weights.safetensors";
  io::save_safetensors(path, tensors);
  return io::SafetensorsWeights::open_file(path);
}

TEST(AutoencoderKL, LegacyAttentionNamesGiveTheSameImage) {
  TempDir tmp;
  const std::string att = "decoder.mid_block.attentions.0.";
  auto weights = edited_weights(tmp, [&](std::string& name, Tensor&) {
    for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"to_q.", "query."}, {"to_k.", "key."}, {"to_v.", "value."}, {"to_out.0.", "proj_attn."}})
      if (name.rfind(att + from, 0) == 0) name = att + to + name.substr(att.size() + from.size());
    return true;
  });
  ASSERT_TRUE(weights->contains(att + "proj_attn.weight"));
  ASSERT_FALSE(weights->contains(att + "to_q.weight"));
  io::JsonConfig cfg = io::JsonConfig::load(golden("vae_decode_4ch/vae/config.json"));
  models::AutoencoderKLDecoder vae(models::ModelSource{"vae", &cfg, weights, {}});
  auto in = io::SafetensorsFile::open(golden("vae_decode_4ch/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("vae_decode_4ch/outputs.safetensors"));
  expect_close(vae.decode(in->tensor("latents")), out->tensor("image"), kTol, "legacy names");
}

TEST(AutoencoderKL, BadWeightsNameMissingAndWrongShapeTensors) {
  TempDir tmp;
  auto weights = edited_weights(tmp, [](std::string& name, Tensor& t) {
    if (name == "decoder.up_blocks.1.resnets.0.conv_shortcut.weight") return false;  // drop
    if (name == "decoder.mid_block.attentions.0.to_k.weight") t = t.slice(0, 0, 8).contiguous();  // [8, 16]
    return true;
  });
  io::JsonConfig cfg = io::JsonConfig::load(golden("vae_decode_4ch/vae/config.json"));
  try {
    models::AutoencoderKLDecoder vae(models::ModelSource{"vae", &cfg, weights, {}});
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("decoder.mid_block.attentions.0.to_k.weight"), std::string::npos) << msg;
    // Unused encoder tensors are not an error and must not be what the message is about.
    EXPECT_EQ(msg.find("missing: encoder."), std::string::npos) << msg;
  }
}

TEST(AutoencoderKL, PostQuantConvRequiredOnlyWhenConfigured) {
  // The 16-channel weights have no post_quant_conv: turning use_post_quant_conv on must fail naming it.
  auto weights = io::SafetensorsWeights::open_file(golden("vae_decode_16ch/vae/diffusion_pytorch_model.safetensors"));
  ASSERT_FALSE(weights->contains("post_quant_conv.weight"));
  io::JsonConfig base = io::JsonConfig::load(golden("vae_decode_16ch/vae/config.json"));
  nlohmann::json j = base.raw();
  j["use_post_quant_conv"] = true;
  io::JsonConfig cfg = io::JsonConfig::from_json(j, "config.json");
  try {
    models::AutoencoderKLDecoder vae(models::ModelSource{"vae", &cfg, weights, {}});
    FAIL() << "expected a load error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("post_quant_conv.weight"), std::string::npos) << e.what();
  }
}

TEST(AutoencoderKL, ConfigErrorsNameTheKey) {
  auto weights = io::SafetensorsWeights::open_file(golden("vae_decode_4ch/vae/diffusion_pytorch_model.safetensors"));
  io::JsonConfig base = io::JsonConfig::load(golden("vae_decode_4ch/vae/config.json"));
  auto expect_error = [&](const char* key, nlohmann::json value, const std::string& needle) {
    nlohmann::json j = base.raw();
    j[key] = value;
    io::JsonConfig cfg = io::JsonConfig::from_json(j, "vae/config.json");
    try {
      models::AutoencoderKLDecoder vae(models::ModelSource{"vae", &cfg, weights, {}});
      ADD_FAILURE() << "expected an error for " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("up_block_types", {"UpDecoderBlock2D", "AttnUpDecoderBlock2D"}, "AttnUpDecoderBlock2D");
  expect_error("act_fn", "mish", "act_fn");
  expect_error("norm_num_groups", 3, "norm_num_groups");
  expect_error("latent_channels", "4", "latent_channels");
  // Changing a size changes every expected shape: the binder reports them.
  expect_error("block_out_channels", {8, 32}, "decoder.conv_in.weight: expected [32, 4, 3, 3]");
}

TEST(AutoencoderKL, DecodeRejectsWrongLatentShape) {
  auto vae = load_vae(golden("vae_decode_4ch/vae"));
  EXPECT_THROW(vae->decode(Tensor::zeros({1, 16, 8, 8}, DType::F32)), Error);
  EXPECT_THROW(vae->decode(Tensor::zeros({4, 8, 8}, DType::F32)), Error);
  EXPECT_THROW(vae->decode(Tensor()), Error);
}

}  // namespace
}  // namespace qdit
