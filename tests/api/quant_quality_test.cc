// Every scheme runs every golden pipeline with the transformer and text encoders quantized; the
// 8-bit schemes keep the final latents within 25 dB SNR of the float32 reference; the quality
// table has a cell per scheme and case.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "qdit/api/golden_case.h"
#include "qdit/api/quant_quality.h"
#include "qdit/quant/scheme.h"

namespace qdit::api {
namespace {

std::vector<std::string> pipeline_cases() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(QDIT_TEST_DATA_DIR) + "/golden"))
    if (e.path().filename().string().rfind("pipeline_", 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

double snr(const CheckReport& r, const std::string& name) {
  for (const auto& t : r.tensors)
    if (t.name == name) return t.snr_db;
  ADD_FAILURE() << r.case_name << " has no " << name;
  return 0;
}

class EverySchemeOnEveryPipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(EverySchemeOnEveryPipeline, RunsAndStaysClose) {
  const std::string scheme = GetParam();
  const bool eight_bit = scheme == "int8wo" || scheme == "int8dq" || scheme == "qint8" || scheme == "float8wo" ||
                         scheme == "qfloat8";
  const auto cases = pipeline_cases();
  ASSERT_EQ(cases.size(), 10u);
  for (const auto& dir : cases) {
    CheckOptions opt;
    opt.quant = quant::PipelineQuantConfig::parse_spec(scheme + "@transformer+text_encoder+text_encoder_2+text_encoder_3");
    CheckReport r = run_case(dir, opt);
    const double latents = snr(r, "latents_final"), image = snr(r, "images_np");
    EXPECT_TRUE(std::isfinite(latents) && std::isfinite(image)) << scheme << " " << r.case_name;
    EXPECT_GT(latents, 0.0) << scheme << " " << r.case_name;
    if (eight_bit) {
      EXPECT_GE(latents, 25.0) << scheme << " " << r.case_name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, EverySchemeOnEveryPipeline, ::testing::ValuesIn(quant::scheme_names()),
                         [](const auto& info) { return info.param; });

TEST(QualityTable, HasACellPerSchemeTargetAndCase) {
  const std::string dir = std::string(QDIT_TEST_DATA_DIR) + "/golden/pipeline_sd3_text";
  auto rows = measure_quant_quality({dir}, {"int8wo", "nf4"});
  ASSERT_EQ(rows.size(), 4u);  // 2 schemes x (transformer, text encoders)
  for (const auto& r : rows) {
    EXPECT_EQ(r.case_name, "pipeline_sd3_text");
    EXPECT_GT(r.latents_snr_db, 10.0) << r.scheme << " " << r.target;
    if (r.target == "text encoders") {
      EXPECT_TRUE(std::isfinite(r.embeds_snr_db));
    }
  }
  // 8-bit is closer to float32 than 4-bit on the same target.
  EXPECT_GT(rows[0].latents_snr_db, rows[1].latents_snr_db);
  const std::string md = quality_markdown(rows);
  EXPECT_NE(md.find("| `int8wo` |"), std::string::npos) << md;
  EXPECT_NE(md.find("### text encoders quantized"), std::string::npos) << md;
}

}  // namespace
}  // namespace qdit::api
