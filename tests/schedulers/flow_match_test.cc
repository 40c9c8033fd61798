// FlowMatchEulerDiscreteScheduler against the golden SD3 / AuraFlow / Flux scheduler cases:
// timesteps and sigmas for every recorded N, and full trajectories fed with the stored model
// outputs.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_case.h"
#include "qdit/core/error.h"
#include "qdit/schedulers/flow_match_euler.h"
#include "qdit/schedulers/scheduler_registry.h"

namespace qdit::schedulers {
namespace {

using testing::expect_close;
using testing::expect_close_vec;
using testing::GoldenCase;

// Schedules are float32 values computed from float64 ones: allow a couple of float32 ulps.
constexpr double kScheduleRel = 1e-6;
// Trajectory samples: the brief's bound is 1e-5 * max(1, max|ref|); we hold a tighter one.
constexpr double kSampleRel = 2e-6;

std::unique_ptr<Scheduler> load_case_scheduler(const GoldenCase& c) { return load_scheduler(c.dir + "/scheduler"); }

void check_schedule(const Scheduler& s, const GoldenCase& c, const std::string& ts_key, const std::string& sig_key) {
  expect_close_vec(s.timesteps(), c.out_vec(ts_key), kScheduleRel, c.dir + " " + ts_key);
  expect_close_vec(s.sigmas(), c.out_vec(sig_key), kScheduleRel, c.dir + " " + sig_key);
  ASSERT_FALSE(s.sigmas().empty());
  EXPECT_EQ(s.sigmas().back(), 0.0f);
}

// Feeds model_output.i and compares every sample.{i+1}.
void check_trajectory(Scheduler& s, const GoldenCase& c, int n) {
  Tensor x = c.in("sample_init");
  for (int i = 0; i < n; ++i) {
    x = s.step(c.in("model_output." + std::to_string(i)), i, x);
    expect_close(x, c.out("sample." + std::to_string(i + 1)), kSampleRel, c.dir + " sample." + std::to_string(i + 1));
  }
}

void check_static_shift_case(const std::string& name) {
  GoldenCase c(name);
  auto s = load_case_scheduler(c);
  EXPECT_STREQ(s->class_name(), "FlowMatchEulerDiscreteScheduler");
  EXPECT_FALSE(s->uses_dynamic_shifting());
  EXPECT_EQ(s->init_noise_sigma(), 1.0f);
  EXPECT_EQ(s->order(), 1);

  const int n = c.meta.get<int>("num_inference_steps");
  s->set_timesteps(n);
  ASSERT_EQ(s->num_inference_steps(), n);
  check_schedule(*s, c, "timesteps", "sigmas");
  check_trajectory(*s, c, n);

  const auto ns = c.recorded_step_counts("");
  for (int k : ns) {
    s->set_timesteps(k);
    check_schedule(*s, c, "timesteps_n" + std::to_string(k), "sigmas_n" + std::to_string(k));
  }
}

TEST(FlowMatchEuler, GoldenSD3) {
  check_static_shift_case("scheduler_flowmatch_sd3");
  // The case records extra step counts; make sure they were found and exercised.
  EXPECT_FALSE(GoldenCase("scheduler_flowmatch_sd3").recorded_step_counts("").empty());
}

TEST(FlowMatchEuler, GoldenAuraFlow) { check_static_shift_case("scheduler_flowmatch_auraflow"); }

TEST(FlowMatchEuler, SD3DoubleShiftQuirk) {
  // diffusers 0.30.3 shifts the already-shifted training endpoints again: with shift 3 and
  // N = 6 the last timestep is 3s/(1+2s) for s = sigma_min' = 3e-3/1.002, i.e. ~8.93, not ~1.
  auto s = load_scheduler(testing::golden_dir("scheduler_flowmatch_sd3") + "/scheduler");
  s->set_timesteps(6);
  const double smin = 3.0 * 0.001 / (1.0 + 2.0 * 0.001);
  const double expected_last = 3.0 * smin / (1.0 + 2.0 * smin) * 1000.0;
  EXPECT_NEAR(s->timesteps().back(), expected_last, 1e-3);
  EXPECT_NEAR(s->timesteps().back(), 8.93, 0.01);
  EXPECT_EQ(s->timesteps().front(), 1000.0f);
}

TEST(FlowMatchEuler, GoldenFluxDevDynamicShift) {
  GoldenCase c("scheduler_flowmatch_flux");
  auto s = load_case_scheduler(c);
  ASSERT_TRUE(s->uses_dynamic_shifting());
  ASSERT_TRUE(s->accepts_custom_sigmas());

  const int n = c.meta.get<int>("num_inference_steps");
  const int64_t seq_len = c.meta.get<int64_t>("image_seq_len");
  const double mu = flux_mu(seq_len, *s);
  EXPECT_NEAR(mu, c.meta.get<double>("mu"), 1e-15);
  EXPECT_FLOAT_EQ(static_cast<float>(mu), c.out_vec("mu")[0]);

  const std::vector<double> sig_in = flux_default_sigmas(n);
  const std::vector<float> ref_in = c.in("sigmas_in").to_vector();
  ASSERT_EQ(sig_in.size(), ref_in.size());
  for (size_t i = 0; i < sig_in.size(); ++i) EXPECT_EQ(static_cast<float>(sig_in[i]), ref_in[i]) << i;

  s->set_custom_sigmas(sig_in, mu);
  check_schedule(*s, c, "timesteps", "sigmas");
  check_trajectory(*s, c, n);

  // Without mu the dynamic-shifting schedule cannot be built.
  EXPECT_THROW(s->set_custom_sigmas(sig_in), Error);
  EXPECT_THROW(s->set_timesteps(n), Error);
}

TEST(FlowMatchEuler, GoldenFluxSchnell) {
  GoldenCase c("scheduler_flowmatch_flux");
  // FLUX.1-schnell's scheduler config: the dev one with shift 1 and no dynamic shifting.
  nlohmann::json j = io::JsonConfig::load(c.dir + "/scheduler/scheduler_config.json").raw();
  j["shift"] = 1.0;
  j["use_dynamic_shifting"] = false;
  auto s = load_scheduler(io::JsonConfig::from_json(j, "schnell_scheduler_config.json"));
  EXPECT_FALSE(s->uses_dynamic_shifting());

  const auto ns = c.recorded_step_counts("schnell_");
  ASSERT_FALSE(ns.empty());
  for (int k : ns) {
    // The pipeline computes mu anyway; a non-dynamic scheduler ignores it.
    s->set_custom_sigmas(flux_default_sigmas(k), flux_mu(64, *s));
    check_schedule(*s, c, "schnell_timesteps_n" + std::to_string(k), "schnell_sigmas_n" + std::to_string(k));
  }
}

TEST(FlowMatchEuler, FluxMuInterpolation) {
  DynamicShiftParams p;  // 256 -> 0.5, 4096 -> 1.15
  EXPECT_DOUBLE_EQ(flux_mu(256, p), 0.5);
  EXPECT_NEAR(flux_mu(4096, p), 1.15, 1e-15);
  EXPECT_NEAR(flux_mu(2176, p), 0.825, 1e-15);
  p.max_image_seq_len = p.base_image_seq_len;
  EXPECT_THROW(flux_mu(64, p), Error);
}

TEST(FlowMatchEuler, FluxDefaultSigmasAreNumpyLinspace) {
  const auto s = flux_default_sigmas(3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], 1.0);
  EXPECT_EQ(s[1], 1.0 + 1.0 * ((1.0 / 3 - 1.0) / 2));
  EXPECT_EQ(s[2], 1.0 / 3);
  EXPECT_EQ(flux_default_sigmas(1), std::vector<double>{1.0});
  EXPECT_THROW(flux_default_sigmas(0), Error);
}

TEST(FlowMatchEuler, StepIsEulerInFloat32) {
  FlowMatchEulerConfig cfg;
  cfg.shift = 3.0;
  FlowMatchEulerDiscreteScheduler s(cfg);
  s.set_timesteps(4);
  Tensor x = Tensor::from_vector({1.0f, -2.0f, 0.5f}, {3});
  Tensor v = Tensor::from_vector({0.25f, 3.0f, -1.0f}, {3});
  Tensor y = s.step(v, 0, x);
  const float dt = s.sigmas()[1] - s.sigmas()[0];
  for (int i = 0; i < 3; ++i) EXPECT_EQ(y.item_f32(i), x.item_f32(i) + dt * v.item_f32(i));
}

TEST(FlowMatchEuler, StepArgumentErrors) {
  FlowMatchEulerDiscreteScheduler s{FlowMatchEulerConfig{}};
  Tensor x = Tensor::zeros({2, 3}, DType::F32);
  EXPECT_THROW(s.step(x, 0, x), Error);  // no set_timesteps yet
  s.set_timesteps(3);
  EXPECT_THROW(s.step(Tensor::zeros({3, 2}, DType::F32), 0, x), Error);   // shape mismatch
  EXPECT_THROW(s.step(Tensor::zeros({2, 3}, DType::BF16), 0, x), Error);  // dtype
  EXPECT_THROW(s.step(x, 3, x), Error);                                   // out of range
  s.step(x, 0, x);
  EXPECT_THROW(s.step(x, 2, x), Error);  // skipped step 1
  s.step(x, 1, x);
  s.set_timesteps(3);  // restarts: any first index is fine
  EXPECT_NO_THROW(s.step(x, 1, x));
  EXPECT_THROW(s.set_custom_sigmas({}), Error);
  EXPECT_THROW(s.set_custom_sigmas({0.5, NAN}), Error);
  EXPECT_THROW(s.set_timesteps(0), Error);
}

}  // namespace
}  // namespace qdit::schedulers
