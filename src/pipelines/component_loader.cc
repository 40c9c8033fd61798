#include "qdit/pipelines/component_loader.h"

#include "qdit/core/error.h"

namespace qdit::pipelines {

ComponentLoader::ComponentLoader(const std::string& dir, const PipelineOptions& opt)
    : folder_(io::PipelineFolder::open(dir)), ctx_(opt.ctx), quant_(opt.quant) {}

void ComponentLoader::record(const std::string& name, const io::ModelFolder& f, const models::Model& m) const {
  ComponentStats s{name, m.class_name(), "none", f.weights()->total_bytes(), m.weight_bytes()};
  if (auto rule = quant_.for_component(name)) s.quant = rule->scheme;
  if (auto stored = nn::stored_quantization(f.config())) s.quant = stored->scheme + " (stored)";
  for (auto& old : stats_)
    if (old.name == name) {
      old = s;
      return;
    }
  stats_.push_back(s);
}

bool ComponentLoader::has(const std::string& name) const {
  const io::PipelineComponent* c = folder_.find_component(name);
  return c && !c->is_null() && c->exists;
}

std::unique_ptr<tokenizers::Tokenizer> ComponentLoader::tokenizer(const std::string& name) const {
  QDIT_CHECK(has(name), "[pipeline] ", folder_.path(), "/model_index.json: component '", name,
             "' is not saved with this pipeline (pass text embeddings instead, or use a folder with tokenizers)");
  return tokenizers::load_tokenizer(folder_.path() + "/" + name);
}

std::unique_ptr<schedulers::Scheduler> ComponentLoader::scheduler(const std::string& name) const {
  QDIT_CHECK(has(name), "[pipeline] ", folder_.path(), ": no scheduler component '", name, "'");
  return schedulers::load_scheduler(folder_.path() + "/" + name);
}

io::JsonConfig ComponentLoader::config(const std::string& name) const { return folder_.open_component(name).config(); }

}  // namespace qdit::pipelines
