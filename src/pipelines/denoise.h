// The denoising loop every pipeline shares: per step, build the transformer input (duplicated for
// classifier-free guidance), run the transformer, combine u + g (c - u), let the family adjust the
// prediction (learned-sigma split, ...), and step the scheduler. Intermediates are traced under
// the golden names step{i}.{transformer_in, transformer_timestep, transformer_guidance,
// transformer_out, timestep, model_output, latents_out}.
#pragma once
#include <functional>

#include "qdit/models/model.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/schedulers/scheduler.h"

namespace qdit::pipelines {

struct DenoiseSpec {
  const models::DiffusionTransformer* transformer = nullptr;
  schedulers::Scheduler* scheduler = nullptr;
  bool cfg = false;
  float guidance = 1.0f;
  // Scheduler timestep -> the value the transformer receives (PixArt/SD3: t, Flux: t/1000, ...).
  std::function<float(float)> model_timestep = [](float t) { return t; };
  // Flux-dev's guidance embedding input, per sample; empty when the model takes none.
  std::vector<float> guidance_input;
  // Applied to the guided prediction before the scheduler step (e.g. drop learned-sigma channels).
  std::function<Tensor(const Tensor&)> adjust_prediction;
};

// `conditioning` holds the text inputs (already batched for CFG); returns the final latents.
Tensor run_denoise_loop(const DenoiseSpec& spec, models::DiTInputs conditioning, Tensor latents, const RunHooks& hooks);

void trace(const RunHooks& hooks, const std::string& name, const Tensor& t);
Tensor provided(const RunHooks& hooks, const std::string& name);

}  // namespace qdit::pipelines
