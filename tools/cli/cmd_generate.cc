// `qdit generate`: text-to-image with any supported pipeline folder. Progress goes to stderr, a
// summary (time and peak memory per phase) follows, and the PNG carries the parameters.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "quant_args.h"
#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/io/png_writer.h"
#include "qdit/io/safetensors.h"
#include "qdit/pipelines/pipeline.h"

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
      "                     --out FILE.png\n"
      "With no --model, the built-in tiny PixArt-Sigma pipeline (random weights) at %s is used.\n%s",
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
  std::string model = QDIT_DEFAULT_MODEL_DIR, out, latents_file;
  bool have_prompt = false;
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
  popt.quant = qargs.resolve();
  QDIT_CHECK(!out.empty(), "[generate] --out FILE.png is required");
  QDIT_CHECK(req.steps >= 0 && req.width >= 0 && req.height >= 0, "[generate] steps, width and height must be positive");
  if (!latents_file.empty()) {
    auto f = io::SafetensorsFile::open(latents_file);
    QDIT_CHECK(f->contains("latents") || f->records().size() == 1, "[generate] ", latents_file,
               ": expected a tensor named 'latents' (or a single tensor)");
    req.latents = f->contains("latents") ? f->tensor("latents") : f->tensor(f->records()[0]);
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto pipe = pipelines::load_pipeline(model, popt);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ProgressBar bar;
  pipelines::RunHooks hooks;
  hooks.progress = [&](const std::string& phase, int done, int total) { bar.update(phase, done, total); };
  pipelines::GenerateResult r = pipe->generate(req, hooks);
  const char* dtype = dtype_name(popt.ctx.compute);
  io::write_png(out, r.image, {{"parameters", format_parameters(r.used, pipe->class_name(), model, dtype, popt.quant.str())}});

  std::fprintf(stderr, "\n%-16s %-30s %-10s %14s %14s\n", "component", "class", "quant", "checkpoint", "resident");
  for (const auto& c : r.components)
    std::fprintf(stderr, "%-16s %-30s %-10s %10.2f MiB %10.2f MiB\n", c.name.c_str(), c.class_name.c_str(),
                 c.quant.c_str(), c.checkpoint_bytes / 1048576.0, c.resident_bytes / 1048576.0);

  std::fprintf(stderr, "\n%-14s %8s %14s %14s\n", "phase", "time s", "peak tracked", "peak RSS");
  std::fprintf(stderr, "%-14s %8.2f\n", "load", load_s);
  double total = load_s;
  for (const auto& p : r.phases) {
    std::fprintf(stderr, "%-14s %8.2f %10.1f MiB %10.1f MiB\n", p.name.c_str(), p.seconds,
                 p.tracked_peak_bytes / 1048576.0, p.rss_peak_bytes / 1048576.0);
    total += p.seconds;
  }
  std::fprintf(stderr, "%-14s %8.2f %25.1f MiB\n", "total", total, process_peak_rss() / 1048576.0);
  std::printf("wrote %s (%lldx%lld, %d steps, %s)\n", out.c_str(), static_cast<long long>(r.used.width),
              static_cast<long long>(r.used.height), r.used.steps, pipe->class_name().c_str());
  return 0;
}

}  // namespace qdit::cli
