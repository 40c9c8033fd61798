// FluxTransformer2DModel against the diffusers goldens: both transformer cases (fed exactly as
// `qdit check` feeds them: batched [B, S, 3] ids, sigma timesteps, guidance) and every denoising
// step's transformer call recorded by the four Flux pipeline cases (fed as the pipeline feeds
// them: [S, 3] ids built from the packed grid), in f32 and bf16.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/flux/flux_transformer.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

using models::FluxTransformer;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<FluxTransformer> load(const std::string& dir, DType compute = DType::F32) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  nn::ModuleContext ctx;
  ctx.compute = compute;
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer", ctx);
  auto* t = dynamic_cast<FluxTransformer*>(m.get());
  if (!t) throw Error("not a FluxTransformer: " + dir);
  m.release();
  return std::unique_ptr<FluxTransformer>(t);
}

// The argument names of transformer(hidden_states, encoder_hidden_states, pooled_projections,
// timestep, img_ids, txt_ids, guidance).
models::DiTInputs case_inputs(const io::SafetensorsFile& in) {
  models::DiTInputs d;
  d.latents = in.tensor("hidden_states");
  d.encoder_hidden_states = in.tensor("encoder_hidden_states");
  d.pooled_projections = in.tensor("pooled_projections");
  d.timestep = in.tensor("timestep").to_vector();
  if (in.contains("guidance")) d.guidance = in.tensor("guidance").to_vector();
  d.img_ids = in.tensor("img_ids");
  d.txt_ids = in.tensor("txt_ids");
  return d;
}

void check_transformer_case(const std::string& name, bool guidance) {
  SCOPED_TRACE(name);
  auto model = load(golden(name + "/transformer"));
  EXPECT_EQ(model->class_name(), "FluxTransformer2DModel");
  EXPECT_EQ(model->in_channels(), 64);
  EXPECT_EQ(model->out_channels(), 64);
  const models::FluxConfig& c = model->config();
  EXPECT_EQ(c.inner_dim, 32);
  EXPECT_EQ(c.num_layers, 1);
  EXPECT_EQ(c.num_single_layers, 2);
  EXPECT_EQ(c.guidance_embeds, guidance);
  EXPECT_EQ(c.axes_dims_rope, (std::vector<int64_t>{4, 6, 6}));
  EXPECT_GT(model->weight_bytes(), 0u);

  auto in = io::SafetensorsFile::open(golden(name + "/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  const models::DiTInputs d = case_inputs(*in);
  ASSERT_EQ(d.guidance.size(), guidance ? 2u : 0u);
  expect_close(model->forward(d), out->tensor("sample"), kTol, "sample");
}

TEST(FluxGolden, TransformerCaseWithGuidance) { check_transformer_case("transformer_flux_guidance", true); }
TEST(FluxGolden, TransformerCaseWithoutGuidance) { check_transformer_case("transformer_flux_noguidance", false); }

// Every step of a pipeline case: transformer(step{i}.transformer_in, sigma, guidance, ids).
void check_pipeline_steps(const std::string& name, const Tensor& embeds, const Tensor& pooled, bool guidance) {
  SCOPED_TRACE(name);
  auto model = load(golden(name + "/pipeline/transformer"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  models::DiTInputs d;
  d.encoder_hidden_states = embeds;
  d.pooled_projections = pooled;
  // What FluxPipeline builds: zero text ids, (0, row, col) over the packed 8x8 grid.
  d.txt_ids = Tensor::zeros({embeds.size(1), 3}, DType::F32);
  d.img_ids = Tensor::zeros({64, 3}, DType::F32);
  for (int64_t i = 0; i < 64; ++i) {
    d.img_ids.data<float>()[i * 3 + 1] = static_cast<float>(i / 8);
    d.img_ids.data<float>()[i * 3 + 2] = static_cast<float>(i % 8);
  }
  int steps = 0;
  for (int i = 0; out->contains("step" + std::to_string(i) + ".transformer_in"); ++i, ++steps) {
    const std::string s = "step" + std::to_string(i) + ".";
    d.latents = out->tensor(s + "transformer_in");
    d.timestep = out->tensor(s + "transformer_timestep").to_vector();
    ASSERT_EQ(out->contains(s + "transformer_guidance"), guidance);
    if (guidance) d.guidance = out->tensor(s + "transformer_guidance").to_vector();
    expect_close(model->forward(d), out->tensor(s + "transformer_out"), kTol, s + "transformer_out");
  }
  EXPECT_EQ(steps, 3);
}

TEST(FluxGolden, PipelineStepsFromPromptEmbeddings) {
  for (const char* name : {"pipeline_flux_dev", "pipeline_flux_schnell"}) {
    auto in = io::SafetensorsFile::open(golden(std::string(name) + "/inputs.safetensors"));
    check_pipeline_steps(name, in->tensor("prompt_embeds"), in->tensor("pooled_prompt_embeds"),
                         std::string(name) == "pipeline_flux_dev");
  }
}

TEST(FluxGolden, PipelineStepsFromTextPrompt) {
  for (const char* name : {"pipeline_flux_dev_text", "pipeline_flux_schnell_text"}) {
    auto out = io::SafetensorsFile::open(golden(std::string(name) + "/outputs.safetensors"));
    check_pipeline_steps(name, out->tensor("encode_prompt.prompt_embeds"),
                         out->tensor("encode_prompt.pooled_prompt_embeds"),
                         std::string(name) == "pipeline_flux_dev_text");
  }
}

// bf16 compute (GEMMs and attention on bf16-rounded operands) stays near the f32 golden.
TEST(FluxGolden, Bf16ComputeStaysClose) {
  for (const char* name : {"transformer_flux_guidance", "transformer_flux_noguidance"}) {
    SCOPED_TRACE(name);
    auto model = load(golden(std::string(name) + "/transformer"), DType::BF16);
    auto in = io::SafetensorsFile::open(golden(std::string(name) + "/inputs.safetensors"));
    auto out = io::SafetensorsFile::open(golden(std::string(name) + "/outputs.safetensors"));
    const Tensor got = model->forward(case_inputs(*in)), ref = out->tensor("sample");
    expect_close(got, ref, 2e-2f, "bf16 sample");
    EXPECT_GT(testing::max_abs_diff(got, ref), 0.0f);  // bf16 rounding really happened
  }
}

}  // namespace
}  // namespace qdit
