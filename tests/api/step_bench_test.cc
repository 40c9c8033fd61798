// qdit bench-step's FLOP accounting: the closed-form count of every architecture equals what the
// counters see (each Linear call 2*M*K*N, each attention 4*B*H*Sq*Skv*D) on make-model's tiny
// configs, at full and reduced depth, with and without fused q/k/v; and the real PixArt-Sigma
// figure the issue quotes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "qdit/api/make_model.h"
#include "qdit/api/step_bench.h"
#include "qdit/core/error.h"
#include "qdit/io/json_config.h"

namespace qdit::api {
namespace {

class StepBenchFlops : public ::testing::TestWithParam<std::string> {};

TEST_P(StepBenchFlops, ClosedFormEqualsCounted) {
  for (bool fuse : {true, false}) {
    for (bool reduced : {false, true}) {
      StepBenchOptions opt;
      opt.arch = GetParam();
      opt.tiny = true;
      opt.width = opt.height = 64;  // 8x8 latents
      opt.batch = 2;
      opt.text_len = 7;
      opt.warmup = 0;
      opt.repeat = 1;
      opt.measure_peak = false;
      opt.fuse_qkv = fuse;
      opt.compute = DType::F32;
      const bool two_streams = GetParam() == "flux-dev" || GetParam() == "flux-schnell" || GetParam() == "auraflow";
      if (reduced) opt.layers = two_streams ? std::vector<int64_t>{1, 1} : std::vector<int64_t>{1};
      const StepBenchResult r = run_step_bench(opt);
      const double want = r.flops.linear + r.flops.attention;
      EXPECT_GT(want, 0.0);
      EXPECT_NEAR(r.counted_flops, want, 1e-9 * want) << opt.arch << " fuse " << fuse << " reduced " << reduced;
      double attn = 0;
      for (const auto& o : r.ops)
        if (o.name == "attention") attn = o.flops;
      EXPECT_NEAR(attn, r.flops.attention, 1e-9 * r.flops.attention) << opt.arch;
      EXPECT_EQ(r.seconds.size(), 1u);
      if (reduced) {
        EXPECT_LT(r.flops.total(), r.full_flops.total()) << opt.arch;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, StepBenchFlops,
                         ::testing::Values("pixart-sigma", "sd3-medium", "flux-dev", "flux-schnell", "auraflow"));

TEST(StepBenchFlops, RealPixArtSigmaAt512IsAbout2p57Tflop) {
  // 28 blocks of d = 1152 over 1024 image and 300 text tokens, batch 2 (the 2.57 TFLOP).
  const PipelineSpec plan = plan_pipeline("pixart-sigma", false, DType::BF16);
  const ComponentSpec* t = plan.find("transformer");
  ASSERT_NE(t, nullptr);
  const io::JsonConfig cfg = io::JsonConfig::from_json(t->config, "pixart transformer");
  const DitFlops f = dit_step_flops("PixArtTransformer2DModel", cfg, 2, 64, 64, 300);
  EXPECT_NEAR(f.total() * 1e-12, 2.57, 0.01);
  // Per block: 2*B*N*d^2*(3 + 1 + 1 + 1 + 8) + 2*B*L*d*2d + 4*B*H*N*(N + L)*Dh; outside the blocks
  // the timestep MLP + adaLN (M = B), the caption projection (M = B*L) and proj_out (to 2*2*8).
  const double B = 2, N = 1024, L = 300, d = 1152, H = 16, Dh = 72;
  const double block = 2 * B * N * d * d * 14 + 2 * B * L * d * 2 * d + 4 * B * H * N * (N + L) * Dh;
  EXPECT_NEAR(f.linear + f.attention - 28 * block, 2 * B * (256 * d + d * d + d * 6 * d) +
                                                       2 * B * L * (4096 * d + d * d) + 2 * B * N * d * 32,
              1.0);
}

// --versus: both configurations built, every timed forward of each recorded (interleaved), the
// same FLOPs, each described by its own dtype/scheme; the report's ratio line from their times.
TEST(StepBenchVersus, TimesBothConfigurations) {
  StepBenchOptions a;
  a.arch = "pixart-sigma";
  a.tiny = true;
  a.width = a.height = 64;
  a.text_len = 7;
  a.warmup = 0;
  a.repeat = 3;
  a.measure_peak = false;
  a.quant = quant::PipelineQuantConfig::parse_spec("int8dq");
  StepBenchOptions b = a;
  b.quant = {};
  const auto [ra, rb] = run_step_bench_versus(a, b);
  ASSERT_EQ(ra.seconds.size(), 3u);
  ASSERT_EQ(rb.seconds.size(), 3u);
  EXPECT_NE(ra.description.find("int8dq"), std::string::npos) << ra.description;
  EXPECT_EQ(rb.description.find("int8dq"), std::string::npos) << rb.description;
  EXPECT_EQ(ra.flops.total(), rb.flops.total());
  for (double s : ra.seconds) EXPECT_GT(s, 0.0);
  const std::string line = format_versus(ra, rb);
  char want[32];
  std::snprintf(want, sizeof want, "= %.2fx", rb.median() / ra.median());
  EXPECT_NE(line.find(want), std::string::npos) << line;
  b.repeat = 2;
  EXPECT_THROW(run_step_bench_versus(a, b), Error);
}

TEST(StepBenchFlops, UnknownClassIsAnError) {
  EXPECT_THROW(dit_step_flops("UNet2DConditionModel", io::JsonConfig(), 1, 8, 8, 1), Error);
}

}  // namespace
}  // namespace qdit::api
