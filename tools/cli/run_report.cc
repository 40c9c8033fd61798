#include "run_report.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qdit/core/error.h"

namespace qdit::cli {

namespace {

double mib(size_t b) { return static_cast<double>(b) / 1048576.0; }

const runtime::PhasePrediction* predicted(const RunReport& r, const std::string& phase) {
  if (!r.prediction) return nullptr;
  for (const auto& p : r.prediction->phases)
    if (p.name == phase) return &p;
  return nullptr;
}

size_t measured_peak(const pipelines::GenerateResult& r) {
  size_t peak = 0;
  for (const auto& p : r.phases) peak = std::max(peak, p.rss_peak_bytes);
  return peak;
}

}  // namespace

std::string numbered_path(const std::string& path, int64_t index, int64_t count) {
  if (count <= 1) return path;
  const size_t dot = path.rfind('.'), slash = path.rfind('/');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  const std::string stem = has_ext ? path.substr(0, dot) : path, ext = has_ext ? path.substr(dot) : "";
  return stem + "_" + std::to_string(index) + ext;
}

void print_summary(const RunReport& r) {
  std::fprintf(stderr, "\n%-16s %-30s %-16s %14s %14s  %s\n", "component", "class", "quant", "checkpoint", "resident",
               "residency");
  for (const auto& c : r.result.components)
    std::fprintf(stderr, "%-16s %-30s %-16s %10.2f MiB %10.2f MiB  %s\n", c.name.c_str(), c.class_name.c_str(),
                 c.quant.c_str(), mib(c.checkpoint_bytes), mib(c.resident_bytes), c.residency.c_str());

  std::fprintf(stderr, "\n%-14s %8s %14s %14s %16s\n", "phase", "time s", "peak tracked", "peak RSS", "predicted RSS");
  std::fprintf(stderr, "%-14s %8.2f\n", "load", r.load_seconds);
  double total = r.load_seconds;
  for (const auto& p : r.result.phases) {
    const runtime::PhasePrediction* pp = predicted(r, p.name);
    std::fprintf(stderr, "%-14s %8.2f %10.1f MiB %10.1f MiB", p.name.c_str(), p.seconds, mib(p.tracked_peak_bytes),
                 mib(p.rss_peak_bytes));
    if (pp) std::fprintf(stderr, " %12.1f MiB", mib(pp->rss));
    std::fprintf(stderr, "\n");
    total += p.seconds;
  }
  std::fprintf(stderr, "%-14s %8.2f %25.1f MiB", "total", total, mib(measured_peak(r.result)));
  if (r.prediction) std::fprintf(stderr, " %12.1f MiB", mib(r.prediction->peak_rss()));
  std::fprintf(stderr, "\n");
}

void write_report(const std::string& path, const RunReport& r) {
  using nlohmann::json;
  const pipelines::GenerateRequest& u = r.result.used;
  json j;
  j["model"] = r.model;
  j["pipeline"] = r.pipeline;
  j["settings"] = {{"prompt", u.prompt},
                   {"negative_prompt", u.negative_prompt},
                   {"steps", u.steps},
                   {"guidance", u.guidance},
                   {"seed", u.seed},
                   {"width", u.width},
                   {"height", u.height},
                   {"batch", u.num_images},
                   {"max_sequence_length", u.max_sequence_length},
                   {"dtype", r.dtype},
                   {"quant", r.options.quant.empty() ? "none" : r.options.quant.str()},
                   {"offload", pipelines::offload_name(r.options.offload)},
                   {"offload_group", r.options.offload_group}};
  j["components"] = json::array();
  for (const auto& c : r.result.components)
    j["components"].push_back({{"name", c.name},
                               {"class", c.class_name},
                               {"quant", c.quant},
                               {"checkpoint_bytes", c.checkpoint_bytes},
                               {"resident_bytes", c.resident_bytes},
                               {"residency", c.residency}});
  j["load_seconds"] = r.load_seconds;
  double total = r.load_seconds, denoise = 0;
  j["phases"] = json::array();
  for (const auto& p : r.result.phases) {
    json ph = {{"name", p.name},
               {"seconds", p.seconds},
               {"tracked_peak_bytes", p.tracked_peak_bytes},
               {"rss_peak_bytes", p.rss_peak_bytes}};
    if (const runtime::PhasePrediction* pp = predicted(r, p.name))
      ph["predicted"] = {{"weights_bytes", pp->weights},
                         {"mapped_bytes", pp->mapped},
                         {"activation_bytes", pp->activations},
                         {"tracked_bytes", pp->tracked},
                         {"rss_bytes", pp->rss}};
    j["phases"].push_back(ph);
    total += p.seconds;
    if (p.name == "denoising") denoise = p.seconds;
  }
  j["total_seconds"] = total;
  j["seconds_per_step"] = u.steps > 0 ? denoise / u.steps : 0.0;
  j["peak_rss_bytes"] = measured_peak(r.result);
  if (r.prediction) {
    j["predicted_peak_rss_bytes"] = r.prediction->peak_rss();
    j["predicted_baseline_bytes"] = r.prediction->baseline;
    j["plan"] = r.prediction->plan_str();
  }
  std::ofstream f(path);
  QDIT_CHECK(f, "[generate] cannot write the report ", path);
  f << j.dump(2) << "\n";
  QDIT_CHECK(f.good(), "[generate] writing the report ", path, " failed");
}

}  // namespace qdit::cli
