#include "qdit/models/registry.h"

#include <map>
#include <mutex>

#include "qdit/core/error.h"
#include "qdit/models/families.h"

namespace qdit::models {

namespace {
std::map<std::string, ModelFactory>& table() {
  static std::map<std::string, ModelFactory> t;
  return t;
}
std::once_flag builtins_once;
void ensure_builtins() { std::call_once(builtins_once, [] { register_builtin_models(); }); }
}  // namespace

void register_model(const std::string& class_name, ModelFactory factory) { table()[class_name] = std::move(factory); }

bool has_model(const std::string& class_name) {
  ensure_builtins();
  return table().count(class_name) > 0;
}

std::vector<std::string> registered_models() {
  ensure_builtins();
  std::vector<std::string> v;
  for (const auto& [k, _] : table()) v.push_back(k);
  return v;
}

std::unique_ptr<Model> create_model(const std::string& class_name, const ModelSource& src) {
  ensure_builtins();
  auto it = table().find(class_name);
  if (it == table().end()) {
    std::string known;
    for (const auto& [k, _] : table()) known += (known.empty() ? "" : ", ") + k;
    fail("[models] no model class '", class_name, "' for component ", src.component, " (known: ", known, ")");
  }
  return it->second(src);
}

}  // namespace qdit::models

#include "qdit/io/diffusers_folder.h"

namespace qdit::models {
std::unique_ptr<Model> load_model(const io::ModelFolder& folder, const std::string& component,
                                  const nn::ModuleContext& ctx) {
  QDIT_CHECK(!folder.class_name().empty(), "[models] ", folder.path(), " has no config naming a model class");
  ModelSource src;
  src.component = component;
  src.config = &folder.config();
  src.weights = folder.weights();
  src.ctx = ctx;
  return create_model(folder.class_name(), src);
}
}  // namespace qdit::models
