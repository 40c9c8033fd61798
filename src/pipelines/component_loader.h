// Loads the components a pipeline folder lists: models through the model registry (class from each
// component's config), tokenizers and schedulers through their own loaders.
#pragma once
#include <memory>
#include <string>

#include "qdit/io/diffusers_folder.h"
#include "qdit/models/registry.h"
#include "qdit/nn/quantizing_factory.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/schedulers/scheduler.h"
#include "qdit/schedulers/scheduler_registry.h"
#include "qdit/tokenizers/tokenizer.h"

namespace qdit::pipelines {

class ComponentLoader {
 public:
  ComponentLoader(const std::string& dir, const PipelineOptions& opt);
  const io::PipelineFolder& folder() const { return folder_; }
  bool has(const std::string& name) const;  // listed with a non-null class and present on disk

  // Builds a model component; its Linear layers are quantized when the quant config says so.
  template <typename T>
  std::unique_ptr<T> model(const std::string& name) const {
    io::ModelFolder f = folder_.open_component(name);
    const nn::ModuleContext ctx = nn::context_for_component(ctx_, quant_, name, {}, &f.config());
    auto m = models::create_model_as<T>(f.class_name(), models::ModelSource{name, &f.config(), f.weights(), ctx});
    record(name, f, *m);
    return m;
  }
  // Every model component loaded so far (the last load of each name).
  const std::vector<ComponentStats>& stats() const { return stats_; }
  std::unique_ptr<tokenizers::Tokenizer> tokenizer(const std::string& name) const;
  std::unique_ptr<schedulers::Scheduler> scheduler(const std::string& name = "scheduler") const;
  io::JsonConfig config(const std::string& name) const;

 private:
  void record(const std::string& name, const io::ModelFolder& f, const models::Model& m) const;

  io::PipelineFolder folder_;
  nn::ModuleContext ctx_;
  quant::PipelineQuantConfig quant_;
  mutable std::vector<ComponentStats> stats_;
};

}  // namespace qdit::pipelines
