// SD3Transformer2DModel against the diffusers goldens: the transformer case and every denoising
// step's transformer call recorded by the two SD3 pipeline cases (CFG batch cat([negative,
// positive]) rebuilt from the prompt embeddings the pipeline used), in f32 and bf16.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/registry.h"
#include "qdit/models/sd3/sd3_transformer.h"
#include "support/random.h"

namespace qdit {
namespace {

using models::SD3Transformer;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<SD3Transformer> load(const std::string& dir, DType compute = DType::F32) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  nn::ModuleContext ctx;
  ctx.compute = compute;
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer", ctx);
  auto* t = dynamic_cast<SD3Transformer*>(m.get());
  if (!t) throw Error("not an SD3Transformer: " + dir);
  m.release();
  return std::unique_ptr<SD3Transformer>(t);
}

models::DiTInputs case_inputs(const io::SafetensorsFile& in) {
  models::DiTInputs d;
  d.latents = in.tensor("hidden_states");
  d.encoder_hidden_states = in.tensor("encoder_hidden_states");
  d.pooled_projections = in.tensor("pooled_projections");
  d.timestep = in.tensor("timestep").to_vector();
  return d;
}

TEST(SD3Golden, TransformerCase) {
  auto model = load(golden("transformer_sd3/transformer"));
  EXPECT_EQ(model->class_name(), "SD3Transformer2DModel");
  EXPECT_EQ(model->in_channels(), 16);
  EXPECT_EQ(model->out_channels(), 16);
  const models::SD3Config& c = model->config();
  EXPECT_EQ(c.inner_dim, 32);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.pos_embed_max_size, 16);
  EXPECT_EQ(c.pooled_projection_dim, 56);
  EXPECT_GT(model->weight_bytes(), 0u);

  auto in = io::SafetensorsFile::open(golden("transformer_sd3/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_sd3/outputs.safetensors"));
  const models::DiTInputs d = case_inputs(*in);
  expect_close(model->forward(d), out->tensor("sample"), kTol, "sample");
  // A second call (cached position crop) gives the same result.
  expect_close(model->forward(d), out->tensor("sample"), kTol, "sample (second call)");
}

// Every step of a pipeline case: transformer(step{i}.transformer_in, t, cat([neg, pos])).
void check_pipeline_steps(const std::string& name, const Tensor& neg, const Tensor& pos, const Tensor& neg_pooled,
                          const Tensor& pos_pooled) {
  SCOPED_TRACE(name);
  auto model = load(golden(name + "/pipeline/transformer"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  models::DiTInputs d;
  d.encoder_hidden_states = kernels::concat({neg, pos}, 0);
  d.pooled_projections = kernels::concat({neg_pooled, pos_pooled}, 0);
  int steps = 0;
  for (int i = 0; out->contains("step" + std::to_string(i) + ".transformer_in"); ++i, ++steps) {
    const std::string s = "step" + std::to_string(i) + ".";
    d.latents = out->tensor(s + "transformer_in");
    d.timestep = out->tensor(s + "transformer_timestep").to_vector();
    ASSERT_EQ(d.timestep.size(), 2u);
    expect_close(model->forward(d), out->tensor(s + "transformer_out"), kTol, s + "transformer_out");
  }
  EXPECT_EQ(steps, 3);  // 3 flow-match steps in both cases
}

TEST(SD3Golden, PipelineStepsFromPromptEmbeddings) {
  auto in = io::SafetensorsFile::open(golden("pipeline_sd3/inputs.safetensors"));
  check_pipeline_steps("pipeline_sd3", in->tensor("negative_prompt_embeds"), in->tensor("prompt_embeds"),
                       in->tensor("negative_pooled_prompt_embeds"), in->tensor("pooled_prompt_embeds"));
}

TEST(SD3Golden, PipelineStepsFromTextPrompt) {
  auto out = io::SafetensorsFile::open(golden("pipeline_sd3_text/outputs.safetensors"));
  check_pipeline_steps("pipeline_sd3_text", out->tensor("encode_prompt.negative_prompt_embeds"),
                       out->tensor("encode_prompt.prompt_embeds"),
                       out->tensor("encode_prompt.negative_pooled_prompt_embeds"),
                       out->tensor("encode_prompt.pooled_prompt_embeds"));
}

// bf16 compute (GEMMs and attention on bf16-rounded operands) stays near the f32 golden.
TEST(SD3Golden, Bf16ComputeStaysClose) {
  auto model = load(golden("transformer_sd3/transformer"), DType::BF16);
  auto in = io::SafetensorsFile::open(golden("transformer_sd3/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_sd3/outputs.safetensors"));
  const Tensor got = model->forward(case_inputs(*in)), ref = out->tensor("sample");
  expect_close(got, ref, 3e-2f, "bf16 sample");
  EXPECT_GT(testing::max_abs_diff(got, ref), 0.0f);  // bf16 rounding really happened
}

}  // namespace
}  // namespace qdit
