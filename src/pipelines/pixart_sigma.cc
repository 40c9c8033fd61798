// PixArtSigmaPipeline (diffusers 0.30.3): T5 prompt encoding with PixArt's lower().strip(),
// classifier-free guidance over cat([negative, positive]), DPM-Solver++ denoising, learned-sigma
// channel split, VAE decode of latents / scaling_factor.
#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/diffusers_pipeline.h"
#include "qdit/pipelines/families.h"
#include "qdit/pipelines/text_conditioning.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::pipelines {

namespace {

struct PromptEmbeds {
  Tensor embeds, mask;  // [1, L, D], [1, L] f32
};

class PixArtSigmaPipeline : public DiffusersPipeline {
 public:
  PixArtSigmaPipeline(const std::string& dir, const PipelineOptions& opt) : DiffusersPipeline(dir, opt) {}

  std::string class_name() const override { return "PixArtSigmaPipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const int64_t sample_size = transformer_config_.get<int64_t>("sample_size");
    if (req.steps <= 0) req.steps = 20;
    if (req.guidance < 0) req.guidance = 4.5f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 300;
    fill_default_size(req, sample_size * vae_scale_, vae_scale_, "pixart");
    const bool cfg = req.guidance > 1.0f;

    PhaseTimer encode_timer("text_encoding");
    PromptEmbeds pos, neg;
    encode_prompts(req, cfg, hooks, pos, neg);
    result.phases.push_back(encode_timer.finish());

    models::DiTInputs cond;
    cond.encoder_hidden_states = cfg ? kernels::concat({neg.embeds, pos.embeds}, 0) : pos.embeds;
    cond.encoder_attention_mask = cfg ? kernels::concat({neg.mask, pos.mask}, 0) : pos.mask;
    auto prepare = [&](const models::DiffusionTransformer& t, schedulers::Scheduler& sched, DenoiseSpec& spec) {
      const int64_t latent_c = t.in_channels();
      Tensor latents = initial_latents(req, {1, latent_c, req.height / vae_scale_, req.width / vae_scale_}, "pixart");
      sched.set_timesteps(req.steps);
      kernels::scale_inplace(latents, sched.init_noise_sigma());
      if (t.out_channels() == 2 * latent_c)  // learned sigma: keep the epsilon half
        spec.adjust_prediction = [latent_c](const Tensor& p) { return p.slice(1, 0, latent_c).contiguous(); };
      return latents;
    };
    Tensor latents = denoise_phase(req, cfg, cond, prepare, hooks, result);
    decode_phase(latents, /*add_shift=*/false, req, hooks, result);
    return result;
  }

 private:
  // diffusers PixArtSigmaPipeline.encode_prompt: the negative prompt is tokenized to the length of
  // the prompt embeddings; the masks go to the encoder and on to cross-attention.
  void encode_prompts(const GenerateRequest& req, bool cfg, const RunHooks& hooks, PromptEmbeds& pos,
                      PromptEmbeds& neg) {
    pos.embeds = provided(hooks, "prompt_embeds");
    if (pos.embeds.defined()) {
      pos.mask = provided(hooks, "prompt_attention_mask").to(DType::F32);
      if (cfg) {
        neg.embeds = provided(hooks, "negative_prompt_embeds");
        neg.mask = provided(hooks, "negative_prompt_attention_mask").to(DType::F32);
        QDIT_CHECK(neg.embeds.defined() && neg.mask.defined(), "[pixart] negative embeddings missing");
      }
      return;
    }
    auto tokenizer = loader_.tokenizer("tokenizer");
    auto encoder = loader_.model<models::TextEncoder>("text_encoder");
    TextEncodeSpec spec;
    spec.pass_mask = true;
    spec.trace_name = "t5";
    spec.trace_mask = true;
    auto encode = [&](const std::string& text, int max_len, const std::string& role, PromptEmbeds& out) {
      spec.max_length = max_len;
      EncodedText e = encode_text(*tokenizer, *encoder, tokenizers::pixart_preprocess(text), spec, role, hooks);
      out.embeds = e.out.last_hidden_state;
      out.mask = e.mask.to(DType::F32);
      trace(hooks, "encode_prompt." + std::string(role == "prompt" ? "" : "negative_") + "prompt_embeds", out.embeds);
      trace(hooks, "encode_prompt." + std::string(role == "prompt" ? "" : "negative_") + "prompt_attention_mask",
            out.mask);
    };
    encode(req.prompt, req.max_sequence_length, "prompt", pos);
    if (cfg) encode(req.negative_prompt, static_cast<int>(pos.embeds.size(1)), "negative", neg);
  }

};

}  // namespace

void register_pixart_pipelines() {
  register_pipeline("PixArtSigmaPipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<PixArtSigmaPipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
