// `qdit check CASE_DIR...`: runs reference cases (tests/golden format) through qdit and prints the
// error per output tensor; exit 0 only when every case passes.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "quant_args.h"
#include "qdit/api/golden_case.h"
#include "qdit/core/error.h"

namespace qdit::cli {

int cmd_check(int argc, char** argv) {
  api::CheckOptions opt;
  std::vector<std::string> cases;
  QuantArgs qargs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[check] ", a, " needs a value");
      return argv[++i];
    };
    if (qargs.parse(a, value)) {
      continue;
    } else if (a == "--dtype") {
      const std::string d = value();
      auto dt = dtype_from_name(d);
      QDIT_CHECK(dt && (*dt == DType::F32 || *dt == DType::BF16 || *dt == DType::F16), "[check] --dtype must be "
                 "f32, bf16 or fp16, got ", d);
      opt.compute = *dt;
    } else if (a == "--fuse-qkv") {
      opt.fuse_qkv = true;
    } else if (a == "--tolerance") {
      opt.tolerance = std::stod(value());
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: qdit check CASE_DIR... [--dtype f32|bf16|fp16] [--fuse-qkv] [--tolerance REL] [--quant SPEC ...]\n"
                  "Runs at bf16 or with quantized weights report error and SNR vs float32; PASS/FAIL only\n"
                  "with --tolerance.\n%s", QuantArgs::help());
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      fail("[check] unknown option ", a);
    } else {
      cases.push_back(a);
    }
  }
  QDIT_CHECK(!cases.empty(), "[check] no case folder given");
  opt.quant = qargs.resolve();
  int failed = 0;
  for (const auto& c : cases) {
    api::CheckReport r = api::run_case(c, opt);
    std::printf("%s", r.str().c_str());
    if (!r.pass()) ++failed;
  }
  if (cases.size() > 1) std::printf("%zu passed, %d failed\n", cases.size() - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace qdit::cli
