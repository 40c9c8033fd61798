// Subcommands of the `qdit` CLI. Each returns the process exit code; argv[0] is the subcommand.
#pragma once

namespace qdit::cli {
int cmd_inspect(int argc, char** argv);
int cmd_check(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_quant_quality(int argc, char** argv);
int cmd_make_model(int argc, char** argv);
int cmd_plan(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_bench_step(int argc, char** argv);
}  // namespace qdit::cli
