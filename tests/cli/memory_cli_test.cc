// The memory flags of the CLI end to end: generate --offload / --batch / --report / --max-memory
// (a plan that fits, and a refusal stating the minimum before anything is loaded), qdit plan and
// qdit bench on the tiny golden pipelines.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.h"

namespace {

using qdit::cli_test::contains;
using qdit::cli_test::run;
using qdit::cli_test::RunResult;

namespace fs = std::filesystem;

const std::string kPixArt = std::string(QDIT_TEST_DATA_DIR) + "/golden/pipeline_pixart_sigma_text";

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("qdit_cli_memory_" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

const std::string kRun = "generate --model " + kPixArt + " --prompt 'a small cafe' --steps 2 --max-sequence-length 16";

TEST(GenerateMemory, ReportHasMeasuredAndPredictedPeaksPerPhase) {
  TempDir t;
  for (const std::string offload : {"none", "model", "blocks"}) {
    const RunResult r = run(kRun + " --offload " + offload + " --offload-group 2 --out " + t.file("a.png") +
                            " --report " + t.file("r.json"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("predicted RSS"), std::string::npos) << r.output;
    const nlohmann::json j = read_json(t.file("r.json"));
    EXPECT_EQ(j["settings"]["offload"], offload);
    std::vector<std::string> phases;
    for (const auto& p : j["phases"]) {
      phases.push_back(p["name"]);
      EXPECT_GT(p["rss_peak_bytes"].get<size_t>(), 0u);
      EXPECT_GT(p["tracked_peak_bytes"].get<size_t>(), 0u);
      EXPECT_TRUE(p.contains("predicted")) << p.dump();
    }
    const std::vector<std::string> expected =
        offload == std::string("none") ? std::vector<std::string>{"loading", "text_encoding", "denoising", "decoding"}
                                       : std::vector<std::string>{"text_encoding", "denoising", "decoding"};
    EXPECT_EQ(phases, expected);
    EXPECT_GT(j["peak_rss_bytes"].get<size_t>(), 0u);
    EXPECT_GT(j["predicted_peak_rss_bytes"].get<size_t>(), 0u);
  }
}

TEST(GenerateMemory, BatchWritesOneImagePerPrompt) {
  TempDir t;
  const RunResult r = run(kRun + " --batch 2 --out " + t.file("img.png"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(t.file("img_0.png")));
  EXPECT_TRUE(fs::exists(t.file("img_1.png")));
  std::ifstream a(t.file("img_0.png"), std::ios::binary), b(t.file("img_1.png"), std::ios::binary);
  const std::string da((std::istreambuf_iterator<char>(a)), {}), db((std::istreambuf_iterator<char>(b)), {});
  EXPECT_NE(da, db);  // different noise per image
}

TEST(GenerateMemory, NoMemoryCheckIsAcceptedAndRunsAsUsual) {
  // The refusal itself is tested on the planner (check_fits_machine); tiny models always fit.
  TempDir t;
  const RunResult r = run(kRun + " --no-memory-check --out " + t.file("img.png"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(t.file("img.png")));
}

TEST(GenerateMemory, BudgetPicksAPlanAndTooSmallABudgetIsRefusedWithTheMinimum) {
  TempDir t;
  const RunResult ok = run(kRun + " --max-memory 8GiB --out " + t.file("a.png") + " --report " + t.file("r.json"));
  ASSERT_EQ(ok.code, 0) << ok.output;
  EXPECT_NE(ok.output.find("plan: offload none"), std::string::npos) << ok.output;  // everything fits
  EXPECT_EQ(read_json(t.file("r.json"))["settings"]["offload"], "none");

  const RunResult no = run(kRun + " --max-memory 1MiB --out " + t.file("b.png"));
  EXPECT_EQ(no.code, 1) << no.output;
  EXPECT_NE(no.output.find("below the smallest feasible plan"), std::string::npos) << no.output;
  EXPECT_NE(no.output.find("raise the budget to at least "), std::string::npos) << no.output;
  EXPECT_EQ(no.output.find("text_encoding"), std::string::npos) << no.output;  // nothing ran
  EXPECT_FALSE(fs::exists(t.file("b.png")));

  const RunResult bad = run(kRun + " --max-memory lots --out " + t.file("c.png"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("--max-memory"), std::string::npos) << bad.output;
  const RunResult mode = run(kRun + " --offload disk --out " + t.file("c.png"));
  EXPECT_EQ(mode.code, 1);
  EXPECT_NE(mode.output.find("none, model or blocks"), std::string::npos) << mode.output;
  const RunResult aq = run(kRun + " --quant auto --out " + t.file("c.png"));
  EXPECT_EQ(aq.code, 1);
  EXPECT_NE(aq.output.find("--quant auto needs --max-memory"), std::string::npos) << aq.output;
}

TEST(Plan, PrintsEveryModeAndTheChosenPlan) {
  const RunResult r = run("plan --model " + kPixArt + " --width 64 --height 64 --max-memory 4GiB");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* s : {"offload none", "offload model", "offload blocks (1 per group)", "text_encoding", "denoising",
                        "decoding", "chosen for --max-memory 4.00 GiB: offload none"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  const RunResult no = run("plan --model " + kPixArt + " --max-memory 1KiB");
  EXPECT_EQ(no.code, 1);
  EXPECT_NE(no.output.find("smallest feasible plan"), std::string::npos) << no.output;
}

TEST(Bench, RunsEveryCombinationAndWritesTableAndJson) {
  TempDir t;
  const RunResult r = run("bench --model " + kPixArt + " --quant-set 'none,text_encoder=int4wo,transformer=int8wo'" +
                          " --offload-set model,blocks --batch 1 --steps 2 --max-sequence-length 16 --json " +
                          t.file("b.json") + " --md " + t.file("b.md"));
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json rows = read_json(t.file("b.json"));
  ASSERT_EQ(rows.size(), 4u) << rows.dump(2);
  for (const auto& row : rows) {
    EXPECT_FALSE(row.contains("error")) << row.dump();
    EXPECT_GT(row["peak_rss_bytes"].get<size_t>(), 0u);
    EXPECT_GT(row["latency_seconds"].get<double>(), 0.0);
  }
  EXPECT_EQ(rows[2]["quant"], "text_encoder=int4wo,transformer=int8wo");
  EXPECT_TRUE(rows[2]["text_encoder_quantized"].get<bool>());
  EXPECT_FALSE(rows[0]["text_encoder_quantized"].get<bool>());
  std::ifstream md(t.file("b.md"));
  const std::string table((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(table.find("| batch | quantization | text encoder quantized | offload | peak memory (GB)"), std::string::npos);
  EXPECT_NE(table.find("| 1 | text_encoder=int4wo,transformer=int8wo | yes | blocks |"), std::string::npos) << table;
}

}  // namespace
