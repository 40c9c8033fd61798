// Case runners for tokenizer and scheduler cases.
//  - tokenizer: prompts (UTF-8 bytes in inputs) through each tokenizer folder, padded/truncated to
//    the recorded max lengths (T5: L{n}.*, pixart_L{n}.* after PixArt's lower().strip(); CLIP:
//    clip_l.* / clip_g.*).
//  - scheduler: timesteps/sigmas for N (and for every other recorded N), the full trajectory fed
//    with the stored model outputs, and Flux's mu / custom sigmas.
#include <string>

#include "qdit/api/case_runners.h"
#include "qdit/api/golden_case.h"
#include "qdit/core/error.h"
#include "qdit/schedulers/scheduler_registry.h"
#include "qdit/tokenizers/tokenizer.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::api {

namespace {

std::vector<std::string> case_prompts(const GoldenCase& c) {
  Tensor bytes = c.input("prompts_utf8").contiguous();
  Tensor nbytes = c.input("prompts_nbytes").contiguous();
  QDIT_CHECK(bytes.dtype() == DType::I64 && nbytes.dtype() == DType::I64, "[check] ", c.dir,
             ": prompts_utf8 / prompts_nbytes must be I64");
  std::vector<std::string> prompts;
  const int64_t n = bytes.size(0), width = bytes.size(1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = nbytes.data<int64_t>()[i];
    QDIT_CHECK(len >= 0 && len <= width, "[check] ", c.dir, ": prompt ", i, " length ", len, " out of range");
    std::string s;
    for (int64_t j = 0; j < len; ++j) s.push_back(static_cast<char>(bytes.data<int64_t>()[i * width + j]));
    prompts.push_back(s);
  }
  return prompts;
}

void add_batch(CaseOutputs& out, const std::string& prefix, const tokenizers::TokenizedBatch& b) {
  out[prefix + ".input_ids"] = b.ids_tensor();
  out[prefix + ".attention_mask"] = b.mask_tensor();
}

CaseOutputs run_tokenizer(const GoldenCase& c, const CheckOptions&) {
  const std::vector<std::string> prompts = case_prompts(c);
  CaseOutputs out;
  if (c.info.has("tokenizer_dirs")) {  // CLIP: one folder per named tokenizer
    const auto dirs = c.info.get<std::map<std::string, std::string>>("tokenizer_dirs");
    const int max_len = c.info.get<int>("max_length");
    for (const auto& [name, sub] : dirs) {
      auto tok = tokenizers::load_tokenizer(c.path(sub));
      add_batch(out, name, tok->encode(prompts, max_len, true, true));
    }
    return out;
  }
  auto tok = tokenizers::load_tokenizer(c.path(c.info.get<std::string>("tokenizer_dir")));
  std::vector<std::string> pixart;
  for (const auto& p : prompts) pixart.push_back(tokenizers::pixart_preprocess(p));
  for (int len : c.info.get<std::vector<int>>("max_lengths")) {
    add_batch(out, "L" + std::to_string(len), tok->encode(prompts, len, true, true));
    add_batch(out, "pixart_L" + std::to_string(len), tok->encode(pixart, len, true, true));
  }
  return out;
}

Tensor vector_tensor(const std::vector<float>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

CaseOutputs run_scheduler(const GoldenCase& c, const CheckOptions&) {
  const std::string dir = c.path(c.info.get<std::string>("scheduler_dir"));
  const int n = c.info.get<int>("num_inference_steps");
  auto sched = schedulers::load_scheduler(dir);
  CaseOutputs out;
  std::optional<double> mu;
  if (sched->uses_dynamic_shifting()) {
    // FluxPipeline: custom sigmas linspace(1, 1/N, N) and mu from the image sequence length.
    mu = schedulers::flux_mu(c.info.get<int64_t>("image_seq_len"), *sched);
    out["mu"] = Tensor::from_vector({static_cast<float>(*mu)}, {1});
    sched->set_custom_sigmas(schedulers::flux_default_sigmas(n), mu);
    // schnell_*: the FLUX.1-schnell config (shift 1, no dynamic shifting), 4 steps, custom sigmas.
    if (c.outputs->contains("schnell_timesteps_n4")) {
      io::JsonConfig base = io::JsonConfig::load(dir + "/scheduler_config.json");
      nlohmann::json j = base.raw();
      j["use_dynamic_shifting"] = false;
      j["shift"] = 1.0;
      auto schnell = schedulers::load_scheduler(io::JsonConfig::from_json(j, dir + " (schnell variant)"));
      schnell->set_custom_sigmas(schedulers::flux_default_sigmas(4));
      out["schnell_timesteps_n4"] = vector_tensor(schnell->timesteps());
      out["schnell_sigmas_n4"] = vector_tensor(schnell->sigmas());
    }
  } else {
    sched->set_timesteps(n);
  }
  out["timesteps"] = vector_tensor(sched->timesteps());
  out["sigmas"] = vector_tensor(sched->sigmas());
  out["init_noise_sigma"] = Tensor::from_vector({sched->init_noise_sigma()}, {1});
  Tensor sample = c.input("sample_init").contiguous().clone();
  for (int i = 0; i < n; ++i) {
    sample = sched->step(c.input("model_output." + std::to_string(i)), i, sample);
    out["sample." + std::to_string(i + 1)] = sample;
  }
  // Other step counts recorded as timesteps_n{K} / sigmas_n{K} (same config, fresh schedule).
  if (!sched->uses_dynamic_shifting()) {
    for (const auto& rec : c.outputs->records()) {
      if (rec.name.rfind("timesteps_n", 0) != 0) continue;
      const int k = std::stoi(rec.name.substr(11));
      auto s = schedulers::load_scheduler(dir);
      s->set_timesteps(k);
      out[rec.name] = vector_tensor(s->timesteps());
      out["sigmas_n" + std::to_string(k)] = vector_tensor(s->sigmas());
    }
  }
  return out;
}

}  // namespace

void register_text_and_schedule_case_runners() {
  register_case_runner("tokenizer", run_tokenizer);
  register_case_runner("scheduler", run_scheduler);
}

}  // namespace qdit::api
