// `qdit make-model` as a user runs it: a tiny pipeline that `qdit generate` and `qdit inspect`
// accept, the real-size plan (--dry-run) with the real parameter counts, and one-line errors with
// exit code 1 for bad arguments.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "qdit/io/diffusers_folder.h"

#include "cli_runner.h"

namespace {

using qdit::cli_test::contains;
using qdit::cli_test::run;
using qdit::cli_test::RunResult;

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("qdit_cli_mm_" + std::to_string(getpid()) + "_" + name)).string();
}

TEST(MakeModelCli, TinyPipelineGeneratesAndInspects) {
  const std::string dir = temp_path("aura"), png = temp_path("aura.png");
  RunResult r = run("make-model --arch auraflow --tiny --seed 4 --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "wrote auraflow tiny pipeline to " + dir + " (weights f32, seed 4)")) << r.output;
  EXPECT_EQ(qdit::io::PipelineFolder::open(dir).class_name(), "AuraFlowPipeline");
  r = run("inspect " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "transformer: diffusers AuraFlowTransformer2DModel")) << r.output;
  r = run("generate --model " + dir + " --prompt 'a cat' --steps 2 --width 64 --height 64 --out " + png);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(png));
  // A second run into the same folder needs --force.
  r = run("make-model --arch auraflow --tiny --out " + dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "is not empty; pass --force")) << r.output;
  EXPECT_EQ(run("make-model --arch auraflow --tiny --force --dtype bf16 --out " + dir).code, 0);
  fs::remove_all(dir);
  fs::remove(png);
}

TEST(MakeModelCli, DryRunPrintsTheRealParameterCounts) {
  RunResult r = run("make-model --arch flux-dev --dry-run");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "11901408320 params")) << r.output;  // FLUX.1-dev transformer
  EXPECT_TRUE(contains(r.output, "4762310656 params")) << r.output;   // T5-XXL encoder
  EXPECT_TRUE(contains(r.output, "16870599139 params  33.74 GB")) << r.output;
  r = run("make-model --arch sd3-medium --dry-run");
  EXPECT_TRUE(contains(r.output, "(+56623104 buffer elements)")) << r.output;
}

TEST(MakeModelCli, BadArgumentsFailWithOneLineErrors) {
  struct Case {
    std::string args, message;
  };
  const std::string file = temp_path("plain_file");
  { std::FILE* f = std::fopen(file.c_str(), "w"); std::fclose(f); }
  const Case cases[] = {
      {"make-model --arch sdxl --out /tmp/x", "unknown --arch 'sdxl' (known: pixart-sigma, sd3-medium"},
      {"make-model --arch flux-dev --dtype fp8 --out /tmp/x", "--dtype must be bf16 or f32, got 'fp8'"},
      {"make-model --arch flux-dev --tiny --out " + file, "--out " + file + " exists and is not a folder"},
      {"make-model --arch flux-dev --tiny --out " + file + "/sub", "cannot create --out " + file + "/sub"},
      {"make-model --arch flux-dev --tiny --out /proc/qdit_mm", "cannot create --out /proc/qdit_mm"},
      {"make-model --out /tmp/x", "missing --arch"},
      {"make-model --arch flux-dev --tiny", "missing --out DIR"},
      {"make-model --arch flux-dev --seed -3 --out /tmp/x", "--seed expects a non-negative integer, got '-3'"},
      {"make-model --arch flux-dev --bogus", "unknown option '--bogus'"},
  };
  for (const Case& c : cases) {
    const RunResult r = run(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "qdit make-model: error: [make-model] " + c.message)) << c.args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  EXPECT_FALSE(fs::exists("/tmp/x"));
  fs::remove(file);
}

}  // namespace
