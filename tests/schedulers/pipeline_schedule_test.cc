// The schedulers of every golden pipeline case, loaded from pipeline/scheduler/ and driven the
// way each pipeline drives them: the recorded step{i}.timestep must match timesteps(), and
// feeding step{i}.model_output must reproduce step{i}.latents_out at every step.
#include <gtest/gtest.h>

#include "golden_case.h"
#include "qdit/schedulers/scheduler_registry.h"

namespace qdit::schedulers {
namespace {

using testing::expect_close;
using testing::GoldenCase;

class PipelineSchedule : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineSchedule, TimestepsAndLatentsMatchRecordedSteps) {
  GoldenCase c(GetParam());
  auto s = load_scheduler(c.dir + "/pipeline/scheduler");
  const int n = c.meta.sub("call_kwargs").get<int>("num_inference_steps");
  Tensor latents = c.in("latents");

  // FluxPipeline passes sigmas = linspace(1, 1/N, N) and mu from the packed latent length;
  // the others call set_timesteps(N). Whether a pipeline does is a property of the pipeline.
  const bool flux = GetParam().rfind("pipeline_flux", 0) == 0;
  if (flux) {
    ASSERT_EQ(latents.dim(), 3);  // packed [B, HW/4, 4C]
    s->set_custom_sigmas(flux_default_sigmas(n), flux_mu(latents.size(1), *s));
  } else {
    s->set_timesteps(n);
  }
  ASSERT_EQ(s->num_inference_steps(), n);

  // Latents start as noise * init_noise_sigma (1.0 for both schedulers, so this is exact).
  EXPECT_EQ(s->init_noise_sigma(), 1.0f);
  for (int i = 0; i < n; ++i) {
    const std::string k = "step" + std::to_string(i);
    ASSERT_TRUE(c.outputs->contains(k + ".timestep")) << c.dir << " " << k;
    const float t_ref = c.out_vec(k + ".timestep")[0];
    EXPECT_NEAR(s->timesteps()[i], t_ref, 1e-6 * std::max(1.0f, std::fabs(t_ref))) << c.dir << " " << k;
    latents = s->step(c.out(k + ".model_output"), i, latents);
    expect_close(latents, c.out(k + ".latents_out"), 2e-6, c.dir + " " + k + ".latents_out");
  }
  EXPECT_FALSE(c.outputs->contains("step" + std::to_string(n) + ".timestep"));
}

INSTANTIATE_TEST_SUITE_P(Golden, PipelineSchedule, ::testing::ValuesIn(testing::golden_cases_with_prefix("pipeline_")),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(PipelineSchedule, AllFamiliesPresent) {
  // Guards against the parameterised test silently running on nothing.
  const auto cases = testing::golden_cases_with_prefix("pipeline_");
  for (const char* fam :
       {"pipeline_pixart", "pipeline_sd3", "pipeline_flux_dev", "pipeline_flux_schnell", "pipeline_auraflow"}) {
    EXPECT_TRUE(std::any_of(cases.begin(), cases.end(), [&](const std::string& n) { return n.rfind(fam, 0) == 0; }))
        << fam;
  }
}

}  // namespace
}  // namespace qdit::schedulers
