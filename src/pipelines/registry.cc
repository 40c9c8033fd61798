#include <map>
#include <mutex>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::pipelines {

namespace {
std::map<std::string, PipelineFactory>& table() {
  static std::map<std::string, PipelineFactory> t;
  return t;
}
}  // namespace

void register_pipeline(const std::string& class_name, PipelineFactory factory) {
  table()[class_name] = std::move(factory);
}

std::unique_ptr<Pipeline> load_pipeline(const std::string& path, const PipelineOptions& opt) {
  static std::once_flag once;
  std::call_once(once, register_builtin_pipelines);
  const std::string dir = io::resolve_model_path(path);
  QDIT_CHECK(io::is_pipeline_folder(dir), "[pipeline] ", dir, " has no model_index.json (not a pipeline folder)");
  io::PipelineFolder folder = io::PipelineFolder::open(dir);
  auto it = table().find(folder.class_name());
  if (it == table().end()) {
    std::string known;
    for (const auto& [k, _] : table()) known += (known.empty() ? "" : ", ") + k;
    fail("[pipeline] ", dir, "/model_index.json: pipeline class '", folder.class_name(), "' is not supported (known: ",
         known, ")");
  }
  return it->second(dir, opt);
}

}  // namespace qdit::pipelines
