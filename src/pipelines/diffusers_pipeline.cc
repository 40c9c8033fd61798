#include "qdit/pipelines/diffusers_pipeline.h"

#include "qdit/pipelines/common.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

DiffusersPipeline::DiffusersPipeline(const std::string& dir, const PipelineOptions& opt)
    : loader_(dir, opt),
      transformer_config_(loader_.config("transformer")),
      vae_config_(loader_.config("vae")),
      vae_scale_(vae_downscale(vae_config_)) {
  if (opt.offload == Offload::None) {
    PhaseTimer timer("loading");
    loader_.preload();
    loading_ = timer.finish();
  }
}

const char* offload_name(Offload o) {
  switch (o) {
    case Offload::None: return "none";
    case Offload::Model: return "model";
    case Offload::Blocks: return "blocks";
  }
  return "?";
}

std::optional<Offload> offload_from_name(const std::string& name) {
  for (Offload o : {Offload::None, Offload::Model, Offload::Blocks})
    if (name == offload_name(o)) return o;
  return std::nullopt;
}

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
  // num_images_per_prompt: each conditioning row (negative, positive) once per image.
  models::DiTInputs batched = cond;
  for (Tensor* t : {&batched.encoder_hidden_states, &batched.encoder_attention_mask, &batched.pooled_projections})
    if (t->defined()) *t = repeat_rows(*t, req.num_images);
  Tensor latents = prepare(*transformer, *scheduler, spec);
  latents = run_denoise_loop(spec, batched, latents, hooks);
  transformer.reset();
  result.phases.push_back(timer.finish());
  return latents;
}

void DiffusersPipeline::decode_phase(const Tensor& latents, bool add_shift, const GenerateRequest& req,
                                     const RunHooks& hooks, GenerateResult& result) {
  PhaseTimer timer("decoding");
  decode_latents(*loader_.model<models::VaeDecoder>("vae"), latents, add_shift, hooks, result);
  result.phases.push_back(timer.finish());
  if (loading_) {
    result.phases.insert(result.phases.begin(), *loading_);
    loading_.reset();
  }
  result.components = loader_.stats();
  result.latents = latents;
  result.used = req;
  result.used.latents = Tensor();
}

}  // namespace qdit::pipelines
