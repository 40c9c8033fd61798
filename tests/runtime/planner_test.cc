// The memory planner against what runs: per phase, the predicted tracked peak (weights +
// activations, CpuAllocator's view) is within kTrackedBound of the measured one on every tiny
// golden pipeline, every offload mode, float and quantized; plans follow the budget; a budget
// below every plan is refused, stating the minimum, without reading a tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/runtime/bytes.h"
#include "qdit/runtime/memory_planner.h"

namespace qdit::runtime {
namespace {

using pipelines::Offload;

// Tiny models are dominated by small tensors the replay rounds away; real sizes are checked
// against RSS in docs/memory.md.
constexpr double kTrackedBound = 0.30;
constexpr size_t kTrackedSlack = 96 << 10;

std::string golden(const std::string& name) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + name; }

struct Case {
  const char* pipeline;
  Offload offload;
  const char* quant;
  DType compute;
};

std::string name_of(const Case& c) {
  std::string n = std::string(c.pipeline) + "_" + pipelines::offload_name(c.offload) + "_" + c.quant + "_" +
                   dtype_name(c.compute);
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

class TrackedPeaks : public ::testing::TestWithParam<Case> {};

TEST_P(TrackedPeaks, PredictionIsWithinBoundOfMeasurement) {
  const Case& c = GetParam();
  PlanRequest req;
  req.offload = c.offload;
  req.compute = c.compute;
  if (std::string(c.quant) != "none") req.quant = quant::PipelineQuantConfig::parse_spec(c.quant);
  req.max_sequence_length = 24;
  const MemoryPrediction p = predict_memory(golden(c.pipeline), req);

  pipelines::PipelineOptions opt;
  opt.offload = c.offload;
  opt.quant = req.quant;
  opt.ctx.compute = c.compute;
  pipelines::GenerateRequest g;
  g.prompt = "A small cafe at the corner, watercolor";
  g.negative_prompt = "blurry";
  g.steps = 2;
  g.max_sequence_length = 24;
  const pipelines::GenerateResult r = pipelines::load_pipeline(golden(c.pipeline), opt)->generate(g);
  ASSERT_EQ(r.phases.size(), p.phases.size());
  for (size_t i = 0; i < r.phases.size(); ++i) {
    const auto& m = r.phases[i];
    const auto& q = p.phases[i];
    ASSERT_EQ(m.name, q.name);
    const double err = std::fabs(static_cast<double>(q.tracked) - static_cast<double>(m.tracked_peak_bytes));
    EXPECT_LE(err, kTrackedBound * static_cast<double>(m.tracked_peak_bytes) + kTrackedSlack)
        << m.name << ": predicted " << format_bytes(q.tracked) << ", measured " << format_bytes(m.tracked_peak_bytes);
  }
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (const char* p : {"pipeline_pixart_sigma_text", "pipeline_sd3_text", "pipeline_flux_dev_text",
                        "pipeline_auraflow_text"})
    for (Offload o : {Offload::None, Offload::Model, Offload::Blocks}) v.push_back({p, o, "none", DType::F32});
  for (Offload o : {Offload::Model, Offload::Blocks}) {
    v.push_back({"pipeline_pixart_sigma_text", o, "int8wo", DType::F32});
    v.push_back({"pipeline_pixart_sigma_text", o, "text_encoder=int4wo,transformer=int8dq", DType::F32});
    v.push_back({"pipeline_sd3_text", o, "nf4", DType::BF16});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Tiny, TrackedPeaks, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return name_of(info.param); });

TEST(Planner, OffloadingNeverPredictsMore) {
  // Real widths matter here, but the ordering already holds on the tiny PixArt at a larger size.
  PlanRequest req;
  req.width = req.height = 128;
  size_t prev = SIZE_MAX;
  for (Offload o : {Offload::None, Offload::Model}) {
    req.offload = o;
    const size_t peak = predict_memory(golden("pipeline_pixart_sigma_text"), req).peak_rss();
    EXPECT_LE(peak, prev) << pipelines::offload_name(o);
    prev = peak;
  }
}

TEST(Planner, ChoosesTheLeastOffloadedPlanThatFits) {
  const std::string dir = golden("pipeline_sd3_text");
  PlanRequest req;
  req.offload = Offload::None;
  const size_t none = predict_memory(dir, req).peak_rss();
  EXPECT_EQ(choose_plan(dir, req, none, {}).request.offload, Offload::None);
  req.offload = Offload::Model;
  const size_t model = predict_memory(dir, req).peak_rss();
  ASSERT_LT(model, none);
  EXPECT_EQ(choose_plan(dir, req, model, {}).request.offload, Offload::Model);
  EXPECT_EQ(choose_plan(dir, req, none - 1, {}).request.offload, Offload::Model);
  // Pinned to blocks: the largest group that fits.
  PlanOptions pinned;
  pinned.fixed_offload = true;
  req.offload = Offload::Blocks;
  const MemoryPrediction blocks = choose_plan(dir, req, none, pinned);
  EXPECT_EQ(blocks.request.offload, Offload::Blocks);
  EXPECT_GE(blocks.request.group, 2);
}

TEST(Planner, AutoQuantQuantizesOnlyWhenOffloadIsNotEnough) {
  const std::string dir = golden("pipeline_pixart_sigma_text");
  PlanRequest req;
  req.width = req.height = 64;
  PlanOptions autoq;
  autoq.auto_quant = true;
  req.offload = Offload::None;
  const size_t none = predict_memory(dir, req).peak_rss();
  EXPECT_TRUE(choose_plan(dir, req, none, autoq).request.quant.empty());
  // Below every unquantized plan: some candidate quantizes.
  size_t smallest_float = SIZE_MAX;
  for (int g = 1; g <= 3; ++g)
    for (Offload o : {Offload::None, Offload::Model, Offload::Blocks}) {
      req.offload = o;
      req.group = g;
      smallest_float = std::min(smallest_float, predict_memory(dir, req).peak_rss());
    }
  const auto cands = auto_quant_candidates(dir);
  size_t best_quant = SIZE_MAX;
  for (size_t i = 1; i < cands.size(); ++i) {
    req.quant = cands[i];
    best_quant = std::min(best_quant, predict_memory(dir, req).peak_rss());
  }
  if (best_quant < smallest_float) {
    PlanRequest small;
    small.width = small.height = 64;
    const MemoryPrediction q = choose_plan(dir, small, smallest_float - 1, autoq);
    EXPECT_FALSE(q.request.quant.empty());
    EXPECT_LE(q.peak_rss(), smallest_float - 1);
  }
}

TEST(Planner, RefusesATooSmallBudgetStatingTheMinimumWithoutReadingTensors) {
  const std::string dir = golden("pipeline_flux_dev_text");
  PlanRequest req;
  const uint64_t views = io::SafetensorsFile::tensors_handed_out();
  size_t minimum = SIZE_MAX;
  for (Offload o : {Offload::None, Offload::Model, Offload::Blocks}) {
    req.offload = o;
    minimum = std::min(minimum, predict_memory(dir, req).peak_rss());
  }
  try {
    choose_plan(dir, req, minimum - 1, {});
    ADD_FAILURE() << "expected a refusal";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("below the smallest feasible plan"), std::string::npos) << what;
    EXPECT_NE(what.find("at least " + format_bytes(minimum)), std::string::npos) << what;
  }
  EXPECT_EQ(io::SafetensorsFile::tensors_handed_out(), views);  // headers only
  EXPECT_EQ(choose_plan(dir, req, minimum, {}).peak_rss(), minimum);
}

TEST(Bytes, ParsesUnitsAndRejectsGarbage) {
  EXPECT_EQ(parse_bytes("2GiB"), size_t{2} << 30);
  EXPECT_EQ(parse_bytes("2g"), size_t{2} << 30);
  EXPECT_EQ(parse_bytes("1.5 GB"), size_t{1500000000});
  EXPECT_EQ(parse_bytes("800MB"), size_t{800000000});
  EXPECT_EQ(parse_bytes("64K"), size_t{65536});
  EXPECT_EQ(parse_bytes("123456"), size_t{123456});
  EXPECT_THROW(parse_bytes("lots"), Error);
  EXPECT_THROW(parse_bytes("2 parsecs"), Error);
  EXPECT_THROW(parse_bytes("-1G"), Error);
  EXPECT_EQ(format_bytes(size_t{3} << 30), "3.00 GiB");
  EXPECT_EQ(format_bytes(1536 << 10), "1.5 MiB");
}

TEST(Planner, ARunBeyondTheMachinesMemoryIsRefusedNamingAPlanThatFits) {
  const std::string dir = golden("pipeline_sd3_text");
  PlanRequest req;
  req.offload = Offload::None;
  const MemoryPrediction none = predict_memory(dir, req);
  EXPECT_FALSE(check_fits_machine(dir, none, none.peak_rss()).has_value());
  EXPECT_FALSE(check_fits_machine(dir, none, 0).has_value());  // unknown machine size: no check
  // One byte short: model offload (which predicts less, see above) is named.
  const auto refusal = check_fits_machine(dir, none, none.peak_rss() - 1);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_NE(refusal->find("more than this machine's"), std::string::npos) << *refusal;
  EXPECT_NE(refusal->find("would run offload model"), std::string::npos) << *refusal;
  EXPECT_NE(refusal->find(format_bytes(none.peak_rss())), std::string::npos) << *refusal;
  // Nothing fits a 1 MiB machine: the message says so with the smallest feasible budget.
  const auto none_fits = check_fits_machine(dir, none, 1 << 20);
  ASSERT_TRUE(none_fits.has_value());
  EXPECT_NE(none_fits->find("no offload mode fits"), std::string::npos) << *none_fits;
  EXPECT_NE(none_fits->find("smallest feasible"), std::string::npos) << *none_fits;
}

}  // namespace
}  // namespace qdit::runtime
