// Loads the components a pipeline folder lists: models through the model registry (class from each
// component's config), tokenizers and schedulers through their own loaders.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "qdit/core/error.h"
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

  // A model component: built now (its Linear layers quantized when the quant config says so, its
  // blocks streamed under Offload::Blocks), or the one preload() kept under Offload::None.
  template <typename T>
  std::shared_ptr<T> model(const std::string& name) const {
    std::shared_ptr<T> m = std::dynamic_pointer_cast<T>(load(name));
    QDIT_CHECK(m, "[pipeline] component '", name, "' is not the kind of model this pipeline expects");
    return m;
  }
  // Offload::None: builds every model component of the folder now and keeps them.
  void preload();
  // Every model component loaded so far (the last load of each name).
  const std::vector<ComponentStats>& stats() const { return stats_; }
  std::unique_ptr<tokenizers::Tokenizer> tokenizer(const std::string& name) const;
  std::unique_ptr<schedulers::Scheduler> scheduler(const std::string& name = "scheduler") const;
  io::JsonConfig config(const std::string& name) const;

 private:
  std::shared_ptr<models::Model> load(const std::string& name) const;
  void record(const std::string& name, const io::ModelFolder& f, const models::Model& m) const;

  io::PipelineFolder folder_;
  nn::ModuleContext ctx_;
  quant::PipelineQuantConfig quant_;
  Offload offload_;
  int group_;
  mutable std::vector<ComponentStats> stats_;
  mutable std::map<std::string, std::shared_ptr<models::Model>> resident_;  // Offload::None
};

}  // namespace qdit::pipelines
