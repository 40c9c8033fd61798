// StableDiffusion3Pipeline (diffusers 0.30.3): CLIP-L and CLIP-G penultimate hidden states
// concatenated on features and zero-padded to the T5 width, then T5 appended on the sequence;
// pooled = cat(CLIP-L text_embeds, CLIP-G text_embeds); no attention masks anywhere. Flow-match
// Euler with timestep = sigma * 1000; decode with z / scaling_factor + shift_factor.
#include "qdit/core/error.h"
#include "qdit/kernels/layout.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/diffusers_pipeline.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/text_conditioning.h"

namespace qdit::pipelines {

namespace {

struct Sd3Embeds {
  Tensor embeds, pooled;
};

class StableDiffusion3Pipeline : public DiffusersPipeline {
 public:
  StableDiffusion3Pipeline(const std::string& dir, const PipelineOptions& opt) : DiffusersPipeline(dir, opt) {}

  std::string class_name() const override { return "StableDiffusion3Pipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const int64_t patch = transformer_config_.get_or<int64_t>("patch_size", 2);
    if (req.steps <= 0) req.steps = 28;
    if (req.guidance < 0) req.guidance = 7.0f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 256;
    fill_default_size(req, transformer_config_.get<int64_t>("sample_size") * vae_scale_, vae_scale_ * patch, "sd3");
    const bool cfg = req.guidance > 1.0f;

    PhaseTimer encode_timer("text_encoding");
    Sd3Embeds pos, neg;
    encode_prompts(req, cfg, hooks, pos, neg);
    result.phases.push_back(encode_timer.finish());

    models::DiTInputs cond;
    cond.encoder_hidden_states = cfg ? kernels::concat({neg.embeds, pos.embeds}, 0) : pos.embeds;
    cond.pooled_projections = cfg ? kernels::concat({neg.pooled, pos.pooled}, 0) : pos.pooled;
    auto prepare = [&](const models::DiffusionTransformer& t, schedulers::Scheduler& sched, DenoiseSpec&) {
      sched.set_timesteps(req.steps);
      // SD3 uses given latents as they are (init_noise_sigma is 1 for flow matching).
      return initial_latents(req, {1, t.in_channels(), req.height / vae_scale_, req.width / vae_scale_}, "sd3");
    };
    Tensor latents = denoise_phase(req, cfg, cond, prepare, hooks, result);
    decode_phase(latents, /*add_shift=*/true, req, hooks, result);
    return result;
  }

 private:
  void encode_prompts(const GenerateRequest& req, bool cfg, const RunHooks& hooks, Sd3Embeds& pos, Sd3Embeds& neg) {
    pos.embeds = provided(hooks, "prompt_embeds");
    if (pos.embeds.defined()) {
      pos.pooled = provided(hooks, "pooled_prompt_embeds");
      if (cfg) {
        neg.embeds = provided(hooks, "negative_prompt_embeds");
        neg.pooled = provided(hooks, "negative_pooled_prompt_embeds");
        QDIT_CHECK(neg.embeds.defined() && neg.pooled.defined(), "[sd3] negative embeddings missing");
      }
      return;
    }
    const int64_t t5_dim = transformer_config_.get<int64_t>("joint_attention_dim");
    // Each encoder is loaded, used for both prompts, and released before the next one.
    std::vector<Tensor> clip_hidden[2], clip_pooled[2];
    const char* clip_names[2] = {"clip_l", "clip_g"};
    const char* clip_dirs[2][2] = {{"tokenizer", "text_encoder"}, {"tokenizer_2", "text_encoder_2"}};
    const std::string texts[2] = {req.prompt, req.negative_prompt};
    const char* roles[2] = {"prompt", "negative"};
    const int n_texts = cfg ? 2 : 1;
    for (int e = 0; e < 2; ++e) {
      auto tok = loader_.tokenizer(clip_dirs[e][0]);
      auto enc = loader_.model<models::TextEncoder>(clip_dirs[e][1]);
      TextEncodeSpec spec;
      spec.max_length = tok->model_max_length() > 0 ? static_cast<int>(tok->model_max_length()) : 77;
      spec.hidden_states = true;
      spec.trace_name = clip_names[e];
      for (int t = 0; t < n_texts; ++t) {
        EncodedText r = encode_text(*tok, *enc, texts[t], spec, roles[t], hooks);
        const auto& hs = r.out.hidden_states;
        QDIT_CHECK(hs.size() >= 2 && r.out.text_embeds.defined(), "[sd3] ", clip_dirs[e][1],
                   " must be a CLIPTextModelWithProjection returning hidden states");
        clip_hidden[t].push_back(hs[hs.size() - 2]);
        clip_pooled[t].push_back(r.out.text_embeds);
      }
    }
    Tensor t5_embeds[2];
    if (loader_.has("text_encoder_3")) {
      auto tok = loader_.tokenizer("tokenizer_3");
      auto enc = loader_.model<models::TextEncoder>("text_encoder_3");
      TextEncodeSpec spec;
      spec.max_length = req.max_sequence_length;
      spec.trace_name = "t5";
      for (int t = 0; t < n_texts; ++t) t5_embeds[t] = encode_text(*tok, *enc, texts[t], spec, roles[t], hooks).out.last_hidden_state;
    } else {
      // Without T5, diffusers uses zeros of the tokenizer's max length (77).
      for (int t = 0; t < n_texts; ++t) t5_embeds[t] = Tensor::zeros({1, 77, t5_dim}, DType::F32);
    }
    Sd3Embeds* outs[2] = {&pos, &neg};
    for (int t = 0; t < n_texts; ++t) {
      Tensor clip = pad_last_dim(kernels::concat(clip_hidden[t], -1), t5_embeds[t].size(-1));
      outs[t]->embeds = kernels::concat({clip, t5_embeds[t]}, 1);
      outs[t]->pooled = kernels::concat(clip_pooled[t], -1);
      const std::string prefix = t == 0 ? "encode_prompt." : "encode_prompt.negative_";
      trace(hooks, prefix + "prompt_embeds", outs[t]->embeds);
      trace(hooks, prefix + "pooled_prompt_embeds", outs[t]->pooled);
    }
  }

};

}  // namespace

void register_sd3_pipelines() {
  register_pipeline("StableDiffusion3Pipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<StableDiffusion3Pipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
