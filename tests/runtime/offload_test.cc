// Every offload mode computes exactly what keeping everything resident computes: the same latents
// and image, bit for bit, for every pipeline family, with quantization on load, with a folder
// written by `qdit quantize`, with several group sizes, and across repeated runs of one pipeline
// (the streamed stack is rebuilt for each pass).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

#include "qdit/api/quantize_pipeline.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::pipelines {
namespace {

namespace fs = std::filesystem;

std::string golden(const std::string& name) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + name; }

GenerateRequest request() {
  GenerateRequest req;
  req.prompt = "A small cafe at the corner, watercolor";
  req.negative_prompt = "blurry";
  req.steps = 2;
  req.max_sequence_length = 24;
  return req;
}

PipelineOptions options(Offload offload, int group = 1, const std::string& quant = "") {
  PipelineOptions opt;
  opt.offload = offload;
  opt.offload_group = group;
  if (!quant.empty()) opt.quant = quant::PipelineQuantConfig::parse_spec(quant);
  return opt;
}

bool identical(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

void expect_same_as_resident(const std::string& model, const std::string& quant = "") {
  const GenerateResult ref = load_pipeline(model, options(Offload::None, 1, quant))->generate(request());
  struct Mode {
    Offload offload;
    int group;
  };
  for (Mode m : {Mode{Offload::Model, 1}, Mode{Offload::Blocks, 1}, Mode{Offload::Blocks, 2}, Mode{Offload::Blocks, 3}}) {
    SCOPED_TRACE(std::string(offload_name(m.offload)) + " group " + std::to_string(m.group) + " quant '" + quant + "'");
    const GenerateResult r = load_pipeline(model, options(m.offload, m.group, quant))->generate(request());
    EXPECT_TRUE(identical(ref.latents, r.latents));
    EXPECT_TRUE(identical(ref.image, r.image));
  }
}

class Families : public ::testing::TestWithParam<const char*> {};

TEST_P(Families, EveryOffloadModeIsBitIdentical) { expect_same_as_resident(golden(GetParam())); }

INSTANTIATE_TEST_SUITE_P(Offload, Families,
                         ::testing::Values("pipeline_pixart_sigma_text", "pipeline_sd3_text", "pipeline_flux_dev_text",
                                           "pipeline_auraflow_text"));

class Quantized : public ::testing::TestWithParam<const char*> {};

TEST_P(Quantized, EveryOffloadModeIsBitIdentical) {
  expect_same_as_resident(golden("pipeline_pixart_sigma_text"), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Offload, Quantized,
                         ::testing::Values("int8wo", "int8dq", "nf4", "qint4", "text_encoder=int4wo,transformer=int8dq"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(OffloadQuantizedFolder, EveryOffloadModeIsBitIdentical) {
  const fs::path out = fs::temp_directory_path() / ("qdit_offload_test_" + std::to_string(::getpid()));
  fs::remove_all(out);
  api::quantize_pipeline(golden("pipeline_sd3_text"), out.string(),
                         quant::PipelineQuantConfig::parse_spec("transformer=int8dq,text_encoder_3=int8dq,text_encoder=nf4"));
  expect_same_as_resident(out.string());
  fs::remove_all(out);
}

TEST(OffloadBlocks, RepeatedRunsOfOnePipelineAgree) {
  auto streamed = load_pipeline(golden("pipeline_flux_dev_text"), options(Offload::Blocks, 1));
  const GenerateResult a = streamed->generate(request());
  const GenerateResult b = streamed->generate(request());
  EXPECT_TRUE(identical(a.latents, b.latents));
  EXPECT_TRUE(identical(a.image, b.image));
}

TEST(OffloadNone, LoadsEverythingUpFrontAndReportsIt) {
  auto pipe = load_pipeline(golden("pipeline_pixart_sigma_text"), options(Offload::None));
  const GenerateResult r = pipe->generate(request());
  ASSERT_FALSE(r.phases.empty());
  EXPECT_EQ(r.phases.front().name, "loading");
  ASSERT_EQ(r.components.size(), 3u);  // text encoder, transformer, VAE: all loaded once
  for (const ComponentStats& c : r.components) EXPECT_EQ(c.residency, "whole run");
  // A second run loads nothing.
  const GenerateResult again = pipe->generate(request());
  EXPECT_NE(again.phases.front().name, "loading");
  EXPECT_TRUE(identical(r.image, again.image));
}

TEST(OffloadBlocks, StreamedComponentsSayHow) {
  const GenerateResult r = load_pipeline(golden("pipeline_pixart_sigma_text"), options(Offload::Blocks, 2))->generate(request());
  for (const ComponentStats& c : r.components)
    EXPECT_EQ(c.residency, c.name == "vae" ? "per phase" : "blocks streamed (2 per group)") << c.name;
}

TEST(OffloadBlocks, BadCheckpointFailsWhenTheModelIsLoaded) {
  // Streamed blocks are checked when their model is loaded: a transformer whose checkpoint lacks
  // a block its config asks for fails with the bind report naming the tensors, before any step.
  const fs::path out = fs::temp_directory_path() / ("qdit_offload_bad_" + std::to_string(::getpid()));
  fs::remove_all(out);
  fs::copy(golden("pipeline_pixart_sigma_text") + "/pipeline", out, fs::copy_options::recursive);
  const std::string cfg = (out / "transformer" / "config.json").string();
  std::string text;
  {
    std::ifstream in(cfg);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = text.find("\"num_layers\": 2");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "\"num_layers\": 3");  // two blocks in the checkpoint, three in the config
  std::ofstream(cfg) << text;
  int steps_seen = 0;
  RunHooks hooks;
  hooks.progress = [&](const std::string& phase, int done, int) { steps_seen += phase == "denoising" && done > 0; };
  try {
    load_pipeline(out.string(), options(Offload::Blocks, 1))->generate(request(), hooks);
    ADD_FAILURE() << "expected a bind error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("does not match its config"), std::string::npos) << what;
    EXPECT_NE(what.find("transformer_blocks.2.attn1.to_q.weight"), std::string::npos) << what;
  }
  EXPECT_EQ(steps_seen, 0);
  fs::remove_all(out);
}

}  // namespace
}  // namespace qdit::pipelines
