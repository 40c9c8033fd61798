// qdit quantize: a saved quantized pipeline reloads and generates bit-identically to quantizing
// the same components on load; sizes follow the bits; bad requests and damaged checkpoints fail
// with the file, module and part named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qdit/api/quantize_pipeline.h"
#include "qdit/core/error.h"
#include <nlohmann/json.hpp>

#include "qdit/io/safetensors.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::api {
namespace {

namespace fs = std::filesystem;

const std::string kCase = std::string(QDIT_TEST_DATA_DIR) + "/golden/pipeline_pixart_sigma_text";

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("qdit_quantize_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

pipelines::GenerateResult run(const std::string& model, const quant::PipelineQuantConfig& q) {
  pipelines::PipelineOptions opt;
  opt.quant = q;
  auto pipe = pipelines::load_pipeline(model, opt);
  pipelines::GenerateRequest req;
  req.prompt = "A small cafe, watercolor";
  req.negative_prompt = "blurry";
  req.steps = 2;
  req.width = req.height = 32;
  req.max_sequence_length = 32;
  req.latents = io::SafetensorsFile::open(kCase + "/inputs.safetensors")->tensor("latents");
  return pipe->generate(req);
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

class SaveReload : public ::testing::TestWithParam<std::string> {};

TEST_P(SaveReload, GeneratesBitIdenticallyToQuantizeOnLoad) {
  const auto cfg = quant::PipelineQuantConfig::parse_spec(GetParam() + "@transformer+text_encoder", {"proj_out"});
  const fs::path out = temp_dir(GetParam());
  auto rows = quantize_pipeline(kCase, out.string(), cfg);
  auto on_load = run(kCase, cfg);
  auto stored = run(out.string(), {});
  EXPECT_TRUE(identical(on_load.latents, stored.latents)) << GetParam();
  EXPECT_TRUE(identical(on_load.image, stored.image)) << GetParam();
  // The float pipeline differs: the quantized weights were really used.
  auto plain = run(kCase, {});
  EXPECT_FALSE(identical(plain.latents, stored.latents)) << GetParam();
  for (const auto& r : stored.components) {
    if (r.name == "transformer" || r.name == "text_encoder") {
      EXPECT_NE(r.quant.find("(stored)"), std::string::npos);
    }
  }
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Schemes, SaveReload,
                         ::testing::Values("int8wo", "int8dq", "qint8", "qfloat8", "float8wo", "float8dq", "qint4",
                                           "qint2", "int4wo", "int4dq", "nf4", "nf4_dq", "fp4", "llm_int8", "uint3wo",
                                           "fp6_e3m2"),
                         [](const auto& info) { return info.param; });

// Bytes of every stored tensor of one module (its parts) in a quantized component.
size_t module_bytes(const fs::path& file, const std::string& module) {
  auto f = io::SafetensorsFile::open(file.string());
  size_t n = 0;
  for (const auto& r : f->records())
    if (r.name.rfind(module + ".", 0) == 0) n += f->tensor(r).nbytes();
  return n;
}

TEST(Quantize, SizesFollowTheBits) {
  const fs::path out8 = temp_dir("size8"), out4 = temp_dir("size4");
  auto rows8 = quantize_pipeline(kCase, out8.string(), quant::PipelineQuantConfig::parse_spec("int8wo@text_encoder"));
  auto rows4 = quantize_pipeline(kCase, out4.string(), quant::PipelineQuantConfig::parse_spec("nf4@text_encoder"));
  for (const auto& rows : {rows8, rows4})
    for (const auto& r : rows) {
      if (r.name == "text_encoder") EXPECT_LT(r.resident_bytes, r.checkpoint_bytes);
      else EXPECT_EQ(r.checkpoint_bytes, r.resident_bytes) << r.name << " is copied unchanged";
    }
  // One f32 [64, 64] projection: 16 KiB in float; int8 codes + f32 row scales + zero points about
  // a quarter; nf4 codes + block absmax + table + state about half of that.
  const std::string q = "encoder.block.0.layer.0.SelfAttention.q";
  const size_t f32 = module_bytes(std::string(kCase) + "/pipeline/text_encoder/model.safetensors", q);
  const size_t b8 = module_bytes(out8 / "text_encoder/model.safetensors", q);
  const size_t b4 = module_bytes(out4 / "text_encoder/model.safetensors", q);
  EXPECT_EQ(f32, 64u * 64u * 4u);
  EXPECT_EQ(b8, 64u * 64u + 64u * 4u + 64u);
  EXPECT_LT(b4, b8 * 6 / 10);
  EXPECT_GT(b4, 64u * 64u / 2);
  fs::remove_all(out8);
  fs::remove_all(out4);
}

TEST(Quantize, RefusesBadRequests) {
  const fs::path out = temp_dir("bad");
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "x";
  try {
    quantize_pipeline(kCase, out.string(), quant::PipelineQuantConfig::parse_spec("int8wo"));
    FAIL() << "wrote into a non-empty folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  try {
    quantize_pipeline(kCase, temp_dir("bad2").string(), quant::PipelineQuantConfig::parse_spec("unet=int8wo"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'unet'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_pipeline(kCase, temp_dir("bad3").string(), {}), Error);
  fs::remove_all(out);
}

TEST(Quantize, DamagedPartIsReportedWithModuleAndPart) {
  const fs::path out = temp_dir("damaged");
  quantize_pipeline(kCase, out.string(), quant::PipelineQuantConfig::parse_spec("int8wo@transformer"));
  // Rewrite the transformer with one scale of the wrong shape.
  const std::string file = (out / "transformer/diffusion_pytorch_model.safetensors").string();
  auto f = io::SafetensorsFile::open(file);
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::string victim;
  for (const auto& r : f->records()) {
    Tensor t = f->tensor(r).clone();
    if (victim.empty() && r.name.find("._weight_scale") != std::string::npos) {
      victim = r.name;
      t = Tensor::zeros({t.size(0) + 1, 1}, DType::F32);
    }
    tensors.emplace_back(r.name, t);
  }
  f.reset();
  io::save_safetensors(file, tensors);
  ASSERT_FALSE(victim.empty());
  try {
    run(out.string(), {});
    FAIL() << "loaded a damaged checkpoint";
  } catch (const Error& e) {
    const std::string module = victim.substr(0, victim.find("._weight_scale"));
    EXPECT_NE(std::string(e.what()).find(module), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("_weight_scale"), std::string::npos) << e.what();
  }
  // Asking to quantize an already quantized component again is refused.
  try {
    run(out.string(), quant::PipelineQuantConfig::parse_spec("int8wo@transformer"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already quantized"), std::string::npos) << e.what();
  }
  fs::remove_all(out);
}

}  // namespace
}  // namespace qdit::api

namespace qdit::api {
namespace {

// Rewrites a component's quantization_config as diffusers' own quantizers serialize it.
void write_library_config(const fs::path& component, const nlohmann::json& qc) {
  std::ifstream in(component / "config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["quantization_config"] = qc;
  std::ofstream(component / "config.json") << cfg.dump(2);
}

TEST(EcosystemCheckpoints, DiffusersBitsandbytesAndQuantoConfigsLoad) {
  struct Case {
    std::string scheme;
    nlohmann::json config;
  };
  const std::vector<Case> cases = {
      {"nf4_dq", {{"quant_method", "bitsandbytes"}, {"_load_in_4bit", true}, {"load_in_4bit", true},
                  {"load_in_8bit", false}, {"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true},
                  {"bnb_4bit_compute_dtype", "float32"}, {"bnb_4bit_quant_storage", "uint8"},
                  {"llm_int8_skip_modules", nullptr}, {"llm_int8_threshold", 6.0},
                  {"llm_int8_enable_fp32_cpu_offload", false}, {"llm_int8_has_fp16_weight", false}}},
      {"llm_int8", {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}, {"load_in_4bit", false},
                    {"llm_int8_threshold", 6.0}, {"llm_int8_skip_modules", nullptr}}},
      {"qint8", {{"quant_method", "quanto"}, {"weights_dtype", "int8"}, {"modules_to_not_convert", nullptr}}},
      {"qint4", {{"quant_method", "quanto"}, {"weights_dtype", "int4"}, {"modules_to_not_convert", nullptr}}},
  };
  for (const auto& c : cases) {
    const fs::path out = temp_dir("eco_" + c.scheme);
    quantize_pipeline(kCase, out.string(), quant::PipelineQuantConfig::parse_spec(c.scheme + "@transformer"));
    auto qdit_format = run(out.string(), {});
    write_library_config(out / "transformer", c.config);
    auto library_format = run(out.string(), {});
    EXPECT_TRUE(identical(qdit_format.latents, library_format.latents)) << c.scheme;
    for (const auto& r : library_format.components)
      if (r.name == "transformer") {
        EXPECT_EQ(r.quant, c.scheme + " (stored)");
      }
    fs::remove_all(out);
  }
  // An unsupported library is refused by name.
  const fs::path out = temp_dir("eco_bad");
  quantize_pipeline(kCase, out.string(), quant::PipelineQuantConfig::parse_spec("int8wo@transformer"));
  write_library_config(out / "transformer", {{"quant_method", "gguf"}});
  try {
    run(out.string(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gguf'"), std::string::npos) << e.what();
  }
  fs::remove_all(out);
}

}  // namespace
}  // namespace qdit::api
