// AuraFlowTransformer2DModel against the diffusers goldens: the transformer case (loaded through
// load_model and run like `qdit check`), and every denoising step's transformer call recorded by
// the two AuraFlow pipeline cases (CFG batch cat([negative, positive]) rebuilt from the prompt
// embeddings the pipeline used), in f32 and bf16.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/auraflow/auraflow_transformer.h"
#include "qdit/models/registry.h"
#include "support/random.h"

namespace qdit {
namespace {

using models::AuraFlowTransformer;
using testing::expect_close;

constexpr float kTol = 1e-4f;

std::string golden(const std::string& rel) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + rel; }

std::unique_ptr<AuraFlowTransformer> load(const std::string& dir, DType compute = DType::F32) {
  io::ModelFolder folder = io::ModelFolder::open(dir);
  nn::ModuleContext ctx;
  ctx.compute = compute;
  return models::create_model_as<AuraFlowTransformer>(
      "AuraFlowTransformer2DModel", {"transformer", &folder.config(), folder.weights(), ctx});
}

models::DiTInputs case_inputs(const io::SafetensorsFile& in) {
  models::DiTInputs d;
  d.latents = in.tensor("hidden_states");
  d.encoder_hidden_states = in.tensor("encoder_hidden_states");
  d.timestep = in.tensor("timestep").to_vector();
  return d;
}

TEST(AuraFlowGolden, TransformerCase) {
  // Through load_model, as `qdit check` does: the config's _class_name picks the model.
  io::ModelFolder folder = io::ModelFolder::open(golden("transformer_auraflow/transformer"));
  std::unique_ptr<models::Model> m = models::load_model(folder, "transformer");
  auto* model = dynamic_cast<AuraFlowTransformer*>(m.get());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->class_name(), "AuraFlowTransformer2DModel");
  EXPECT_EQ(model->in_channels(), 4);
  EXPECT_EQ(model->out_channels(), 4);
  const models::AuraFlowConfig& c = model->config();
  EXPECT_EQ(c.inner_dim, 32);
  EXPECT_EQ(c.num_mmdit_layers, 1);
  EXPECT_EQ(c.num_single_dit_layers, 2);
  EXPECT_EQ(c.pos_embed_max_size, 64);
  EXPECT_EQ(c.pos_grid, 8);
  EXPECT_GT(model->weight_bytes(), 0u);

  auto in = io::SafetensorsFile::open(golden("transformer_auraflow/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_auraflow/outputs.safetensors"));
  const models::DiTInputs d = case_inputs(*in);
  expect_close(model->forward(d), out->tensor("sample"), kTol, "sample");
  // A second call (cached position crop) gives the same result.
  expect_close(model->forward(d), out->tensor("sample"), kTol, "sample (second call)");
}

// Every step of a pipeline case: transformer(step{i}.transformer_in, t / 1000, cat([neg, pos])).
void check_pipeline_steps(const std::string& name, const Tensor& neg, const Tensor& pos) {
  SCOPED_TRACE(name);
  auto model = load(golden(name + "/pipeline/transformer"));
  auto out = io::SafetensorsFile::open(golden(name + "/outputs.safetensors"));
  models::DiTInputs d;
  d.encoder_hidden_states = kernels::concat({neg, pos}, 0);
  int steps = 0;
  for (int i = 0; out->contains("step" + std::to_string(i) + ".transformer_in"); ++i, ++steps) {
    const std::string s = "step" + std::to_string(i) + ".";
    d.latents = out->tensor(s + "transformer_in");
    d.timestep = out->tensor(s + "transformer_timestep").to_vector();
    ASSERT_EQ(d.timestep.size(), 2u);
    EXPECT_LE(d.timestep[0], 1.0f);  // the pipeline passes t / 1000
    expect_close(model->forward(d), out->tensor(s + "transformer_out"), kTol, s + "transformer_out");
  }
  EXPECT_EQ(steps, 3);
}

TEST(AuraFlowGolden, PipelineStepsFromPromptEmbeddings) {
  auto in = io::SafetensorsFile::open(golden("pipeline_auraflow/inputs.safetensors"));
  check_pipeline_steps("pipeline_auraflow", in->tensor("negative_prompt_embeds"), in->tensor("prompt_embeds"));
}

TEST(AuraFlowGolden, PipelineStepsFromTextPrompt) {
  auto out = io::SafetensorsFile::open(golden("pipeline_auraflow_text/outputs.safetensors"));
  check_pipeline_steps("pipeline_auraflow_text", out->tensor("encode_prompt.negative_prompt_embeds"),
                       out->tensor("encode_prompt.prompt_embeds"));
}

// bf16 compute (GEMMs and attention on bf16-rounded operands) stays near the f32 golden.
TEST(AuraFlowGolden, Bf16ComputeStaysClose) {
  auto model = load(golden("transformer_auraflow/transformer"), DType::BF16);
  auto in = io::SafetensorsFile::open(golden("transformer_auraflow/inputs.safetensors"));
  auto out = io::SafetensorsFile::open(golden("transformer_auraflow/outputs.safetensors"));
  const Tensor got = model->forward(case_inputs(*in)), ref = out->tensor("sample");
  expect_close(got, ref, 3e-2f, "bf16 sample");
  EXPECT_GT(testing::max_abs_diff(got, ref), 0.0f);  // bf16 rounding really happened
}

}  // namespace
}  // namespace qdit
