// qdit command-line entry: dispatches to one subcommand; every qdit::Error becomes a one-line
// message on stderr and exit code 1 (never a crash).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "qdit/core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

const Command kCommands[] = {
#ifdef QDIT_HAVE_CMD_INSPECT
    {"inspect", qdit::cli::cmd_inspect, "inspect DIR: components, configs, tensor counts/dtypes/bytes"},
#endif
#ifdef QDIT_HAVE_CMD_GENERATE
    {"generate", qdit::cli::cmd_generate, "generate --prompt TEXT --out FILE.png [...]: text-to-image"},
#endif
#ifdef QDIT_HAVE_CMD_MAKE_MODEL
    {"make-model", qdit::cli::cmd_make_model, "make-model --arch A --out DIR [--tiny]: write a pipeline with random weights"},
#endif
#ifdef QDIT_HAVE_CMD_BENCH_STEP
    {"bench-step", qdit::cli::cmd_bench_step,
     "bench-step --arch A [--dtype bf16] [--quant S]: time one transformer forward, GFLOP/s vs peak"},
#endif
#ifdef QDIT_HAVE_CMD_CHECK
    {"check", qdit::cli::cmd_check,
     "check CASE_DIR [--dtype f32|bf16|fp16] [--quant SPEC] [--tolerance T]: compare with a reference case"},
#endif
#ifdef QDIT_HAVE_CMD_QUANT_QUALITY
    {"quant-quality", qdit::cli::cmd_quant_quality, "quant-quality CASE_DIR... [--out FILE.md]: quantization SNR table"},
#endif
#ifdef QDIT_HAVE_CMD_QUANTIZE
    {"quantize", qdit::cli::cmd_quantize, "quantize --model DIR --out DIR2 --quant SPEC: write a quantized pipeline"},
#endif
#ifdef QDIT_HAVE_CMD_PLAN
    {"plan", qdit::cli::cmd_plan,
     "plan --model DIR [--quant SPEC] [--width W --height H --batch B] [--max-memory SIZE]: predicted peak memory"},
#endif
#ifdef QDIT_HAVE_CMD_BENCH
    {"bench", qdit::cli::cmd_bench, "bench --model DIR [--quant-set ...] [--offload-set ...] [--batch 1,4]: table"},
#endif
    {nullptr, nullptr, nullptr},
};

void usage() {
  std::fprintf(stderr, "usage: qdit <command> [options]\ncommands:\n");
  for (const Command* c = kCommands; c->name; ++c) std::fprintf(stderr, "  %-10s %s\n", c->name, c->help);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  for (const Command* c = kCommands; c->name; ++c) {
    if (std::strcmp(argv[1], c->name) == 0) {
      try {
        return c->run(argc - 1, argv + 1);
      } catch (const qdit::Error& e) {
        std::fprintf(stderr, "qdit %s: error: %s\n", c->name, e.what());
        return 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "qdit %s: unexpected error: %s\n", c->name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "qdit: unknown command '%s'\n", argv[1]);
  usage();
  return 2;
}
