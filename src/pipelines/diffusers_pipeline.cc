#include "qdit/pipelines/diffusers_pipeline.h"

#include "qdit/pipelines/common.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

DiffusersPipeline::DiffusersPipeline(const std::string& dir, const PipelineOptions& opt)
    : loader_(dir, opt),
      transformer_config_(loader_.config("transformer")),
      vae_config_(loader_.config("vae")),
      vae_scale_(vae_downscale(vae_config_)) {}

Tensor DiffusersPipeline::denoise_phase(const GenerateRequest& req, bool cfg, const models::DiTInputs& cond,
                                        const PrepareDenoise& prepare, const RunHooks& hooks, GenerateResult& result) {
  PhaseTimer timer("denoising");
  auto transformer = loader_.model<models::DiffusionTransformer>("transformer");
  auto scheduler = loader_.scheduler();
  DenoiseSpec spec;
  spec.transformer = transformer.get();
  spec.scheduler = scheduler.get();
  spec.cfg = cfg;
  spec.guidance = req.guidance;
  Tensor latents = prepare(*transformer, *scheduler, spec);
  latents = run_denoise_loop(spec, cond, latents, hooks);
  transformer.reset();
  result.phases.push_back(timer.finish());
  return latents;
}

void DiffusersPipeline::decode_phase(const Tensor& latents, bool add_shift, const GenerateRequest& req,
                                     const RunHooks& hooks, GenerateResult& result) {
  PhaseTimer timer("decoding");
  decode_latents(*loader_.model<models::VaeDecoder>("vae"), latents, add_shift, hooks, result);
  result.phases.push_back(timer.finish());
  result.components = loader_.stats();
  result.latents = latents;
  result.used = req;
  result.used.latents = Tensor();
}

}  // namespace qdit::pipelines
