#include "qdit/runtime/memory_planner.h"

#include <algorithm>
#include <sstream>

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/models/registry.h"
#include "qdit/runtime/activation_estimate.h"
#include "qdit/runtime/bytes.h"

namespace qdit::runtime {

namespace {

// What the process holds before the first weight: the executable and its libraries, oneDNN's JIT
// kernels and primitive caches, OpenMP's thread stacks, glibc arenas. Measured on qdit generate
// runs (docs/memory.md) on top of the RSS at planning time.
constexpr size_t kRuntimeBaseline = 24u << 20;

struct EncoderUse {
  std::string component;
  int64_t seq;         // tokens per prompt
  bool hidden_states;  // SD3 keeps every CLIP hidden state
};

// What a pipeline class does, as far as memory goes (mirrors src/pipelines/<family>.cc).
struct Family {
  std::vector<EncoderUse> encoders;
  int64_t text_len = 0;      // tokens the transformer attends to
  int64_t embed_width = 0;   // width of those tokens (the transformer's text input)
  bool cfg = false;
  int64_t default_px = 0;
};

int64_t vae_scale(const io::JsonConfig& vae) {
  return int64_t{1} << (vae.get<std::vector<int64_t>>("block_out_channels").size() - 1);
}

Family describe(const io::PipelineFolder& folder, PlanRequest& req) {
  Family f;
  auto has = [&](const std::string& n) {
    const io::PipelineComponent* c = folder.find_component(n);
    return c && !c->is_null() && c->exists;
  };
  const io::JsonConfig tcfg = folder.open_component("transformer").config();
  const int64_t vs = vae_scale(folder.open_component("vae").config());
  const std::string& cls = folder.class_name();
  auto width_of = [&](const std::string& enc, const char* key) {
    return has(enc) ? folder.open_component(enc).config().get_or<int64_t>(key, 0) : 0;
  };
  if (cls == "PixArtSigmaPipeline") {
    if (req.max_sequence_length <= 0) req.max_sequence_length = 300;
    if (req.guidance < 0) req.guidance = 4.5f;
    f.encoders = {{"text_encoder", req.max_sequence_length, false}};
    f.text_len = req.max_sequence_length;
    f.embed_width = width_of("text_encoder", "d_model");
    f.default_px = tcfg.get<int64_t>("sample_size") * vs;
  } else if (cls == "StableDiffusion3Pipeline") {
    if (req.max_sequence_length <= 0) req.max_sequence_length = 256;
    if (req.guidance < 0) req.guidance = 7.0f;
    f.encoders = {{"text_encoder", 77, true}, {"text_encoder_2", 77, true}};
    const bool t5 = has("text_encoder_3");
    if (t5) f.encoders.push_back({"text_encoder_3", req.max_sequence_length, false});
    f.text_len = 77 + (t5 ? req.max_sequence_length : 77);
    f.embed_width = tcfg.get_or<int64_t>("joint_attention_dim", 4096);
    f.default_px = tcfg.get<int64_t>("sample_size") * vs;
  } else if (cls == "FluxPipeline") {
    if (req.max_sequence_length <= 0) req.max_sequence_length = 512;
    if (req.guidance < 0) req.guidance = 3.5f;
    f.encoders = {{"text_encoder", 77, false}, {"text_encoder_2", req.max_sequence_length, false}};
    f.text_len = req.max_sequence_length;
    f.embed_width = width_of("text_encoder_2", "d_model");
    f.default_px = 64 * vs;
    req.guidance = 1.0f;  // Flux has no classifier-free guidance (guidance is an embedding input)
  } else if (cls == "AuraFlowPipeline") {
    if (req.max_sequence_length <= 0) req.max_sequence_length = 256;
    if (req.guidance < 0) req.guidance = 3.5f;
    f.encoders = {{"text_encoder", req.max_sequence_length, false}};
    f.text_len = req.max_sequence_length;
    f.embed_width = width_of("text_encoder", "d_model");
    f.default_px = tcfg.get<int64_t>("sample_size") * vs;
  } else {
    fail("[plan] ", folder.path(), ": pipeline class '", cls, "' has no memory model");
  }
  f.cfg = req.guidance > 1.0f;
  if (req.width <= 0) req.width = f.default_px;
  if (req.height <= 0) req.height = f.default_px;
  return f;
}

const ComponentWeights* find(const std::vector<ComponentWeights>& v, const std::string& name) {
  for (const auto& c : v)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

size_t MemoryPrediction::peak_rss() const {
  size_t p = 0;
  for (const auto& ph : phases) p = std::max(p, ph.rss);
  return p;
}

std::string MemoryPrediction::plan_str() const {
  std::ostringstream os;
  os << "offload " << pipelines::offload_name(request.offload);
  if (request.offload == pipelines::Offload::Blocks) os << " (" << request.group << " per group)";
  os << ", quant " << (request.quant.empty() ? "none" : request.quant.str()) << ", " << dtype_name(request.compute);
  return os.str();
}

MemoryPrediction predict_memory(const std::string& path, const PlanRequest& req_in) {
  const std::string dir = io::resolve_model_path(path);
  const io::PipelineFolder folder = io::PipelineFolder::open(dir);
  MemoryPrediction p;
  p.request = req_in;
  PlanRequest& req = p.request;
  QDIT_CHECK(req.batch >= 1, "[plan] batch must be at least 1, got ", req.batch);
  QDIT_CHECK(req.group >= 1, "[plan] blocks per group must be at least 1, got ", req.group);
  p.pipeline_class = folder.class_name();
  const Family fam = describe(folder, req);
  const int64_t vs = vae_scale(folder.open_component("vae").config());
  QDIT_CHECK(req.width % vs == 0 && req.height % vs == 0, "[plan] width and height must be multiples of ", vs,
             ", got ", req.width, "x", req.height);
  const int64_t lh = req.height / vs, lw = req.width / vs;
  const int64_t dit_batch = req.batch * (fam.cfg ? 2 : 1);

  // Model components in load order, as the pipeline's loader sees them.
  std::vector<io::ModelFolder> folders;
  for (const io::PipelineComponent& c : folder.components()) {
    if (c.is_null() || !c.exists) continue;
    io::ModelFolder f = folder.open_component(c.name);
    if (!f.has_weights() || !models::has_model(f.class_name())) continue;
    p.components.push_back(estimate_component_weights(f, c.name, req.quant, req.compute));
    folders.push_back(std::move(f));
  }
  auto folder_of = [&](const std::string& name) -> const io::ModelFolder& {
    for (size_t i = 0; i < p.components.size(); ++i)
      if (p.components[i].name == name) return folders[i];
    fail("[plan] ", dir, ": component '", name, "' is missing or not a model");
  };
  const ComponentWeights* transformer = find(p.components, "transformer");
  const ComponentWeights* vae = find(p.components, "vae");
  QDIT_CHECK(transformer && vae, "[plan] ", dir, " needs a transformer and a vae");

  using pipelines::Offload;
  const Offload mode = req.offload;
  size_t all_resident = 0;
  for (const auto& c : p.components) all_resident += c.resident();
  // Weights of one component while its phase runs (the worst moment) and while it loads.
  auto running = [&](const ComponentWeights& c, bool streamable) {
    if (mode == Offload::Blocks && streamable && !c.stacks.empty()) return c.streamed_peak(req.group);
    return c.resident();
  };
  auto loading = [&](const ComponentWeights& c, bool streamable) {
    if (mode == Offload::Blocks && streamable && !c.stacks.empty()) return c.other_resident + c.other_source;
    return c.resident() + c.largest_source();
  };
  auto phase = [&](const std::string& name, size_t weights, size_t act) {
    PhasePrediction ph{name, weights, act, weights + act, 0};
    p.phases.push_back(ph);
  };

  // Text embeddings kept from encoding through denoising: each prompt's output, and the
  // (negative, positive) batch the transformer reads.
  const size_t prompts = fam.cfg ? 2 : 1;
  const size_t embeds = static_cast<size_t>(fam.text_len * fam.embed_width) * 4 * (prompts + prompts * req.batch);

  if (mode == Offload::None) {
    size_t so_far = 0, peak = 0;
    for (const auto& c : p.components) {
      peak = std::max(peak, so_far + c.resident() + c.largest_source());
      so_far += c.resident();
    }
    phase("loading", peak, 0);
  }

  // Text encoding: the encoders one after the other (SD3 runs three).
  {
    size_t weights = 0, act_peak = 0, best = 0;
    for (const EncoderUse& e : fam.encoders) {
      const ComponentWeights* c = find(p.components, e.component);
      if (!c) continue;
      ActivationContext actx{req.compute, c->gemm_input_bytes};
      const size_t act = text_encoder_activation_peak(folder_of(e.component), e.seq, e.hidden_states, actx);
      const size_t w = mode == Offload::None ? all_resident : std::max(running(*c, true), loading(*c, true));
      if (w + act > best) {
        best = w + act;
        weights = w;
        act_peak = act;
      }
    }
    phase("text_encoding", weights, act_peak + embeds);
  }

  // Denoising: the transformer on (both CFG halves of) the batch, plus the loop's latents.
  {
    ActivationContext actx{req.compute, transformer->gemm_input_bytes};
    const size_t act = transformer_activation_peak(folder_of("transformer"), dit_batch, lh, lw, fam.text_len, actx);
    const size_t latent = static_cast<size_t>(dit_batch * lh * lw) * 16 * 4 * 4;  // latents, CFG copies, scheduler
    const size_t w = mode == Offload::None ? all_resident
                                           : std::max(running(*transformer, true), loading(*transformer, true));
    phase("denoising", w, act + embeds + latent);
  }

  // Decoding: the VAE on the final latents.
  {
    const size_t act = vae_decode_activation_peak(folder_of("vae"), req.batch, lh, lw);
    const size_t w = mode == Offload::None ? all_resident : std::max(running(*vae, false), loading(*vae, false));
    phase("decoding", w, act);
  }

  p.baseline = process_current_rss() + kRuntimeBaseline;
  for (auto& ph : p.phases) ph.rss = p.baseline + ph.tracked;
  return p;
}

std::vector<quant::PipelineQuantConfig> auto_quant_candidates(const std::string& path) {
  const io::PipelineFolder folder = io::PipelineFolder::open(io::resolve_model_path(path));
  std::vector<std::string> encoders;
  for (const auto& c : folder.components())
    if (!c.is_null() && c.exists && c.name.rfind("text_encoder", 0) == 0) encoders.push_back(c.name);
  auto spec = [&](const std::string& te, const std::string& tr) {
    std::string s;
    for (const auto& e : encoders) s += (s.empty() ? "" : ",") + e + "=" + te;
    if (!tr.empty()) s += (s.empty() ? "" : ",") + std::string("transformer=") + tr;
    return s.empty() ? quant::PipelineQuantConfig{} : quant::PipelineQuantConfig::parse_spec(s);
  };
  return {quant::PipelineQuantConfig{}, spec("int8wo", ""), spec("int8wo", "int8wo"), spec("int4wo", "int8wo"),
          spec("int4wo", "int4wo")};
}

MemoryPrediction choose_plan(const std::string& dir, const PlanRequest& base, size_t budget, const PlanOptions& opt) {
  using pipelines::Offload;
  const std::vector<quant::PipelineQuantConfig> quants =
      opt.auto_quant ? auto_quant_candidates(dir) : std::vector<quant::PipelineQuantConfig>{base.quant};
  int max_group = 1;
  {
    PlanRequest probe = base;
    probe.offload = Offload::Model;
    for (const auto& c : predict_memory(dir, probe).components)
      for (const auto& s : c.stacks) max_group = std::max(max_group, static_cast<int>(s.resident.size()));
  }
  std::vector<PlanRequest> order;
  for (const auto& q : quants) {
    PlanRequest r = base;
    r.quant = q;
    for (Offload o : {Offload::None, Offload::Model, Offload::Blocks}) {
      if (opt.fixed_offload && o != base.offload) continue;
      r.offload = o;
      if (o != Offload::Blocks) {
        order.push_back(r);
        continue;
      }
      for (int g = opt.fixed_group ? base.group : max_group; g >= 1; --g) {
        r.group = g;
        order.push_back(r);
        if (opt.fixed_group) break;
      }
    }
  }
  std::optional<MemoryPrediction> smallest;
  for (const PlanRequest& r : order) {
    MemoryPrediction p = predict_memory(dir, r);
    if (p.peak_rss() <= budget) return p;
    if (!smallest || p.peak_rss() < smallest->peak_rss()) smallest = std::move(p);
  }
  fail("[plan] --max-memory ", format_bytes(budget), " is below the smallest feasible plan for ", dir, " at ",
       smallest->request.width, "x", smallest->request.height, ", batch ", smallest->request.batch, ": ",
       format_bytes(smallest->peak_rss()), " (", smallest->plan_str(), "); raise the budget to at least ",
       format_bytes(smallest->peak_rss()), opt.auto_quant ? "" : " or allow more quantization (--quant auto)");
}

}  // namespace qdit::runtime
