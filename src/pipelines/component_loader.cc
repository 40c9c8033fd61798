#include "qdit/pipelines/component_loader.h"

#include "qdit/core/error.h"

namespace qdit::pipelines {

ComponentLoader::ComponentLoader(const std::string& dir, const PipelineOptions& opt)
    : folder_(io::PipelineFolder::open(dir)), ctx_(opt.ctx), quant_(opt.quant), offload_(opt.offload),
      group_(opt.offload_group) {
  QDIT_CHECK(group_ > 0, "[pipeline] blocks per streamed group must be positive, got ", group_);
}

std::shared_ptr<models::Model> ComponentLoader::load(const std::string& name) const {
  if (auto it = resident_.find(name); it != resident_.end()) return it->second;
  io::ModelFolder f = folder_.open_component(name);
  nn::ModuleContext ctx = nn::context_for_component(ctx_, quant_, name, {}, &f.config());
  if (offload_ == Offload::Blocks) ctx.stream_group = group_;
  std::shared_ptr<models::Model> m =
      models::create_model(f.class_name(), models::ModelSource{name, &f.config(), f.weights(), ctx});
  // What the model copied (packed, quantized, converted) no longer needs its checkpoint pages;
  // mapped views still in use fault back in when read.
  f.weights()->drop_pages("");
  record(name, f, *m);
  if (offload_ == Offload::None) resident_[name] = m;
  return m;
}

void ComponentLoader::preload() {
  for (const io::PipelineComponent& c : folder_.components()) {
    if (c.is_null() || !c.exists) continue;
    io::ModelFolder f = folder_.open_component(c.name);
    if (f.has_weights() && models::has_model(f.class_name())) load(c.name);
  }
}

void ComponentLoader::record(const std::string& name, const io::ModelFolder& f, const models::Model& m) const {
  ComponentStats s{name, m.class_name(), "none", f.weights()->total_bytes(), m.weight_bytes(), ""};
  s.residency = offload_ == Offload::None    ? "whole run"
                : offload_ == Offload::Model ? "per phase"
                : name == "vae"              ? "per phase"
                                             : "blocks streamed (" + std::to_string(group_) + " per group)";
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
