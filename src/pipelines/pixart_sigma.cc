// PixArtSigmaPipeline (diffusers 0.30.3): T5 prompt encoding with PixArt's lower().strip(),
// classifier-free guidance over cat([negative, positive]), DPM-Solver++ denoising, learned-sigma
// channel split, VAE decode of latents / scaling_factor.
#include <cstdio>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/component_loader.h"
#include "qdit/pipelines/families.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::pipelines {

namespace {

struct PromptEmbeds {
  Tensor embeds, mask;  // [1, L, D], [1, L] (f32 ones/zeros)
};

class PixArtSigmaPipeline : public Pipeline {
 public:
  PixArtSigmaPipeline(const std::string& dir, const PipelineOptions& opt) : loader_(dir, opt.ctx) {
    // The transformer and VAE configs decide default sizes and channel handling up front.
    transformer_config_ = loader_.config("transformer");
    vae_config_ = loader_.config("vae");
  }

  std::string class_name() const override { return "PixArtSigmaPipeline"; }

  GenerateResult generate(const GenerateRequest& req_in, const RunHooks& hooks) override {
    GenerateResult result;
    GenerateRequest req = req_in;
    const auto block_out = vae_config_.get<std::vector<int64_t>>("block_out_channels");
    const int64_t vae_scale = int64_t{1} << (block_out.size() - 1);
    const int64_t sample_size = transformer_config_.get<int64_t>("sample_size");
    if (req.steps <= 0) req.steps = 20;
    if (req.guidance < 0) req.guidance = 4.5f;
    if (req.max_sequence_length <= 0) req.max_sequence_length = 300;
    if (req.height <= 0) req.height = sample_size * vae_scale;
    if (req.width <= 0) req.width = sample_size * vae_scale;
    QDIT_CHECK(req.height % vae_scale == 0 && req.width % vae_scale == 0, "[pixart] width and height must be multiples of ",
               vae_scale, ", got ", req.width, "x", req.height);
    const bool cfg = req.guidance > 1.0f;

    // 1. Prompt encoding.
    PhaseTimer encode_timer("text_encoding");
    PromptEmbeds pos, neg;
    encode_prompts(req, cfg, hooks, pos, neg);
    result.phases.push_back(encode_timer.finish());

    // 2. Denoising.
    PhaseTimer denoise_timer("denoising");
    auto transformer = loader_.model<models::DiffusionTransformer>("transformer");
    auto scheduler = loader_.scheduler();
    const int64_t latent_c = transformer->in_channels();
    const Shape latent_shape{1, latent_c, req.height / vae_scale, req.width / vae_scale};
    Tensor latents = req.latents.defined() ? req.latents.contiguous().to(DType::F32).clone() : seeded_noise(latent_shape, req.seed);
    QDIT_CHECK(latents.shape() == latent_shape, "[pixart] initial latents are ", latents.desc(), ", expected ",
               shape_str(latent_shape));
    scheduler->set_timesteps(req.steps);
    kernels::scale_inplace(latents, scheduler->init_noise_sigma());

    models::DiTInputs in;
    in.encoder_hidden_states = cfg ? kernels::concat({neg.embeds, pos.embeds}, 0) : pos.embeds;
    in.encoder_attention_mask = cfg ? kernels::concat({neg.mask, pos.mask}, 0) : pos.mask;
    const bool learned_sigma = transformer->out_channels() == 2 * latent_c;
    const auto& timesteps = scheduler->timesteps();
    if (hooks.progress) hooks.progress("denoising", 0, static_cast<int>(timesteps.size()));
    for (int i = 0; i < static_cast<int>(timesteps.size()); ++i) {
      const std::string step = "step" + std::to_string(i) + ".";
      in.latents = cfg ? duplicate_batch(latents) : latents;
      in.timestep.assign(in.latents.size(0), timesteps[i]);
      Tensor out = transformer->forward(in);
      trace(hooks, step + "transformer_in", in.latents);
      trace(hooks, step + "transformer_timestep", Tensor::from_vector(in.timestep, {in.latents.size(0)}));
      trace(hooks, step + "transformer_out", out);
      Tensor guided = cfg ? classifier_free_guidance(out, req.guidance) : out;
      if (learned_sigma) guided = guided.slice(1, 0, latent_c).contiguous();
      latents = scheduler->step(guided, i, latents);
      trace(hooks, step + "timestep", Tensor::from_vector({timesteps[i]}, {1}));
      trace(hooks, step + "model_output", guided);
      trace(hooks, step + "latents_out", latents);
      if (hooks.progress) hooks.progress("denoising", i + 1, static_cast<int>(timesteps.size()));
    }
    transformer.reset();
    trace(hooks, "latents_final", latents);
    result.phases.push_back(denoise_timer.finish());

    // 3. Decoding.
    PhaseTimer decode_timer("decoding");
    auto vae = loader_.model<models::VaeDecoder>("vae");
    Tensor z = latents.clone();
    kernels::binary_inplace(z, Tensor::full({1}, vae->scaling_factor()), kernels::BinaryOp::Div);
    Tensor decoded = vae->decode(z);
    trace(hooks, "image_decoded", decoded);
    result.image = postprocess_image(decoded);
    trace(hooks, "images_np", result.image.permute({0, 2, 3, 1}).contiguous());
    result.phases.push_back(decode_timer.finish());
    result.latents = latents;
    result.used = req;
    result.used.latents = Tensor();
    return result;
  }

 private:
  static void trace(const RunHooks& h, const std::string& name, const Tensor& t) {
    if (h.trace) h.trace(name, t);
  }

  static Tensor provided(const RunHooks& h, const std::string& name) {
    return h.provided ? h.provided(name) : Tensor();
  }

  // diffusers PixArtSigmaPipeline.encode_prompt: the negative prompt is tokenized to the
  // length of the prompt embeddings; masks go to the encoder and on to cross-attention.
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
    auto encode = [&](const std::string& text, int max_len, const std::string& tag, PromptEmbeds& out) {
      tokenizers::TokenizedBatch tok =
          tokenizer->encode({tokenizers::pixart_preprocess(text)}, max_len, /*pad_to_max=*/true, /*truncate=*/true);
      Tensor ids = tok.ids_tensor(), mask = tok.mask_tensor();
      trace(hooks, "tok.t5." + tag + ".input_ids", ids);
      trace(hooks, "tok.t5." + tag + ".attention_mask", mask);
      out.embeds = encoder->encode(ids, mask).last_hidden_state;
      out.mask = mask.to(DType::F32);
    };
    encode(req.prompt, req.max_sequence_length, "prompt", pos);
    trace(hooks, "encode_prompt.prompt_embeds", pos.embeds);
    trace(hooks, "encode_prompt.prompt_attention_mask", pos.mask);
    if (cfg) {
      encode(req.negative_prompt, static_cast<int>(pos.embeds.size(1)), "negative", neg);
      trace(hooks, "encode_prompt.negative_prompt_embeds", neg.embeds);
      trace(hooks, "encode_prompt.negative_prompt_attention_mask", neg.mask);
    }
  }

  ComponentLoader loader_;
  io::JsonConfig transformer_config_, vae_config_;
};

}  // namespace

void register_pixart_pipelines() {
  register_pipeline("PixArtSigmaPipeline", [](const std::string& dir, const PipelineOptions& opt) {
    return std::make_unique<PixArtSigmaPipeline>(dir, opt);
  });
}

}  // namespace qdit::pipelines
