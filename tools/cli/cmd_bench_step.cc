// `qdit bench-step`: times one transformer forward of a real-size DiT and reports GFLOP/s against
// the peak rates (see docs/speed.md).
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "commands.h"
#include "qdit/api/step_bench.h"
#include "qdit/core/error.h"
#include "qdit/core/profile.h"
#include "quant_args.h"

namespace qdit::cli {

namespace {

const char* kUsage =
    "usage: qdit bench-step (--arch ARCH | --model DIR) [options]\n"
    "  --arch A          pixart-sigma | sd3-medium | flux-dev | flux-schnell | auraflow: make-model's real\n"
    "                    architecture with its random weights, generated in memory (nothing written)\n"
    "  --model DIR       a pipeline folder (its transformer/) or a transformer folder instead\n"
    "  --tiny            make-model's tiny config of the arch (smoke tests)\n"
    "  --dtype f32|bf16  compute dtype (default bf16)\n"
    "  --quant SCHEME    quantize the transformer's Linears on load (int8dq, int8wo, int4wo, nf4, ...)\n"
    "  --layers N[,M]    run only the first N blocks (and M single blocks for Flux/AuraFlow)\n"
    "  --width W --height H   image size in pixels (default 512x512)\n"
    "  --batch B         latents per forward (default 2: classifier-free guidance)\n"
    "  --text-len L      text tokens (default: the pipeline's)\n"
    "  --threads N       worker threads (default: all cores)\n"
    "  --repeat R --warmup W  timed and untimed forwards (default 3 and 1)\n"
    "  --no-fuse-qkv     separate q/k/v GEMMs\n"
    "  --ops             time per kernel (linear, attention, norms, ...)\n"
    "  --no-peak         skip measuring this machine's GEMM rate\n"
    "  --markdown        also print one markdown table row\n"
    "  --versus V        also build the same model as V (bf16, f32 or a quant scheme such as int8dq) and\n"
    "                    interleave the two's timed forwards; prints how many times faster the first is\n"
    "                    (per back-to-back pair: robust when the machine's speed drifts)\n";

std::vector<int64_t> parse_layers(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    QDIT_CHECK(!part.empty() && end && *end == '\0' && v >= 0, "--layers: expected N or N,M, got '", s, "'");
    out.push_back(v);
  }
  return out;
}

int64_t parse_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  QDIT_CHECK(!v.empty() && end && *end == '\0', flag, ": expected an integer, got '", v, "'");
  return x;
}

}  // namespace

int cmd_bench_step(int argc, char** argv) {
  api::StepBenchOptions opt;
  QuantArgs quant;
  bool ops = false, markdown = false;
  std::string versus;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--arch") {
      opt.arch = value();
    } else if (a == "--tiny") {
      opt.tiny = true;
    } else if (a == "--model") {
      opt.model_dir = value();
    } else if (a == "--dtype") {
      const std::string d = value();
      QDIT_CHECK(d == "f32" || d == "bf16", "--dtype: expected f32 or bf16, got '", d, "'");
      opt.compute = d == "f32" ? DType::F32 : DType::BF16;
    } else if (a == "--layers") {
      opt.layers = parse_layers(value());
    } else if (a == "--width") {
      opt.width = parse_int(a, value());
    } else if (a == "--height") {
      opt.height = parse_int(a, value());
    } else if (a == "--batch") {
      opt.batch = parse_int(a, value());
    } else if (a == "--text-len") {
      opt.text_len = parse_int(a, value());
    } else if (a == "--threads") {
      opt.threads = static_cast<int>(parse_int(a, value()));
    } else if (a == "--repeat") {
      opt.repeat = static_cast<int>(parse_int(a, value()));
    } else if (a == "--warmup") {
      opt.warmup = static_cast<int>(parse_int(a, value()));
    } else if (a == "--seed") {
      opt.seed = static_cast<uint64_t>(parse_int(a, value()));
    } else if (a == "--no-fuse-qkv") {
      opt.fuse_qkv = false;
    } else if (a == "--ops") {
      ops = true;
    } else if (a == "--no-peak") {
      opt.measure_peak = false;
    } else if (a == "--markdown") {
      markdown = true;
    } else if (a == "--versus") {
      versus = value();
    } else if (quant.parse(a, value)) {
    } else {
      fail("unknown option '", a, "' (see qdit bench-step --help)");
    }
  }
  QDIT_CHECK(!opt.arch.empty() || !opt.model_dir.empty(), "give --arch or --model (see qdit bench-step --help)");
  opt.quant = quant.resolve();
  if (!versus.empty()) {
    QDIT_CHECK(!ops && !markdown, "--versus prints neither per-op times (--ops) nor a markdown row (--markdown): "
               "the interleaved forwards would mix them; run each configuration alone for those");
    api::StepBenchOptions other = opt;
    other.quant = {};
    if (versus == "f32" || versus == "bf16") {
      other.compute = versus == "f32" ? DType::F32 : DType::BF16;
    } else {
      other.quant = quant::PipelineQuantConfig::parse_spec(versus);
    }
    const auto [ra, rb] = api::run_step_bench_versus(opt, other);
    std::fputs(api::format_step_bench(ra, false).c_str(), stdout);
    std::fputs(api::format_step_bench(rb, false).c_str(), stdout);
    std::fputs(api::format_versus(ra, rb).c_str(), stdout);
    return 0;
  }
  const api::StepBenchResult r = api::run_step_bench(opt);
  std::fputs(api::format_step_bench(r, ops).c_str(), stdout);
  if (markdown) std::printf("%s\n", api::step_bench_markdown_row(r).c_str());
  return 0;
}

}  // namespace qdit::cli
