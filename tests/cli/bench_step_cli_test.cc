// `qdit bench-step` as a user runs it: a report with FLOPs, time, rate and per-op times for a
// generated (tiny) architecture and for a make-model folder at reduced depth with a quantization
// scheme; one-line errors with exit code 1 for bad arguments.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_runner.h"

namespace {

using qdit::cli_test::contains;
using qdit::cli_test::run;
using qdit::cli_test::RunResult;

namespace fs = std::filesystem;

TEST(BenchStepCli, TinyArchReportsFlopsTimeAndOps) {
  const RunResult r = run("bench-step --arch sd3-medium --tiny --width 64 --height 64 --repeat 2 --warmup 0 "
                          "--threads 1 --no-peak --ops --markdown");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* want : {"SD3Transformer2DModel (sd3-medium (tiny), bf16, fused q/k/v)", "FLOPs per forward:",
                           "forward: median", "GFLOP/s =", "of the guide's bf16 peak (236)", "linear", "attention",
                           "(untracked)", "| sd3-medium (tiny), bf16, fused q/k/v | 1 |"})
    EXPECT_TRUE(contains(r.output, want)) << want << "\n" << r.output;
}

TEST(BenchStepCli, FolderAtReducedDepthWithQuantization) {
  const std::string dir = (fs::temp_directory_path() / ("qdit_cli_bs_" + std::to_string(getpid()))).string();
  RunResult r = run("make-model --arch flux-schnell --tiny --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("bench-step --model " + dir + " --layers 1,1 --quant int8wo --width 64 --height 64 --repeat 1 "
          "--warmup 0 --no-peak");
  fs::remove_all(dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "FluxTransformer2DModel")) << r.output;
  EXPECT_TRUE(contains(r.output, "bf16 + int8wo")) << r.output;
  EXPECT_TRUE(contains(r.output, "blocks 1+1 of 1+2")) << r.output;
  EXPECT_TRUE(contains(r.output, "full depth (1+2):")) << r.output;
}

TEST(BenchStepCli, BadArgumentsFailWithOneLineErrors) {
  for (const char* args : {"bench-step", "bench-step --arch pixart-sigma --dtype f64",
                           "bench-step --arch pixart-sigma --tiny --layers 5", "bench-step --arch unet --tiny",
                           "bench-step --arch pixart-sigma --tiny --quant nosuch", "bench-step --arch auraflow --bogus",
                           "bench-step --arch pixart-sigma --tiny --versus bf16 --ops",
                           "bench-step --arch pixart-sigma --tiny --versus nosuch"}) {
    const RunResult r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "qdit bench-step: error:")) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
  }
}

}  // namespace
