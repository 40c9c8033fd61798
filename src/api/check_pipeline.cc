// Case runner for pipeline cases: the request comes from case.json's call_kwargs, initial latents
// and (for cases without tokenizers) the prompt embeddings from inputs.safetensors; every
// intermediate the pipeline traces under a golden name is compared.
#include "qdit/api/case_runners.h"
#include "qdit/api/golden_case.h"
#include "qdit/core/error.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::api {

namespace {

CaseOutputs run_pipeline(const GoldenCase& c, const CheckOptions& opt) {
  pipelines::PipelineOptions popt;
  popt.ctx.compute = opt.compute;
  popt.quant = opt.quant;
  popt.ctx.fuse_qkv = opt.fuse_qkv;
  auto pipe = pipelines::load_pipeline(c.path(c.info.get<std::string>("pipeline_dir")), popt);
  const io::JsonConfig kw = c.info.sub("call_kwargs");
  pipelines::GenerateRequest req;
  req.prompt = c.info.get_or<std::string>("prompt", "");
  req.prompt = kw.get_or<std::string>("prompt", req.prompt);
  req.negative_prompt = kw.get_or<std::string>("negative_prompt", "");
  req.height = kw.get<int64_t>("height");
  req.width = kw.get<int64_t>("width");
  req.steps = kw.get<int>("num_inference_steps");
  req.guidance = kw.get_or<float>("guidance_scale", -1.0f);
  req.max_sequence_length = kw.get_or<int>("max_sequence_length", 0);
  req.latents = c.input("latents");

  CaseOutputs out;
  pipelines::RunHooks hooks;
  hooks.trace = [&](const std::string& name, const Tensor& t) { out[name] = t.clone(); };
  hooks.provided = [&](const std::string& name) { return c.has_input(name) ? c.input(name) : Tensor(); };
  pipe->generate(req, hooks);
  return out;
}

}  // namespace

void register_pipeline_case_runners() { register_case_runner("pipeline", run_pipeline); }

}  // namespace qdit::api
