// Access to the golden scheduler and pipeline cases for the scheduler tests: case.json, the
// inputs/outputs safetensors, and per-element comparison helpers with informative failures.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/json_config.h"
#include "qdit/io/safetensors.h"

namespace qdit::schedulers::testing {

inline std::string golden_dir(const std::string& name) { return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + name; }

struct GoldenCase {
  std::string dir;
  io::JsonConfig meta;  // case.json
  std::shared_ptr<io::SafetensorsFile> inputs, outputs;

  explicit GoldenCase(const std::string& name)
      : dir(golden_dir(name)),
        meta(io::JsonConfig::load(dir + "/case.json")),
        inputs(io::SafetensorsFile::open(dir + "/inputs.safetensors")),
        outputs(io::SafetensorsFile::open(dir + "/outputs.safetensors")) {}

  Tensor in(const std::string& key) const { return inputs->tensor(key).contiguous(); }
  Tensor out(const std::string& key) const { return outputs->tensor(key).contiguous(); }
  std::vector<float> out_vec(const std::string& key) const { return outputs->tensor(key).to_vector(); }

  // Integers N for which outputs hold `<prefix>timesteps_n<N>` (e.g. prefix "" or "schnell_").
  std::vector<int> recorded_step_counts(const std::string& prefix) const {
    std::vector<int> ns;
    const std::string head = prefix + "timesteps_n";
    for (const auto& r : outputs->records()) {
      if (r.name.rfind(head, 0) != 0) continue;
      const std::string tail = r.name.substr(head.size());
      if (!tail.empty() && std::all_of(tail.begin(), tail.end(), ::isdigit)) ns.push_back(std::stoi(tail));
    }
    std::sort(ns.begin(), ns.end());
    return ns;
  }
};

// Golden case folders whose name starts with `prefix` (sorted).
inline std::vector<std::string> golden_cases_with_prefix(const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(std::string(QDIT_TEST_DATA_DIR) + "/golden")) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind(prefix, 0) == 0) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

inline float max_abs_of(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// max |got - ref| <= rel * max(1, max|ref|), elementwise over equally long vectors.
inline void expect_close_vec(const std::vector<float>& got, const std::vector<float>& ref, double rel,
                             const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const double tol = rel * std::max(1.0, static_cast<double>(max_abs_of(ref)));
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (std::isnan(d) || d > worst) {
      worst = std::isnan(d) ? INFINITY : d;
      at = i;
    }
  }
  EXPECT_LE(worst, tol) << what << ": max abs err " << worst << " at [" << at << "] (got " << got[at] << ", ref "
                        << ref[at] << "), tol " << tol;
}

inline void expect_close(const Tensor& got, const Tensor& ref, double rel, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  expect_close_vec(got.to_vector(), ref.to_vector(), rel, what);
}

}  // namespace qdit::schedulers::testing
