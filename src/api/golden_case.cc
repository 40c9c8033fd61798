#include "qdit/api/golden_case.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "qdit/api/case_runners.h"
#include "qdit/core/error.h"

namespace qdit::api {

namespace {
std::map<std::string, CaseRunner>& runners() {
  static std::map<std::string, CaseRunner> r;
  return r;
}
void ensure_runners() {
  static const bool once = [] {
    register_builtin_case_runners();
    return true;
  }();
  (void)once;
}
}  // namespace

std::string GoldenCase::kind() const { return info.get<std::string>("kind"); }

GoldenCase GoldenCase::open(const std::string& dir) {
  namespace fs = std::filesystem;
  QDIT_CHECK(fs::is_directory(dir), "[check] case folder ", dir, " does not exist");
  GoldenCase c;
  c.dir = dir;
  c.info = io::JsonConfig::load(dir + "/case.json");
  c.inputs = io::SafetensorsFile::open(dir + "/inputs.safetensors");
  c.outputs = io::SafetensorsFile::open(dir + "/outputs.safetensors");
  return c;
}

bool GoldenCase::has_input(const std::string& name) const { return inputs->contains(name); }

Tensor GoldenCase::input(const std::string& name) const {
  QDIT_CHECK(inputs->contains(name), "[check] case ", dir, ": inputs.safetensors has no tensor '", name, "'");
  return inputs->tensor(name);
}

void register_case_runner(const std::string& kind, CaseRunner runner) { runners()[kind] = std::move(runner); }

double default_tolerance(const std::string& kind) { return kind == "pipeline" ? 1e-3 : 1e-4; }

TensorCheck compare_tensor(const std::string& name, const Tensor& got, const Tensor& ref, double rel_tol,
                           bool relative_to_max_only) {
  TensorCheck c;
  c.name = name;
  QDIT_CHECK(got.numel() == ref.numel(), "[check] ", name, ": produced ", got.desc(), " but the reference is ",
             ref.desc());
  std::vector<float> a = got.to_vector(), b = ref.to_vector();
  double err = 0, mx = 0, sig = 0, noise = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    mx = std::max(mx, std::fabs(static_cast<double>(b[i])));
    sig += static_cast<double>(b[i]) * b[i];
    noise += d * d;
  }
  c.max_abs_err = err;
  c.max_ref = mx;
  c.tolerance = rel_tol * (relative_to_max_only ? mx : std::max(1.0, mx));
  c.snr_db = noise == 0 ? INFINITY : 10.0 * std::log10(sig / noise);
  c.pass = err <= c.tolerance;
  return c;
}

bool CheckReport::pass() const {
  if (tensors.empty()) return false;
  if (informational) return true;
  for (const auto& t : tensors)
    if (!t.pass) return false;
  return true;
}

std::string CheckReport::str() const {
  std::ostringstream os;
  char buf[256];
  for (const auto& t : tensors) {
    if (informational)
      std::snprintf(buf, sizeof buf, "  %-44s max|err| %.3e  max|ref| %.3e  rel %.3e  SNR %6.1f dB\n", t.name.c_str(),
                    t.max_abs_err, t.max_ref, t.max_abs_err / std::max(1e-30, t.max_ref), t.snr_db);
    else
      std::snprintf(buf, sizeof buf, "  %-44s max|err| %.3e  max|ref| %.3e  tol %.3e  SNR %6.1f dB  %s\n",
                    t.name.c_str(), t.max_abs_err, t.max_ref, t.tolerance, t.snr_db, t.pass ? "PASS" : "FAIL");
    os << buf;
  }
  if (!not_produced.empty()) {
    os << "  (" << not_produced.size() << " reference outputs not produced by qdit:";
    for (size_t i = 0; i < not_produced.size() && i < 6; ++i) os << " " << not_produced[i];
    os << (not_produced.size() > 6 ? " ..." : "") << ")\n";
  }
  if (informational) {
    double worst = INFINITY;
    for (const auto& t : tensors) worst = std::min(worst, t.snr_db);
    std::snprintf(buf, sizeof buf, "%s [%s]: min SNR %.1f dB vs float32 (no tolerance given)\n", case_name.c_str(),
                  kind.c_str(), worst);
    os << buf;
    return os.str();
  }
  os << case_name << " [" << kind << "]: " << (pass() ? "PASS" : "FAIL") << "\n";
  return os.str();
}

CheckReport run_case(const std::string& dir, const CheckOptions& opt) {
  ensure_runners();
  GoldenCase c = GoldenCase::open(dir);
  CheckReport report;
  report.informational = (opt.compute != DType::F32 || !opt.quant.empty()) && !opt.tolerance;
  report.kind = c.kind();
  report.case_name = c.info.get_or<std::string>("case", std::filesystem::path(dir).filename().string());
  auto it = runners().find(report.kind);
  QDIT_CHECK(it != runners().end(), "[check] ", dir, "/case.json: no runner for case kind '", report.kind, "'");
  CaseOutputs produced = it->second(c, opt);
  const double tol = opt.tolerance.value_or(default_tolerance(report.kind));
  const bool relative_to_max = report.kind == "pipeline" && !opt.tolerance;
  for (const auto& rec : c.outputs->records()) {
    auto p = produced.find(rec.name);
    if (p == produced.end()) {
      report.not_produced.push_back(rec.name);
      continue;
    }
    report.tensors.push_back(compare_tensor(rec.name, p->second, c.outputs->tensor(rec.name), tol, relative_to_max));
  }
  return report;
}

}  // namespace qdit::api
