#include "qdit/pipelines/component_loader.h"

#include "qdit/core/error.h"

namespace qdit::pipelines {

ComponentLoader::ComponentLoader(const std::string& dir, nn::ModuleContext ctx)
    : folder_(io::PipelineFolder::open(dir)), ctx_(std::move(ctx)) {}

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
