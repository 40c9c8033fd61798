// Case runners for single components: transformer, text_encoder and vae cases load the model
// folder named in case.json and feed inputs.safetensors in diffusers' argument names.
#include <string>

#include "qdit/api/case_runners.h"
#include "qdit/api/golden_case.h"
#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/models/registry.h"
#include "qdit/nn/quantizing_factory.h"

namespace qdit::api {

namespace {

// The case's model folder ("transformer", "text_encoder", "vae") is the component name the
// quantization config is matched against.
nn::ModuleContext context_for(const CheckOptions& opt, const std::string& component) {
  nn::ModuleContext ctx;
  ctx.compute = opt.compute;
  ctx.fuse_qkv = opt.fuse_qkv;
  return nn::context_for_component(ctx, opt.quant, component);
}

template <typename T>
std::unique_ptr<T> load_case_model(const GoldenCase& c, const std::string& dir_key, const CheckOptions& opt) {
  const std::string sub = c.info.get<std::string>(dir_key);
  io::ModelFolder folder = io::ModelFolder::open(c.path(sub));
  return models::create_model_as<T>(folder.class_name(), models::ModelSource{sub, &folder.config(), folder.weights(),
                                                                             context_for(opt, sub)});
}

std::vector<float> as_floats(const Tensor& t) { return t.to_vector(); }

CaseOutputs run_transformer(const GoldenCase& c, const CheckOptions& opt) {
  auto model = load_case_model<models::DiffusionTransformer>(c, "model_dir", opt);
  models::DiTInputs in;
  in.latents = c.input("hidden_states").contiguous();
  in.encoder_hidden_states = c.input("encoder_hidden_states").contiguous();
  if (c.has_input("encoder_attention_mask")) in.encoder_attention_mask = c.input("encoder_attention_mask");
  if (c.has_input("pooled_projections")) in.pooled_projections = c.input("pooled_projections");
  in.timestep = as_floats(c.input("timestep"));
  if (c.has_input("guidance")) in.guidance = as_floats(c.input("guidance"));
  if (c.has_input("img_ids")) in.img_ids = c.input("img_ids");
  if (c.has_input("txt_ids")) in.txt_ids = c.input("txt_ids");
  return {{"sample", model->forward(in)}};
}

// Adds last_hidden_state, hidden_states.i, penultimate_hidden_state, pooler_output and
// text_embeds (suffixed) for one encoder call.
void add_encoder_outputs(CaseOutputs& out, const models::TextEncoderOutput& o, const std::string& suffix,
                         bool with_hidden) {
  out["last_hidden_state" + suffix] = o.last_hidden_state;
  if (o.pooled.defined()) out["pooler_output" + suffix] = o.pooled;
  if (o.text_embeds.defined()) out["text_embeds" + suffix] = o.text_embeds;
  if (!with_hidden) return;
  for (size_t i = 0; i < o.hidden_states.size(); ++i) out["hidden_states." + std::to_string(i)] = o.hidden_states[i];
  if (o.hidden_states.size() >= 2) out["penultimate_hidden_state"] = o.hidden_states[o.hidden_states.size() - 2];
}

CaseOutputs run_text_encoder(const GoldenCase& c, const CheckOptions& opt) {
  auto enc = load_case_model<models::TextEncoder>(c, "model_dir", opt);
  Tensor ids = c.input("input_ids");
  Tensor mask = c.has_input("attention_mask") ? c.input("attention_mask") : Tensor();
  CaseOutputs out;
  // T5-style cases call with the mask first and record *_nomask; CLIP-style cases the reverse.
  const bool main_call_masked = c.outputs->contains("last_hidden_state_nomask");
  add_encoder_outputs(out, enc->encode(ids, main_call_masked ? mask : Tensor(), true), "", true);
  if (mask.defined())
    add_encoder_outputs(out, enc->encode(ids, main_call_masked ? Tensor() : mask, false),
                        main_call_masked ? "_nomask" : "_masked", false);
  return out;
}

CaseOutputs run_vae(const GoldenCase& c, const CheckOptions& opt) {
  auto vae = load_case_model<models::VaeDecoder>(c, "model_dir", opt);
  Tensor z = c.input("latents").contiguous();
  CaseOutputs out;
  out["image"] = vae->decode(z);
  // What the pipelines do: z / scaling_factor + shift_factor.
  Tensor scaled = z.clone();
  kernels::binary_inplace(scaled, Tensor::full({1}, vae->scaling_factor()), kernels::BinaryOp::Div);
  if (vae->shift_factor() != 0.0f) kernels::add_inplace(scaled, Tensor::full({1}, vae->shift_factor()));
  out["image_from_scaled_latents"] = vae->decode(scaled);
  return out;
}

}  // namespace

void register_model_case_runners() {
  register_case_runner("transformer", run_transformer);
  register_case_runner("text_encoder", run_text_encoder);
  register_case_runner("vae", run_vae);
}

}  // namespace qdit::api
