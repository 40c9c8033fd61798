// Base of the pipeline families: owns the component loader and the transformer/VAE configs, and
// runs the phases every family shares (denoising with the transformer resident only during the
// loop, decoding with the VAE resident only while decoding), each timed into the result.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "qdit/pipelines/component_loader.h"
#include "qdit/pipelines/denoise.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::pipelines {

class DiffusersPipeline : public Pipeline {
 protected:
  DiffusersPipeline(const std::string& dir, const PipelineOptions& opt);

  // Prepares the loop for a loaded transformer and scheduler: sets the schedule, fills `spec`
  // beyond transformer/scheduler/cfg/guidance, and returns the initial latents.
  using PrepareDenoise =
      std::function<Tensor(const models::DiffusionTransformer&, schedulers::Scheduler&, DenoiseSpec&)>;
  Tensor denoise_phase(const GenerateRequest& req, bool cfg, const models::DiTInputs& cond,
                       const PrepareDenoise& prepare, const RunHooks& hooks, GenerateResult& result);
  // Decodes, fills result.image / latents / used (without the latents tensor).
  void decode_phase(const Tensor& latents, bool add_shift, const GenerateRequest& req, const RunHooks& hooks,
                    GenerateResult& result);

  ComponentLoader loader_;
  std::optional<PhaseStats> loading_;  // Offload::None: the up-front load, reported by the first run
  io::JsonConfig transformer_config_, vae_config_;
  int64_t vae_scale_ = 8;
};

}  // namespace qdit::pipelines
