// `qdit quant-quality CASE_DIR... [--schemes a,b] [--out FILE.md]`: the quantization quality table
// (SNR of final latents and image vs float32 per scheme, target and pipeline case).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "qdit/api/quant_quality.h"
#include "qdit/core/error.h"
#include "qdit/quant/scheme.h"

namespace qdit::cli {

int cmd_quant_quality(int argc, char** argv) {
  std::vector<std::string> cases, schemes = quant::scheme_names();
  std::string out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[quant-quality] ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--schemes") {
      schemes.clear();
      std::istringstream is(value());
      for (std::string s; std::getline(is, s, ',');)
        if (!s.empty()) schemes.push_back(quant::find_scheme(s).name());
    } else if (a == "--out") {
      out = value();
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: qdit quant-quality PIPELINE_CASE_DIR... [--schemes a,b,...] [--out FILE.md]\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      fail("[quant-quality] unknown option ", a);
    } else {
      cases.push_back(a);
    }
  }
  QDIT_CHECK(!cases.empty(), "[quant-quality] no pipeline case folder given");
  auto rows = api::measure_quant_quality(cases, schemes, [](int done, int total) {
    std::fprintf(stderr, "\r%d/%d runs", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  });
  const std::string md = api::quality_markdown(rows);
  if (out.empty()) {
    std::printf("%s", md.c_str());
  } else {
    std::ofstream o(out);
    o << md;
    QDIT_CHECK(o.good(), "[quant-quality] cannot write ", out);
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}

}  // namespace qdit::cli
