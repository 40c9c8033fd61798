// `qdit quantize --model DIR --out DIR2 --quant SPEC`: writes a quantized copy of a pipeline that
// `qdit generate --model DIR2` runs without re-quantizing; prints checkpoint sizes before/after.
#include <chrono>
#include <cstdio>
#include <string>

#include "commands.h"
#include "qdit/api/quantize_pipeline.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "quant_args.h"

namespace qdit::cli {

int cmd_quantize(int argc, char** argv) {
  std::string model, out;
  QuantArgs qargs;
  api::QuantizeOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[quantize] ", a, " needs a value");
      return argv[++i];
    };
    if (qargs.parse(a, value)) continue;
    if (a == "--model") model = value();
    else if (a == "--out") out = value();
    else if (a == "--overwrite") opt.overwrite = true;
    else if (a == "--threads") set_num_threads(std::stoi(value()));
    else if (a == "-h" || a == "--help") {
      std::printf("usage: qdit quantize --model DIR --out DIR2 --quant SPEC [--quant-exclude PATS] [--overwrite]\n%s",
                  QuantArgs::help());
      return 0;
    } else {
      fail("[quantize] unknown option ", a, " (see qdit quantize --help)");
    }
  }
  QDIT_CHECK(!model.empty(), "[quantize] --model DIR is required");
  QDIT_CHECK(!out.empty(), "[quantize] --out DIR is required");
  const auto cfg = qargs.resolve();
  opt.progress = [](const std::string& c, int done, int total) {
    if (!c.empty()) std::fprintf(stderr, "\r[%d/%d] %-20s", done + 1, total, c.c_str());
    else std::fprintf(stderr, "\r%-40s\r", "");
  };
  const auto t0 = std::chrono::steady_clock::now();
  auto rows = api::quantize_pipeline(model, out, cfg, opt);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-16s %-30s %-12s %14s %14s\n", "component", "class", "quant", "before", "after");
  for (const auto& r : rows)
    std::printf("%-16s %-30s %-12s %10.2f MiB %10.2f MiB\n", r.name.c_str(), r.class_name.c_str(), r.quant.c_str(),
                r.checkpoint_bytes / 1048576.0, r.resident_bytes / 1048576.0);
  std::printf("wrote %s in %.1f s (%s)\n", out.c_str(), s, cfg.str().c_str());
  return 0;
}

}  // namespace qdit::cli
