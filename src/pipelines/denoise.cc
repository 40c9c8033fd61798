#include "qdit/pipelines/denoise.h"

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/pipelines/common.h"

namespace qdit::pipelines {

void trace(const RunHooks& hooks, const std::string& name, const Tensor& t) {
  if (hooks.trace) hooks.trace(name, t);
}

Tensor provided(const RunHooks& hooks, const std::string& name) {
  return hooks.provided ? hooks.provided(name) : Tensor();
}

Tensor run_denoise_loop(const DenoiseSpec& spec, models::DiTInputs in, Tensor latents, const RunHooks& hooks) {
  QDIT_CHECK(spec.transformer && spec.scheduler, "[pipeline] denoising needs a transformer and a scheduler");
  const auto& timesteps = spec.scheduler->timesteps();
  const int n = static_cast<int>(timesteps.size());
  if (hooks.progress) hooks.progress("denoising", 0, n);
  // Every step allocates the same activation shapes: after the first, they come from this scope.
  RecyclingScope reuse_step_buffers;
  for (int i = 0; i < n; ++i) {
    const std::string step = "step" + std::to_string(i) + ".";
    in.latents = spec.cfg ? duplicate_batch(latents) : latents;
    const int64_t batch = in.latents.size(0);
    in.timestep.assign(batch, spec.model_timestep(timesteps[i]));
    if (!spec.guidance_input.empty()) in.guidance.assign(batch, spec.guidance_input[0]);
    Tensor out = spec.transformer->forward(in);
    trace(hooks, step + "transformer_in", in.latents);
    trace(hooks, step + "transformer_timestep", Tensor::from_vector(in.timestep, {batch}));
    if (!in.guidance.empty()) trace(hooks, step + "transformer_guidance", Tensor::from_vector(in.guidance, {batch}));
    trace(hooks, step + "transformer_out", out);
    Tensor pred = spec.cfg ? classifier_free_guidance(out, spec.guidance) : out;
    if (spec.adjust_prediction) pred = spec.adjust_prediction(pred);
    latents = spec.scheduler->step(pred, i, latents);
    trace(hooks, step + "timestep", Tensor::from_vector({timesteps[i]}, {1}));
    trace(hooks, step + "model_output", pred);
    trace(hooks, step + "latents_out", latents);
    if (hooks.progress) hooks.progress("denoising", i + 1, n);
  }
  trace(hooks, "latents_final", latents);
  return latents;
}

}  // namespace qdit::pipelines
