// `qdit make-model --arch A --out DIR [--dtype bf16|f32] [--seed S] [--tiny] [--dry-run] [--force]`:
// writes a diffusers pipeline folder with the real architecture configs and deterministic random
// weights (benchmarks), or a tiny one with the same structure (tests). --dry-run only prints the
// plan: components, parameter counts and bytes.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "commands.h"
#include "qdit/api/make_model.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"

namespace qdit::cli {

namespace {

void usage() {
  std::string archs;
  for (const auto& a : api::make_model_archs()) archs += (archs.empty() ? "" : "|") + a;
  std::printf(
      "usage: qdit make-model --arch %s --out DIR\n"
      "                       [--dtype bf16|f32] [--seed S] [--tiny] [--dry-run] [--force]\n"
      "                       [--max-shard-size BYTES] [--threads N]\n"
      "Writes a diffusers pipeline folder with the real configs of the architecture and deterministic\n"
      "random weights (same seed, same bytes). --tiny: a few-MB model with the same structure.\n"
      "  --dtype           stored weight dtype (default bf16; f32 with --tiny)\n"
      "  --dry-run         print components, parameters and sizes without writing\n"
      "  --force           replace a pipeline already written in DIR\n"
      "  --max-shard-size  split weights above this many bytes (default: diffusers 10 GB, transformers 5 GB)\n",
      archs.c_str());
}

std::string gb(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else std::snprintf(buf, sizeof buf, "%.2f MB", bytes / 1e6);
  return buf;
}

void print_plan(const api::PipelineSpec& plan) {
  int64_t params = 0;
  uint64_t bytes = 0;
  std::printf("%s%s (%s), weights %s\n", plan.arch.c_str(), plan.tiny ? " tiny" : "",
              plan.model_index.at("_class_name").get<std::string>().c_str(), dtype_name(plan.dtype));
  for (const api::ComponentSpec& c : plan.components) {
    if (c.weights.empty()) {
      std::printf("  %-15s %s\n", c.name.c_str(), c.class_name.c_str());
      continue;
    }
    const uint64_t b = c.weight_bytes(plan.dtype);
    std::printf("  %-15s %-28s %15" PRId64 " params  %zu tensors  %s", c.name.c_str(), c.class_name.c_str(),
                c.parameters(), c.weights.size(), gb(b).c_str());
    if (c.buffer_elements()) std::printf("  (+%" PRId64 " buffer elements)", c.buffer_elements());
    std::printf("\n");
    params += c.parameters();
    bytes += b;
  }
  std::printf("  total           %43" PRId64 " params  %s\n", params, gb(bytes).c_str());
}

}  // namespace

int cmd_make_model(int argc, char** argv) {
  api::MakeModelOptions opt;
  bool dry_run = false, dtype_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[make-model] ", a, " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> uint64_t {
      const std::string v = value();
      size_t used = 0;
      uint64_t n = 0;
      try {
        n = std::stoull(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      QDIT_CHECK(used == v.size() && !v.empty() && v[0] != '-', "[make-model] ", a,
                 " expects a non-negative integer, got '", v, "'");
      return n;
    };
    if (a == "--arch") opt.arch = value();
    else if (a == "--out") opt.out = value();
    else if (a == "--seed") opt.seed = number();
    else if (a == "--tiny") opt.tiny = true;
    else if (a == "--dry-run") dry_run = true;
    else if (a == "--force") opt.overwrite = true;
    else if (a == "--max-shard-size") opt.max_shard_bytes = number();
    else if (a == "--threads") set_num_threads(static_cast<int>(number()));
    else if (a == "--dtype") {
      const std::string d = value();
      if (d == "bf16" || d == "bfloat16") opt.dtype = DType::BF16;
      else if (d == "f32" || d == "float32") opt.dtype = DType::F32;
      else fail("[make-model] --dtype must be bf16 or f32, got '", d, "'");
      dtype_given = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      fail("[make-model] unknown option '", a, "' (see qdit make-model --help)");
    }
  }
  QDIT_CHECK(!opt.arch.empty(), "[make-model] missing --arch (see qdit make-model --help)");
  if (!dtype_given && opt.tiny) opt.dtype = DType::F32;

  const api::PipelineSpec plan = api::plan_pipeline(opt.arch, opt.tiny, opt.dtype);
  if (dry_run) {
    print_plan(plan);
    return 0;
  }
  QDIT_CHECK(!opt.out.empty(), "[make-model] missing --out DIR (see qdit make-model --help)");

  std::string shown;
  int last_pct = -1;
  auto progress = [&](const std::string& comp, uint64_t done, uint64_t total) {
    const int pct = total ? static_cast<int>(done * 100 / total) : 100;
    if (total < 100'000'000 || (comp == shown && pct == last_pct)) return;  // small ones are instant
    shown = comp;
    last_pct = pct;
    std::fprintf(stderr, "\r%-15s %3d%%  %s", comp.c_str(), pct, gb(done).c_str());
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
  const api::MakeModelReport r = api::make_model(opt, progress);
  std::printf("wrote %s%s pipeline to %s (weights %s, seed %" PRIu64 ")\n", opt.arch.c_str(),
              opt.tiny ? " tiny" : "", opt.out.c_str(), dtype_name(opt.dtype), opt.seed);
  uint64_t bytes = 0;
  for (const api::ComponentReport& c : r.components) {
    std::printf("  %-15s %15" PRId64 " params  %2d files  %10s  %6.1f s\n", c.name.c_str(), c.parameters, c.files,
                gb(c.bytes).c_str(), c.seconds);
    bytes += c.bytes;
  }
  std::printf("  total           %s in %.1f s\n", gb(bytes).c_str(), r.seconds);
  return 0;
}

}  // namespace qdit::cli
