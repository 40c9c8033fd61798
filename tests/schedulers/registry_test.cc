// load_scheduler: class selection by `_class_name`, and the errors for bad folders, unknown
// classes, malformed JSON, wrongly typed keys and options qdit does not implement. Every error
// must name the file and (where there is one) the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "golden_case.h"
#include "qdit/core/error.h"
#include "qdit/schedulers/dpm_solver_multistep.h"
#include "qdit/schedulers/flow_match_euler.h"
#include "qdit/schedulers/scheduler_registry.h"

namespace qdit::schedulers {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_sched_test_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // Writes <dir>/scheduler_config.json and returns the folder.
  std::string scheduler_folder(const std::string& json) const {
    std::ofstream(path_ / "scheduler_config.json") << json;
    return path_.string();
  }
  std::string config_file() const { return (path_ / "scheduler_config.json").string(); }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no qdit::Error thrown>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The FlowMatch SD3 config with one key replaced by raw JSON text.
std::string flowmatch_json(const std::string& key, const std::string& value) {
  nlohmann::json j = {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                      {"num_train_timesteps", 1000},
                      {"shift", 3.0},
                      {"use_dynamic_shifting", false}};
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

std::string dpm_json(const std::string& key, const std::string& value) {
  const std::string path = testing::golden_dir("scheduler_dpmsolver_pixart_sigma") + "/scheduler/scheduler_config.json";
  nlohmann::json j = io::JsonConfig::load(path).raw();
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

TEST(SchedulerRegistry, SelectsClassByName) {
  const auto& reg = scheduler_registry();
  EXPECT_EQ(reg.count("DPMSolverMultistepScheduler"), 1u);
  EXPECT_EQ(reg.count("FlowMatchEulerDiscreteScheduler"), 1u);
  auto dpm = load_scheduler(testing::golden_dir("scheduler_dpmsolver_pixart_sigma") + "/scheduler");
  EXPECT_NE(dynamic_cast<DPMSolverMultistepScheduler*>(dpm.get()), nullptr);
  auto fm = load_scheduler(testing::golden_dir("scheduler_flowmatch_auraflow") + "/scheduler/scheduler_config.json");
  auto* fme = dynamic_cast<FlowMatchEulerDiscreteScheduler*>(fm.get());
  ASSERT_NE(fme, nullptr);
  EXPECT_DOUBLE_EQ(fme->config().shift, 1.73);
  // -Infinity (Python's literal) reaches the DPM config as a double.
  auto* d = dynamic_cast<DPMSolverMultistepScheduler*>(dpm.get());
  EXPECT_EQ(d->config().lambda_min_clipped, -INFINITY);
}

TEST(SchedulerRegistry, ReadsFluxShiftParameters) {
  TempDir t;
  nlohmann::json j = nlohmann::json::parse(flowmatch_json("use_dynamic_shifting", "true"));
  j["base_image_seq_len"] = 128;
  j["max_image_seq_len"] = 1024;
  j["base_shift"] = 0.25;
  j["max_shift"] = 2.0;
  auto s = load_scheduler(t.scheduler_folder(j.dump()));
  ASSERT_TRUE(s->uses_dynamic_shifting());
  const auto p = s->dynamic_shift_params();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->base_image_seq_len, 128);
  EXPECT_EQ(p->max_image_seq_len, 1024);
  EXPECT_EQ(p->base_shift, 0.25);
  EXPECT_EQ(p->max_shift, 2.0);
  EXPECT_DOUBLE_EQ(flux_mu(1024, *s), 2.0);
  EXPECT_DOUBLE_EQ(flux_mu(576, *s), 0.25 + 1.75 * 448.0 / 896.0);
  auto dpm = load_scheduler(testing::golden_dir("scheduler_dpmsolver_pixart_sigma") + "/scheduler");
  EXPECT_THROW(flux_mu(64, *dpm), Error);
  EXPECT_THROW(dpm->set_custom_sigmas({1.0, 0.5}, 0.5), Error);
}

TEST(SchedulerRegistry, UnknownClassNamesClassAndFile) {
  TempDir t;
  const auto msg =
      error_of([&] { load_scheduler(t.scheduler_folder(R"({"_class_name": "EulerAncestralDiscreteScheduler"})")); });
  EXPECT_TRUE(contains(msg, "EulerAncestralDiscreteScheduler")) << msg;
  EXPECT_TRUE(contains(msg, t.config_file())) << msg;
  EXPECT_TRUE(contains(msg, "FlowMatchEulerDiscreteScheduler")) << msg;  // lists what exists
}

TEST(SchedulerRegistry, MissingClassName) {
  TempDir t;
  const auto msg = error_of([&] { load_scheduler(t.scheduler_folder(R"({"shift": 3.0})")); });
  EXPECT_TRUE(contains(msg, "_class_name") && contains(msg, t.config_file())) << msg;
}

TEST(SchedulerRegistry, MissingFolderOrFile) {
  TempDir t;
  auto msg = error_of([&] { load_scheduler((fs::path(t.config_file()).parent_path() / "nope").string()); });
  EXPECT_TRUE(contains(msg, "nope")) << msg;
  fs::create_directories(fs::path(t.config_file()).parent_path() / "empty");
  const std::string empty = (fs::path(t.config_file()).parent_path() / "empty").string();
  msg = error_of([&] { load_scheduler(empty); });
  EXPECT_TRUE(contains(msg, empty) && contains(msg, "scheduler_config.json")) << msg;
}

TEST(SchedulerRegistry, MalformedJsonNamesFile) {
  TempDir t;
  const auto msg =
      error_of([&] { load_scheduler(t.scheduler_folder(R"({"_class_name": "FlowMatchEulerDiscreteScheduler", )")); });
  EXPECT_TRUE(contains(msg, t.config_file()) && contains(msg, "malformed JSON")) << msg;
}

TEST(SchedulerRegistry, WrongKeyTypesNameKeyAndFile) {
  TempDir t;
  struct Case {
    std::string json, key;
  };
  const std::vector<Case> cases = {
      {flowmatch_json("shift", R"("3.0")"), "shift"},
      {flowmatch_json("use_dynamic_shifting", "1"), "use_dynamic_shifting"},
      {flowmatch_json("num_train_timesteps", "1000.5"), "num_train_timesteps"},
      {flowmatch_json("base_image_seq_len", "[256]"), "base_image_seq_len"},
      {flowmatch_json("_class_name", "42"), "_class_name"},
      {dpm_json("solver_order", R"("2")"), "solver_order"},
      {dpm_json("beta_start", "true"), "beta_start"},
      {dpm_json("trained_betas", R"([0.1, "x"])"), "trained_betas"},
      {dpm_json("lower_order_final", R"("yes")"), "lower_order_final"},
  };
  for (const auto& c : cases) {
    const auto msg = error_of([&] { load_scheduler(t.scheduler_folder(c.json)); });
    EXPECT_TRUE(contains(msg, "'" + c.key + "'") && contains(msg, t.config_file())) << c.key << ": " << msg;
  }
}

TEST(SchedulerRegistry, UnsupportedOptionsNameKey) {
  TempDir t;
  struct Case {
    std::string json, key;
  };
  const std::vector<Case> cases = {
      {dpm_json("algorithm_type", R"("sde-dpmsolver++")"), "algorithm_type"},
      {dpm_json("algorithm_type", R"("dpmsolver")"), "algorithm_type"},
      {dpm_json("use_karras_sigmas", "true"), "use_karras_sigmas"},
      {dpm_json("use_lu_lambdas", "true"), "use_lu_lambdas"},
      {dpm_json("thresholding", "true"), "thresholding"},
      {dpm_json("rescale_betas_zero_snr", "true"), "rescale_betas_zero_snr"},
      {dpm_json("variance_type", R"("learned_range")"), "variance_type"},
      {dpm_json("solver_order", "4"), "solver_order"},
      {dpm_json("beta_schedule", R"("sigmoid")"), "beta_schedule"},
      {dpm_json("timestep_spacing", R"("uniform")"), "timestep_spacing"},
      {dpm_json("final_sigmas_type", R"("denoise_to_zero")"), "final_sigmas_type"},
      {dpm_json("prediction_type", R"("flow_prediction")"), "prediction_type"},
      {flowmatch_json("use_karras_sigmas", "true"), "use_karras_sigmas"},
      {flowmatch_json("invert_sigmas", "true"), "invert_sigmas"},
      {flowmatch_json("shift_terminal", "0.1"), "shift_terminal"},
      {flowmatch_json("time_shift_type", R"("linear")"), "time_shift_type"},
      {flowmatch_json("shift", "-1.0"), "shift"},
  };
  for (const auto& c : cases) {
    const auto msg = error_of([&] { load_scheduler(t.scheduler_folder(c.json)); });
    EXPECT_TRUE(contains(msg, "'" + c.key + "'") && contains(msg, t.config_file())) << c.key << ": " << msg;
  }
}

TEST(SchedulerRegistry, NeutralValuesOfNewerKeysAreAccepted) {
  TempDir t;
  nlohmann::json j = nlohmann::json::parse(flowmatch_json("invert_sigmas", "false"));
  j["use_karras_sigmas"] = false;
  j["shift_terminal"] = nullptr;
  j["time_shift_type"] = "exponential";
  j["some_future_key"] = "ignored";
  EXPECT_NO_THROW(load_scheduler(t.scheduler_folder(j.dump())));
  // "deis" and UniPC solver types are renamed by diffusers, not rejected.
  auto s = load_scheduler(t.scheduler_folder(dpm_json("solver_type", R"("bh2")")));
  EXPECT_EQ(dynamic_cast<DPMSolverMultistepScheduler&>(*s).config().solver_type, "midpoint");
}

}  // namespace
}  // namespace qdit::schedulers
