// Every reference case qdit implements, run through the same code path as `qdit check`
// (api::run_case) at float32 with the default tolerances (1e-4 * max(1, max|ref|) for components,
// 1e-3 * max|ref| for pipelines).
#include <gtest/gtest.h>

#include <string>

#include "qdit/api/golden_case.h"

namespace {

const char* const kCases[] = {
    // Every case in tests/golden (all 28), through the same path as `qdit check`.
    "pipeline_auraflow",
    "pipeline_auraflow_text",
    "pipeline_flux_dev",
    "pipeline_flux_dev_text",
    "pipeline_flux_schnell",
    "pipeline_flux_schnell_text",
    "pipeline_pixart_sigma",
    "pipeline_pixart_sigma_text",
    "pipeline_sd3",
    "pipeline_sd3_text",
    "scheduler_dpmsolver_pixart_sigma",
    "scheduler_flowmatch_auraflow",
    "scheduler_flowmatch_flux",
    "scheduler_flowmatch_sd3",
    "text_encoder_clip_g_withproj",
    "text_encoder_clip_l_plain",
    "text_encoder_clip_l_withproj",
    "text_encoder_t5",
    "text_encoder_umt5",
    "tokenizer_clip",
    "tokenizer_t5",
    "transformer_auraflow",
    "transformer_flux_guidance",
    "transformer_flux_noguidance",
    "transformer_pixart_sigma",
    "transformer_sd3",
    "vae_decode_16ch",
    "vae_decode_4ch",
};

class GoldenCase : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenCase, MatchesReference) {
  const std::string dir = std::string(QDIT_TEST_DATA_DIR) + "/golden/" + GetParam();
  qdit::api::CheckReport r = qdit::api::run_case(dir);
  EXPECT_TRUE(r.pass()) << r.str();
  EXPECT_FALSE(r.tensors.empty());
  EXPECT_TRUE(r.not_produced.empty()) << r.str();
}

INSTANTIATE_TEST_SUITE_P(All, GoldenCase, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

TEST(GoldenCaseErrors, MissingFolderAndUnknownKindAreReported) {
  EXPECT_THROW(qdit::api::run_case("/nonexistent/case"), qdit::Error);
}

}  // namespace

// --fuse-qkv: every case still matches diffusers at float32 with the same tolerances.
class GoldenCaseFused : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenCaseFused, MatchesReferenceWithFusedProjections) {
  const std::string dir = std::string(QDIT_TEST_DATA_DIR) + "/golden/" + GetParam();
  qdit::api::CheckOptions opt;
  opt.fuse_qkv = true;
  qdit::api::CheckReport r = qdit::api::run_case(dir, opt);
  EXPECT_TRUE(r.pass()) << r.str();
}

INSTANTIATE_TEST_SUITE_P(All, GoldenCaseFused,
                         ::testing::Values("transformer_pixart_sigma", "transformer_sd3", "transformer_flux_guidance",
                                           "transformer_auraflow", "text_encoder_t5", "text_encoder_umt5",
                                           "text_encoder_clip_g_withproj", "pipeline_pixart_sigma_text",
                                           "pipeline_sd3_text", "pipeline_flux_dev_text", "pipeline_auraflow_text"),
                         [](const auto& info) { return std::string(info.param); });

// Reduced-precision compute runs every text pipeline and stays close to the float32 reference:
// fp16 (10 mantissa bits) closer than bf16 (7).
TEST(GoldenCaseReducedPrecision, Fp16AndBf16StayCloseToFloat32) {
  for (const char* name : {"pipeline_pixart_sigma_text", "pipeline_sd3_text", "pipeline_flux_dev_text",
                           "pipeline_flux_schnell_text", "pipeline_auraflow_text"}) {
    const std::string dir = std::string(QDIT_TEST_DATA_DIR) + "/golden/" + name;
    double worst[2] = {1e9, 1e9};
    for (int i = 0; i < 2; ++i) {
      qdit::api::CheckOptions opt;
      opt.compute = i == 0 ? qdit::DType::F16 : qdit::DType::BF16;
      const qdit::api::CheckReport r = qdit::api::run_case(dir, opt);
      EXPECT_TRUE(r.informational);
      for (const auto& t : r.tensors) worst[i] = std::min(worst[i], t.snr_db);
    }
    EXPECT_GE(worst[0], 50.0) << name << " fp16";
    EXPECT_GE(worst[1], 35.0) << name << " bf16";
    EXPECT_GT(worst[0], worst[1] + 10.0) << name;
  }
}
