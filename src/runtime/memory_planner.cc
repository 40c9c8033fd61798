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
  size_t all_tracked = 0, all_mapped = 0;
  for (const auto& c : p.components) {
    all_tracked += c.tracked();
    all_mapped += c.mapped();
  }
  // One component's weights while its phase runs and while it is built, as (tracked, mapped).
  struct Use {
    size_t run_tracked, run_mapped, load_tracked, load_mapped;
  };
  auto use = [&](const ComponentWeights& c, bool streamable) -> Use {
    if (mode == Offload::None) return {all_tracked, all_mapped, all_tracked, 0};
    if (mode == Offload::Blocks && streamable && !c.stacks.empty())
      return {c.streamed_tracked(req.group), c.streamed_mapped(req.group), c.other_tracked + c.other_transient,
              c.other_source};
    return {c.tracked(), c.mapped(), c.tracked() + c.largest_transient(), c.largest_source()};
  };
  auto phase = [&](const std::string& name, const Use& u, size_t act) {
    PhasePrediction ph;
    ph.name = name;
    ph.activations = act;
    const size_t run = u.run_tracked + act + u.run_mapped, load = u.load_tracked + u.load_mapped;
    ph.weights = u.run_tracked;
    ph.mapped = run >= load ? u.run_mapped : u.load_mapped;
    ph.tracked = std::max(u.run_tracked + act, u.load_tracked);
    ph.rss = std::max(run, load);  // the baseline is added below
    p.phases.push_back(ph);
  };

  // Text embeddings: each prompt's output from encoding on, the (negative, positive) x images
  // batch the transformer reads from denoising on; both are held until the run ends.
  const size_t prompts = fam.cfg ? 2 : 1;
  const size_t per_prompt = static_cast<size_t>(fam.text_len * fam.embed_width) * 4;
  const size_t embeds = per_prompt * (prompts + prompts * req.batch);

  if (mode == Offload::None) {
    size_t so_far = 0, peak = 0;
    size_t tracked_peak = 0;
    for (const auto& c : p.components) {
      peak = std::max(peak, so_far + c.tracked() + c.largest_transient() + c.largest_source());
      tracked_peak = std::max(tracked_peak, so_far + c.tracked() + c.largest_transient());
      so_far += c.tracked();
    }
    PhasePrediction ph;
    ph.name = "loading";
    ph.weights = all_tracked;
    ph.tracked = tracked_peak;
    ph.mapped = peak - tracked_peak;
    ph.rss = peak;
    p.phases.push_back(ph);
  }

  // Text encoding: the encoders one after the other (SD3 runs three); while the negative prompt
  // is encoded, the positive one's output is held.
  {
    PhasePrediction worst;
    for (const EncoderUse& e : fam.encoders) {
      const ComponentWeights* c = find(p.components, e.component);
      if (!c) continue;
      const io::ModelFolder& f = folder_of(e.component);
      ActivationContext actx{req.compute, c->gemm_input_bytes};
      const size_t held = (prompts - 1) * static_cast<size_t>(e.seq) *
                          static_cast<size_t>(f.config().get_or<int64_t>("d_model", f.config().get_or<int64_t>(
                                                                                          "hidden_size", 0))) * 4;
      phase("text_encoding", use(*c, true), text_encoder_activation_peak(f, e.seq, e.hidden_states, actx) + held);
      if (p.phases.back().rss >= worst.rss) worst = p.phases.back();
      p.phases.pop_back();
    }
    worst.name = "text_encoding";
    p.phases.push_back(worst);
  }

  // Denoising: the transformer on (both CFG halves of) the batch, plus the loop's latents.
  {
    ActivationContext actx{req.compute, transformer->gemm_input_bytes};
    const size_t act = transformer_activation_peak(folder_of("transformer"), dit_batch, lh, lw, fam.text_len, actx);
    const size_t latent = static_cast<size_t>(dit_batch * lh * lw) * 16 * 4 * 4;  // latents, CFG copies, scheduler
    phase("denoising", use(*transformer, true), act + embeds + latent);
  }

  // Decoding: the VAE on the final latents; the pipeline still holds the text embeddings.
  phase("decoding", use(*vae, false), vae_decode_activation_peak(folder_of("vae"), req.batch, lh, lw) + embeds);

  // Measured once per process, before the first plan: what the process holds without weights.
  static const size_t process_base = process_current_rss();
  p.baseline = process_base + kRuntimeBaseline;
  for (auto& ph : p.phases) ph.rss += p.baseline;
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
      for (const auto& s : c.stacks) max_group = std::max(max_group, static_cast<int>(s.tracked.size()));
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

std::optional<std::string> check_fits_machine(const std::string& dir, const MemoryPrediction& p, size_t machine_bytes) {
  if (machine_bytes == 0 || p.peak_rss() <= machine_bytes) return std::nullopt;
  std::string advice;
  try {
    const MemoryPrediction fit = choose_plan(dir, p.request, machine_bytes, {});
    advice = "`--max-memory " + format_bytes(machine_bytes) + "` would run " + fit.plan_str() + " (predicted " +
             format_bytes(fit.peak_rss()) + ")";
  } catch (const Error& e) {
    advice = std::string("no offload mode fits without more quantization: ") + e.what();
  }
  return "[plan] " + dir + ": the predicted peak of " + p.plan_str() + " is " + format_bytes(p.peak_rss()) +
         ", more than this machine's " + format_bytes(machine_bytes) + " of memory; " + advice +
         " (or pass --no-memory-check to run anyway)";
}

}  // namespace qdit::runtime
