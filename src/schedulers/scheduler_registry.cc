#include "qdit/schedulers/scheduler_registry.h"

#include <filesystem>

#include "qdit/core/error.h"
#include "qdit/schedulers/dpm_solver_multistep.h"
#include "qdit/schedulers/flow_match_euler.h"

namespace qdit::schedulers {

namespace fs = std::filesystem;

const std::map<std::string, SchedulerFactory>& scheduler_registry() {
  static const std::map<std::string, SchedulerFactory> registry = {
      {"DPMSolverMultistepScheduler",
       [](const io::JsonConfig& c) -> std::unique_ptr<Scheduler> {
         return std::make_unique<DPMSolverMultistepScheduler>(c);
       }},
      {"FlowMatchEulerDiscreteScheduler",
       [](const io::JsonConfig& c) -> std::unique_ptr<Scheduler> {
         return std::make_unique<FlowMatchEulerDiscreteScheduler>(c);
       }},
  };
  return registry;
}

std::unique_ptr<Scheduler> load_scheduler(const io::JsonConfig& config) {
  const auto cls = config.get<std::string>("_class_name");
  const auto& reg = scheduler_registry();
  auto it = reg.find(cls);
  if (it == reg.end()) {
    std::string known;
    for (const auto& [name, factory] : reg) known += (known.empty() ? "" : ", ") + name;
    fail("[", config.path(), "] key '_class_name': unknown scheduler class '", cls, "'; qdit implements ", known);
  }
  return it->second(config);
}

std::unique_ptr<Scheduler> load_scheduler(const std::string& scheduler_dir) {
  std::error_code ec;
  std::string path = scheduler_dir;
  if (fs::is_directory(scheduler_dir, ec)) {
    path = (fs::path(scheduler_dir) / "scheduler_config.json").string();
    QDIT_CHECK(fs::is_regular_file(path, ec), "[", scheduler_dir, "] scheduler folder has no scheduler_config.json");
  }
  return load_scheduler(io::JsonConfig::load(path));
}

}  // namespace qdit::schedulers
