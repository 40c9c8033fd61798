// `qdit plan`: the predicted peak memory of every phase of a run and the plan chosen for a budget,
// from the pipeline's configs and tensor headers only (no weights are read).
#include <cstdio>
#include <string>

#include "commands.h"
#include "quant_args.h"
#include "qdit/core/error.h"
#include "qdit/runtime/bytes.h"
#include "qdit/runtime/memory_planner.h"

namespace qdit::cli {

namespace {

void usage() {
  std::printf(
      "usage: qdit plan --model DIR [--quant SPEC|auto] [--width W --height H] [--batch B]\n"
      "                 [--max-sequence-length L] [--guidance G] [--dtype f32|bf16]\n"
      "                 [--offload none|model|blocks] [--offload-group N] [--max-memory SIZE]\n"
      "Prints the predicted peak memory per phase (text encoding, denoising, decoding) for every offload\n"
      "mode, and the plan `qdit generate --max-memory SIZE` would choose (exit 1 when none fits).\n%s",
      QuantArgs::help());
}

void print_prediction(const runtime::MemoryPrediction& p) {
  std::printf("  %-14s %12s %12s %12s %12s\n", "phase", "weights", "mapped", "activations", "peak RSS");
  for (const auto& ph : p.phases)
    std::printf("  %-14s %12s %12s %12s %12s\n", ph.name.c_str(), runtime::format_bytes(ph.weights).c_str(),
                runtime::format_bytes(ph.mapped).c_str(), runtime::format_bytes(ph.activations).c_str(),
                runtime::format_bytes(ph.rss).c_str());
  std::printf("  %-14s %51s\n", "peak", runtime::format_bytes(p.peak_rss()).c_str());
}

}  // namespace

int cmd_plan(int argc, char** argv) {
  runtime::PlanRequest req;
  std::string model;
  QuantArgs qargs;
  size_t budget = 0;
  bool offload_given = false, group_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[plan] ", a, " needs a value");
      return argv[++i];
    };
    auto integer = [&]() -> int64_t {
      const std::string v = value();
      try {
        return std::stoll(v);
      } catch (const std::exception&) {
        fail("[plan] ", a, " expects an integer, got '", v, "'");
      }
    };
    if (qargs.parse(a, value)) continue;
    if (a == "--model") model = value();
    else if (a == "--width") req.width = integer();
    else if (a == "--height") req.height = integer();
    else if (a == "--batch") req.batch = static_cast<int>(integer());
    else if (a == "--max-sequence-length") req.max_sequence_length = static_cast<int>(integer());
    else if (a == "--guidance") req.guidance = std::stof(value());
    else if (a == "--offload-group") {
      req.group = static_cast<int>(integer());
      group_given = true;
    } else if (a == "--max-memory") budget = runtime::parse_bytes(value(), "plan --max-memory");
    else if (a == "--dtype") {
      const std::string d = value();
      auto dt = dtype_from_name(d);
      QDIT_CHECK(dt && (*dt == DType::F32 || *dt == DType::BF16), "[plan] --dtype must be f32 or bf16, got ", d);
      req.compute = *dt;
    } else if (a == "--offload") {
      const std::string o = value();
      auto m = pipelines::offload_from_name(o);
      QDIT_CHECK(m, "[plan] --offload must be none, model or blocks, got '", o, "'");
      req.offload = *m;
      offload_given = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      fail("[plan] unknown option ", a, " (see qdit plan --help)");
    }
  }
  QDIT_CHECK(!model.empty(), "[plan] --model DIR is required");
  const bool auto_quant = qargs.spec == "auto";
  QDIT_CHECK(!auto_quant || budget > 0, "[plan] --quant auto needs --max-memory");
  if (!auto_quant) req.quant = qargs.resolve();

  // Every offload mode for the quantization asked for (auto: the first candidate, unquantized).
  const runtime::MemoryPrediction base = runtime::predict_memory(model, req);
  const runtime::PlanRequest& r = base.request;
  std::printf("%s  %s: %lldx%lld, batch %d, max sequence length %d, guidance %g, %s\n", model.c_str(),
              base.pipeline_class.c_str(), static_cast<long long>(r.width), static_cast<long long>(r.height), r.batch,
              r.max_sequence_length, r.guidance, dtype_name(r.compute));
  std::printf("\n%-16s %-30s %-16s %12s %12s %12s\n", "component", "class", "quant", "checkpoint", "resident",
              "largest block");
  for (const auto& c : base.components) {
    size_t block = 0;
    for (const auto& s : c.stacks) block = std::max(block, runtime::StackWeights::max_group(s.tracked, 1));
    std::printf("%-16s %-30s %-16s %12s %12s %12s\n", c.name.c_str(), c.class_name.c_str(), c.quant.c_str(),
                runtime::format_bytes(c.checkpoint_bytes).c_str(), runtime::format_bytes(c.tracked() + c.mapped()).c_str(),
                block ? runtime::format_bytes(block).c_str() : "-");
  }
  for (pipelines::Offload o : {pipelines::Offload::None, pipelines::Offload::Model, pipelines::Offload::Blocks}) {
    runtime::PlanRequest q = req;
    q.offload = o;
    const runtime::MemoryPrediction p = runtime::predict_memory(model, q);
    std::printf("\n%s\n", p.plan_str().c_str());
    print_prediction(p);
  }
  std::printf("\nbaseline (process before weights): %s\n", runtime::format_bytes(base.baseline).c_str());
  if (budget == 0) return 0;

  runtime::PlanOptions po;
  po.auto_quant = auto_quant;
  po.fixed_offload = offload_given;
  po.fixed_group = group_given;
  const runtime::MemoryPrediction chosen = runtime::choose_plan(model, req, budget, po);
  std::printf("\nchosen for --max-memory %s: %s\n", runtime::format_bytes(budget).c_str(), chosen.plan_str().c_str());
  print_prediction(chosen);
  return 0;
}

}  // namespace qdit::cli
