// AuraFlowPipeline (diffusers 0.30.3): UMT5 with the attention mask and embeddings multiplied by
// it, CFG over cat([negative, positive]), flow-match Euler with the model fed t / 1000, decode with
// z / scaling_factor.
#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/diffusers_pipeline.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

namespace {

class AuraFlowPipeline : public DiffusersPipeline {
 public:
  AuraFlowPipeline(const std::string& dir, const PipelineOptions& opt) : DiffusersPipeline(dir, opt) {}

  std::string class_name() const override { return "AuraFlowPipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const int64_t patch = transformer_config_.get_or<int64_t>("patch_size", 2);
    if (req.steps <= 0) req.steps = 50;
    if (req.guidance < 0) req.guidance = 3.5f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 256;
    fill_default_size(req, transformer_config_.get<int64_t>("sample_size") * vae_scale_, vae_scale_ * patch,
                      "auraflow");
    const bool cfg = req.guidance > 1.0f;

    PhaseTimer encode_timer("text_encoding");
    Tensor pos = provided(hooks, "prompt_embeds"), neg = provided(hooks, "negative_prompt_embeds");
    if (!pos.defined()) encode_prompts(req, cfg, hooks, pos, neg);
    result.phases.push_back(encode_timer.finish());

    models::DiTInputs cond;
    cond.encoder_hidden_states = cfg ? kernels::concat({neg, pos}, 0) : pos;
    auto prepare = [&](const models::DiffusionTransformer& t, schedulers::Scheduler& sched, DenoiseSpec& spec) {
      sched.set_timesteps(req.steps);
      spec.model_timestep = [](float ts) { return ts / 1000.0f; };
      return initial_latents(req, {1, t.in_channels(), req.height / vae_scale_, req.width / vae_scale_}, "auraflow");
    };
    Tensor latents = denoise_phase(req, cfg, cond, prepare, hooks, result);
    decode_phase(latents, /*add_shift=*/false, req, hooks, result);
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

};

}  // namespace

void register_auraflow_pipelines() {
  register_pipeline("AuraFlowPipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<AuraFlowPipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
