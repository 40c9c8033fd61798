// Maps diffusers/transformers `_class_name` (or `architectures[0]`) to a model factory.
// Families register through register_builtin_models() (explicit calls, no static initialisers).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qdit/models/model.h"

namespace qdit::models {

using ModelFactory = std::function<std::unique_ptr<Model>(const ModelSource&)>;

void register_model(const std::string& class_name, ModelFactory factory);
bool has_model(const std::string& class_name);
std::vector<std::string> registered_models();
// Throws naming the class (and listing the known ones) when it is not registered.
std::unique_ptr<Model> create_model(const std::string& class_name, const ModelSource& src);

template <typename T>
std::unique_ptr<T> create_model_as(const std::string& class_name, const ModelSource& src) {
  std::unique_ptr<Model> m = create_model(class_name, src);
  T* p = dynamic_cast<T*>(m.get());
  if (!p) fail("[models] ", class_name, " is not the kind of model expected for component ", src.component);
  m.release();
  return std::unique_ptr<T>(p);
}

}  // namespace qdit::models

namespace qdit::io {
class ModelFolder;
}
namespace qdit::models {
// Builds the model a component folder describes (class from its config) and checks its weights:
// missing or wrong-shape tensors throw one error listing them all.
std::unique_ptr<Model> load_model(const io::ModelFolder& folder, const std::string& component,
                                  const nn::ModuleContext& ctx = {});
}  // namespace qdit::models
