// AuraFlowPipeline (diffusers 0.30.3): UMT5 with the attention mask and embeddings multiplied by
// it, CFG over cat([negative, positive]), flow-match Euler with the model fed t / 1000, decode with
// z / scaling_factor.
#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/component_loader.h"
#include "qdit/pipelines/denoise.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

namespace {

class AuraFlowPipeline : public Pipeline {
 public:
  AuraFlowPipeline(const std::string& dir, const PipelineOptions& opt)
      : loader_(dir, opt.ctx), transformer_config_(loader_.config("transformer")), vae_config_(loader_.config("vae")) {}

  std::string class_name() const override { return "AuraFlowPipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const int64_t vae_scale = vae_downscale(vae_config_);
    const int64_t patch = transformer_config_.get_or<int64_t>("patch_size", 2);
    if (req.steps <= 0) req.steps = 50;
    if (req.guidance < 0) req.guidance = 3.5f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 256;
    fill_default_size(req, transformer_config_.get<int64_t>("sample_size") * vae_scale, vae_scale * patch, "auraflow");
    const bool cfg = req.guidance > 1.0f;

    PhaseTimer encode_timer("text_encoding");
    Tensor pos = provided(hooks, "prompt_embeds"), neg = provided(hooks, "negative_prompt_embeds");
    if (!pos.defined()) encode_prompts(req, cfg, hooks, pos, neg);
    result.phases.push_back(encode_timer.finish());

    PhaseTimer denoise_timer("denoising");
    auto transformer = loader_.model<models::DiffusionTransformer>("transformer");
    auto scheduler = loader_.scheduler();
    Tensor latents = initial_latents(
        req, {1, transformer->in_channels(), req.height / vae_scale, req.width / vae_scale}, "auraflow");
    scheduler->set_timesteps(req.steps);
    models::DiTInputs cond;
    cond.encoder_hidden_states = cfg ? kernels::concat({neg, pos}, 0) : pos;
    DenoiseSpec spec;
    spec.transformer = transformer.get();
    spec.scheduler = scheduler.get();
    spec.cfg = cfg;
    spec.guidance = req.guidance;
    spec.model_timestep = [](float t) { return t / 1000.0f; };
    latents = run_denoise_loop(spec, cond, latents, hooks);
    transformer.reset();
    result.phases.push_back(denoise_timer.finish());

    PhaseTimer decode_timer("decoding");
    decode_latents(*loader_.model<models::VaeDecoder>("vae"), latents, /*add_shift=*/false, hooks, result);
    result.phases.push_back(decode_timer.finish());
    result.latents = latents;
    result.used = req;
    result.used.latents = Tensor();
    return result;
  }

 private:
  void encode_prompts(const GenerateRequest& req, bool cfg, const RunHooks& hooks, Tensor& pos, Tensor& neg) {
    auto tok = loader_.tokenizer("tokenizer");
    auto enc = loader_.model<models::TextEncoder>("text_encoder");
    TextEncodeSpec spec;
    spec.max_length = req.max_sequence_length;
    spec.pass_mask = true;
    spec.trace_name = "umt5";
    spec.trace_mask = true;
    auto encode = [&](const std::string& text, const std::string& role) {
      EncodedText e = encode_text(*tok, *enc, text, spec, role, hooks);
      // prompt_embeds * attention_mask[..., None]
      Tensor embeds = kernels::mul(e.out.last_hidden_state, e.mask.to(DType::F32).unsqueeze(-1));
      const std::string prefix = role == "prompt" ? "encode_prompt." : "encode_prompt.negative_";
      trace(hooks, prefix + "prompt_embeds", embeds);
      // diffusers returns the mask expanded to the embedding shape and flattened to [B, L*D].
      Tensor expanded = kernels::mul(Tensor::full(embeds.shape(), 1.0f), e.mask.to(DType::F32).unsqueeze(-1));
      trace(hooks, prefix + "prompt_attention_mask", expanded.reshape({embeds.size(0), -1}));
      return embeds;
    };
    pos = encode(req.prompt, "prompt");
    if (cfg) neg = encode(req.negative_prompt, "negative");
  }

  ComponentLoader loader_;
  io::JsonConfig transformer_config_, vae_config_;
};

}  // namespace

void register_auraflow_pipelines() {
  register_pipeline("AuraFlowPipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<AuraFlowPipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
