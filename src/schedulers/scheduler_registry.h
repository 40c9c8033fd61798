// Builds a Scheduler from a diffusers scheduler folder: scheduler_config.json's `_class_name`
// picks the class through a name -> factory map. Pipelines call load_scheduler(<pipeline>/scheduler).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "qdit/io/json_config.h"
#include "qdit/schedulers/scheduler.h"

namespace qdit::schedulers {

using SchedulerFactory = std::function<std::unique_ptr<Scheduler>(const io::JsonConfig&)>;

// Class name -> factory for every scheduler qdit implements.
const std::map<std::string, SchedulerFactory>& scheduler_registry();

// Reads `scheduler_dir`/scheduler_config.json (or the file itself when given a .json path).
// Errors name the file: missing file, malformed JSON, missing/unknown `_class_name`, keys of the
// wrong type, unsupported options.
std::unique_ptr<Scheduler> load_scheduler(const std::string& scheduler_dir);
// Same, from an already loaded config.
std::unique_ptr<Scheduler> load_scheduler(const io::JsonConfig& config);

}  // namespace qdit::schedulers
