// FluxPipeline (diffusers 0.30.3), dev and schnell: CLIP-L pooler_output + T5 hidden states (no
// masks, no negative prompt: guidance comes from the guidance embedding when the transformer has
// one), packed 2x2 latents with (0, row, col) image ids, sigmas linspace(1, 1/N, N) with mu from the
// image sequence length, timestep = sigma (the model scales by 1000), decode with shift.
#include "qdit/core/error.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/diffusers_pipeline.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

// [B, C, H, W] -> [B, (H/2)(W/2), 4C], as FluxPipeline._pack_latents.
Tensor flux_pack_latents(const Tensor& x);
// Inverse of flux_pack_latents for an image of h x w latent pixels.
Tensor flux_unpack_latents(const Tensor& packed, int64_t h, int64_t w);
// [N, 3] ids (0, row, col) over the (h/2) x (w/2) packed grid.
Tensor flux_image_ids(int64_t half_h, int64_t half_w);

namespace {

class FluxPipeline : public DiffusersPipeline {
 public:
  FluxPipeline(const std::string& dir, const PipelineOptions& opt) : DiffusersPipeline(dir, opt) {}

  std::string class_name() const override { return "FluxPipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const bool guidance_embeds = transformer_config_.get_or<bool>("guidance_embeds", false);
    if (req.steps <= 0) req.steps = guidance_embeds ? 28 : 4;
    if (req.guidance < 0) req.guidance = 3.5f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 512;
    // default_sample_size 64 * vae_scale_factor, as the pipeline sets it
    fill_default_size(req, 64 * vae_scale_, vae_scale_ * 2, "flux");

    PhaseTimer encode_timer("text_encoding");
    Tensor prompt_embeds = provided(hooks, "prompt_embeds"), pooled = provided(hooks, "pooled_prompt_embeds");
    if (!prompt_embeds.defined()) encode_prompt(req, hooks, prompt_embeds, pooled);
    Tensor text_ids = Tensor::zeros({prompt_embeds.size(1), 3}, DType::F32);
    trace(hooks, "encode_prompt.text_ids", text_ids);
    result.phases.push_back(encode_timer.finish());

    const int64_t h = 2 * (req.height / (vae_scale_ * 2)), w = 2 * (req.width / (vae_scale_ * 2));
    models::DiTInputs cond;
    cond.encoder_hidden_states = prompt_embeds;
    cond.pooled_projections = pooled;
    cond.txt_ids = text_ids;
    cond.img_ids = flux_image_ids(h / 2, w / 2);
    auto prepare = [&](const models::DiffusionTransformer& t, schedulers::Scheduler& sched, DenoiseSpec& spec) {
      const int64_t c = t.in_channels() / 4;
      Tensor latents = req.latents.defined() && req.latents.dim() == 3
                           ? initial_latents(req, {1, (h / 2) * (w / 2), 4 * c}, "flux")  // already packed
                           : flux_pack_latents(initial_latents(req, {1, c, h, w}, "flux"));
      QDIT_CHECK(sched.accepts_custom_sigmas(), "[flux] scheduler ", sched.class_name(), " cannot take custom sigmas");
      std::optional<double> mu;
      if (sched.uses_dynamic_shifting()) mu = schedulers::flux_mu(latents.size(1), sched);
      sched.set_custom_sigmas(schedulers::flux_default_sigmas(req.steps), mu);
      spec.model_timestep = [](float ts) { return ts / 1000.0f; };
      if (guidance_embeds) spec.guidance_input = {req.guidance};
      return latents;
    };
    Tensor latents = denoise_phase(req, /*cfg=*/false, cond, prepare, hooks, result);
    Tensor unpacked = flux_unpack_latents(latents, h, w);
    trace(hooks, "latents_final_unpacked", unpacked);
    decode_phase(unpacked, /*add_shift=*/true, req, hooks, result);
    return result;
  }

 private:
  void encode_prompt(const GenerateRequest& req, const RunHooks& hooks, Tensor& embeds, Tensor& pooled) {
    {
      auto tok = loader_.tokenizer("tokenizer");
      auto enc = loader_.model<models::TextEncoder>("text_encoder");
      TextEncodeSpec spec;
      spec.max_length = tok->model_max_length() > 0 ? static_cast<int>(tok->model_max_length()) : 77;
      spec.trace_name = "clip_l";
      pooled = encode_text(*tok, *enc, req.prompt, spec, "prompt", hooks).out.pooled;
    }
    auto tok = loader_.tokenizer("tokenizer_2");
    auto enc = loader_.model<models::TextEncoder>("text_encoder_2");
    TextEncodeSpec spec;
    spec.max_length = req.max_sequence_length;
    spec.trace_name = "t5";
    embeds = encode_text(*tok, *enc, req.prompt, spec, "prompt", hooks).out.last_hidden_state;
    trace(hooks, "encode_prompt.prompt_embeds", embeds);
    trace(hooks, "encode_prompt.pooled_prompt_embeds", pooled);
  }

};

}  // namespace

Tensor flux_pack_latents(const Tensor& x) {
  QDIT_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0, "[flux] cannot pack latents ", x.desc());
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // view(B, C, H/2, 2, W/2, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, HW/4, 4C)
  return x.contiguous().reshape({b, c, h / 2, 2, w / 2, 2}).permute({0, 2, 4, 1, 3, 5}).contiguous().reshape(
      {b, (h / 2) * (w / 2), 4 * c});
}

Tensor flux_unpack_latents(const Tensor& p, int64_t h, int64_t w) {
  QDIT_CHECK(p.dim() == 3 && p.size(1) == (h / 2) * (w / 2) && p.size(2) % 4 == 0, "[flux] cannot unpack ", p.desc(),
             " to ", h, "x", w);
  const int64_t b = p.size(0), c = p.size(2) / 4;
  return p.contiguous().reshape({b, h / 2, w / 2, c, 2, 2}).permute({0, 3, 1, 4, 2, 5}).contiguous().reshape({b, c, h, w});
}

Tensor flux_image_ids(int64_t half_h, int64_t half_w) {
  Tensor ids = Tensor::zeros({half_h * half_w, 3}, DType::F32);
  float* p = ids.data<float>();
  for (int64_t r = 0; r < half_h; ++r)
    for (int64_t c = 0; c < half_w; ++c) {
      p[(r * half_w + c) * 3 + 1] = static_cast<float>(r);
      p[(r * half_w + c) * 3 + 2] = static_cast<float>(c);
    }
  return ids;
}

void register_flux_pipelines() {
  register_pipeline("FluxPipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<FluxPipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
