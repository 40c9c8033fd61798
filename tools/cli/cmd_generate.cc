// `qdit generate`: text-to-image with any supported pipeline folder. Progress goes to stderr, a
// summary (time, measured and predicted peak memory per phase) follows, and the PNG carries the
// parameters. --max-memory plans the run (runtime::choose_plan) before any weight is read.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "commands.h"
#include "quant_args.h"
#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/io/png_writer.h"
#include "qdit/io/safetensors.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/runtime/bytes.h"
#include "qdit/runtime/memory_planner.h"
#include "run_report.h"

#ifndef QDIT_DEFAULT_MODEL_DIR
#define QDIT_DEFAULT_MODEL_DIR "assets/tiny-pixart-sigma"
#endif

namespace qdit::cli {

namespace {

void usage() {
  std::printf(
      "usage: qdit generate [--model DIR] --prompt TEXT [--negative-prompt TEXT] [--steps N] [--guidance G]\n"
      "                     [--seed S] [--width W --height H] [--max-sequence-length L]\n"
      "                     [--latents FILE.safetensors] [--dtype f32|bf16|fp16] [--threads N] [--fuse-qkv]\n"
      "                     [--quant SPEC ...]\n"
      "                     [--batch N] [--offload none|model|blocks] [--offload-group N] [--max-memory SIZE]\n"
      "                     [--no-memory-check] [--report FILE.json] --out FILE.png\n"
      "With no --model, the built-in tiny PixArt-Sigma pipeline (random weights) at %s is used.\n%s"
      "  --batch N            images per prompt (FILE.png becomes FILE_0.png ... when N > 1)\n"
      "  --offload MODE       none: every component loaded up front and kept; model (default): each\n"
      "                       component only for its phase; blocks: as model, and transformer/text-encoder\n"
      "                       blocks built a group at a time (prefetched) and dropped after use\n"
      "  --offload-group N    blocks per group with --offload blocks (default 1)\n"
      "  --max-memory SIZE    plan the least-offloaded run whose predicted peak fits (e.g. 8GiB); refused\n"
      "                       before any weight is read when none does. --quant auto lets it quantize too\n"
      "  --no-memory-check    run even when the predicted peak exceeds this machine's memory (without\n"
      "                       --max-memory such a run is refused before loading, naming a plan that fits)\n"
      "  --report FILE.json   settings, plan, and time / measured and predicted peak memory per phase\n",
      QDIT_DEFAULT_MODEL_DIR, QuantArgs::help());
}

// "denoising [##########..........] 10/20  0.52 s/step"
class ProgressBar {
 public:
  void update(const std::string& phase, int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (phase != phase_ || done == 0) {
      phase_ = phase;
      start_ = now;
    }
    const int width = 30, filled = total > 0 ? done * width / total : width;
    const double per = done > 0 ? std::chrono::duration<double>(now - start_).count() / done : 0.0;
    std::fprintf(stderr, "\r%-10s [%.*s%.*s] %d/%d  %.2f s/step", phase.c_str(), filled,
                 "##############################", width - filled, "..............................", done, total, per);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string phase_;
  std::chrono::steady_clock::time_point start_;
};

std::string format_parameters(const pipelines::GenerateRequest& r, const std::string& pipeline, const std::string& model,
                              const char* dtype, const std::string& quant) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "Steps: %d, CFG scale: %g, Seed: %llu, Size: %lldx%lld, Max sequence length: %d, "
                "Pipeline: %s, Model: %s, Dtype: %s, Quantization: %s, Generator: qdit",
                r.steps, r.guidance, static_cast<unsigned long long>(r.seed), static_cast<long long>(r.width),
                static_cast<long long>(r.height), r.max_sequence_length, pipeline.c_str(), model.c_str(), dtype,
                quant.c_str());
  std::string s = r.prompt + "\n";
  if (!r.negative_prompt.empty()) s += "Negative prompt: " + r.negative_prompt + "\n";
  return s + buf;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  pipelines::GenerateRequest req;
  pipelines::PipelineOptions popt;
  std::string model = QDIT_DEFAULT_MODEL_DIR, out, latents_file, report_file;
  bool have_prompt = false, offload_given = false, group_given = false;
  size_t max_memory = 0;
  bool memory_check = true;
  QuantArgs qargs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[generate] ", a, " needs a value");
      return argv[++i];
    };
    auto number = [&](auto parse) {
      const std::string v = value();
      try {
        return parse(v);
      } catch (const std::exception&) {
        fail("[generate] ", a, " expects a number, got '", v, "'");
      }
    };
    auto to_int = [](const std::string& v) { return std::stoll(v); };
    auto to_float = [](const std::string& v) { return std::stof(v); };
    if (qargs.parse(a, value)) continue;
    if (a == "--model") model = value();
    else if (a == "--prompt") { req.prompt = value(); have_prompt = true; }
    else if (a == "--negative-prompt") req.negative_prompt = value();
    else if (a == "--steps") req.steps = static_cast<int>(number(to_int));
    else if (a == "--guidance") req.guidance = number(to_float);
    else if (a == "--seed") req.seed = static_cast<uint64_t>(number(to_int));
    else if (a == "--width") req.width = number(to_int);
    else if (a == "--height") req.height = number(to_int);
    else if (a == "--max-sequence-length") req.max_sequence_length = static_cast<int>(number(to_int));
    else if (a == "--latents") latents_file = value();
    else if (a == "--out") out = value();
    else if (a == "--report") report_file = value();
    else if (a == "--batch") req.num_images = static_cast<int>(number(to_int));
    else if (a == "--max-memory") max_memory = runtime::parse_bytes(value(), "generate --max-memory");
    else if (a == "--no-memory-check") memory_check = false;
    else if (a == "--offload-group") {
      popt.offload_group = static_cast<int>(number(to_int));
      group_given = true;
    } else if (a == "--offload") {
      const std::string o = value();
      auto mode = pipelines::offload_from_name(o);
      QDIT_CHECK(mode, "[generate] --offload must be none, model or blocks, got '", o, "'");
      popt.offload = *mode;
      offload_given = true;
    }
    else if (a == "--threads") set_num_threads(static_cast<int>(number(to_int)));
    else if (a == "--fuse-qkv") popt.ctx.fuse_qkv = true;
    else if (a == "--dtype") {
      const std::string d = value();
      auto dt = dtype_from_name(d);
      QDIT_CHECK(dt && (*dt == DType::F32 || *dt == DType::BF16 || *dt == DType::F16), "[generate] --dtype must be "
                 "f32, bf16 or fp16, got ", d);
      popt.ctx.compute = *dt;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      fail("[generate] unknown option ", a, " (see qdit generate --help)");
    }
  }
  QDIT_CHECK(have_prompt, "[generate] --prompt is required");
  const bool auto_quant = qargs.spec == "auto";
  QDIT_CHECK(!auto_quant || max_memory > 0, "[generate] --quant auto needs --max-memory (it quantizes only to fit)");
  if (!auto_quant) popt.quant = qargs.resolve();
  QDIT_CHECK(req.num_images >= 1, "[generate] --batch must be at least 1, got ", req.num_images);
  QDIT_CHECK(popt.offload_group >= 1, "[generate] --offload-group must be at least 1, got ", popt.offload_group);
  QDIT_CHECK(!out.empty(), "[generate] --out FILE.png is required");
  QDIT_CHECK(req.steps >= 0 && req.width >= 0 && req.height >= 0, "[generate] steps, width and height must be positive");
  if (!latents_file.empty()) {
    auto f = io::SafetensorsFile::open(latents_file);
    QDIT_CHECK(f->contains("latents") || f->records().size() == 1, "[generate] ", latents_file,
               ": expected a tensor named 'latents' (or a single tensor)");
    req.latents = f->contains("latents") ? f->tensor("latents") : f->tensor(f->records()[0]);
  }

  // The plan (or, without a budget, the prediction for the settings given): configs and tensor
  // headers only, before any weight is read.
  runtime::PlanRequest plan_req;
  plan_req.width = req.width;
  plan_req.height = req.height;
  plan_req.batch = req.num_images;
  plan_req.max_sequence_length = req.max_sequence_length;
  plan_req.guidance = req.guidance;
  plan_req.compute = popt.ctx.compute;
  plan_req.quant = popt.quant;
  plan_req.offload = popt.offload;
  plan_req.group = popt.offload_group;
  std::optional<runtime::MemoryPrediction> prediction;
  if (max_memory > 0) {
    runtime::PlanOptions po;
    po.auto_quant = auto_quant;
    po.fixed_offload = offload_given;
    po.fixed_group = group_given;
    prediction = runtime::choose_plan(model, plan_req, max_memory, po);
    popt.offload = prediction->request.offload;
    popt.offload_group = prediction->request.group;
    popt.quant = prediction->request.quant;
    std::fprintf(stderr, "plan: %s, predicted peak %s (budget %s)\n", prediction->plan_str().c_str(),
                 runtime::format_bytes(prediction->peak_rss()).c_str(), runtime::format_bytes(max_memory).c_str());
  } else {
    try {
      prediction = runtime::predict_memory(model, plan_req);
    } catch (const Error& e) {
      std::fprintf(stderr, "(no memory prediction: %s)\n", e.what());
    }
    if (prediction && memory_check) {
      if (auto refusal = runtime::check_fits_machine(model, *prediction, machine_memory_bytes())) fail(*refusal);
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto pipe = pipelines::load_pipeline(model, popt);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ProgressBar bar;
  pipelines::RunHooks hooks;
  hooks.progress = [&](const std::string& phase, int done, int total) { bar.update(phase, done, total); };
  pipelines::GenerateResult r = pipe->generate(req, hooks);
  const char* dtype = dtype_name(popt.ctx.compute);
  const std::string params = format_parameters(r.used, pipe->class_name(), model, dtype, popt.quant.str());
  const int64_t n = r.image.size(0);
  for (int64_t i = 0; i < n; ++i)
    io::write_png(numbered_path(out, i, n), n == 1 ? r.image : r.image.slice(0, i, i + 1).contiguous(),
                  {{"parameters", params}});

  RunReport report{model, pipe->class_name(), dtype, popt, r, load_s, prediction};
  print_summary(report);
  if (!report_file.empty()) write_report(report_file, report);
  std::printf("wrote %s (%lldx%lld, %d steps, %s)\n", numbered_path(out, 0, n).c_str(), static_cast<long long>(r.used.width),
              static_cast<long long>(r.used.height), r.used.steps, pipe->class_name().c_str());
  return 0;
}

}  // namespace qdit::cli
