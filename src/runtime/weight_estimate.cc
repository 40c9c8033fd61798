#include "qdit/runtime/weight_estimate.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/kernels/gemm.h"
#include "qdit/nn/quantizing_factory.h"
#include "qdit/quant/quantized_linear.h"
#include "qdit/quant/scheme.h"

namespace qdit::runtime {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The block stacks the models build with nn::LazyBlocks, by tensor-name prefix.
const char* const kStacks[] = {"transformer_blocks", "single_transformer_blocks", "joint_transformer_blocks",
                               "encoder.block", "text_model.encoder.layers"};

// (stack index, block index) of a tensor, or (-1, -1).
std::pair<int, int64_t> block_of(const std::string& name) {
  for (int s = 0; s < static_cast<int>(std::size(kStacks)); ++s) {
    const std::string p = std::string(kStacks[s]) + ".";
    if (!starts_with(name, p)) continue;
    size_t i = p.size(), j = i;
    while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
    if (j > i && j < name.size() && name[j] == '.') return {s, std::stoll(name.substr(i, j - i))};
  }
  return {-1, -1};
}

// Tensors the model never binds (the VAE encoder, a T5 decoder) cost nothing.
bool unused(const std::string& cls, const std::string& name, DType dtype) {
  if (!dtype_info(dtype).is_float && dtype != DType::U8 && dtype != DType::I8) return true;  // position_ids etc.
  if (cls == "AutoencoderKL") return starts_with(name, "encoder.") || starts_with(name, "quant_conv.");
  if (cls == "T5EncoderModel" || cls == "UMT5EncoderModel")
    return starts_with(name, "decoder.") || starts_with(name, "lm_head.");
  return false;
}

// Token-embedding tables are used as mapped views (only the looked-up rows are read).
bool embedding_view(const std::string& name) {
  return name == "shared.weight" || ends_with(name, "embed_tokens.weight") || ends_with(name, "token_embedding.weight");
}

Tensor stand_in(int64_t rows, int64_t cols, DType dtype) {
  Tensor t = Tensor::empty({rows, cols}, DType::F32);
  float* p = t.data<float>();
  uint32_t s = 2463534242u;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    p[i] = static_cast<float>(s >> 8) / 8388608.0f - 1.0f;
  }
  return dtype == DType::F32 ? t : t.to(dtype);
}

struct KernelCost {
  double resident = 0;   // bytes the kernel keeps
  double transient = 0;  // extra bytes alive while it is built (conversions, staging copies)
};

KernelCost kernel_cost(const std::string& scheme, DType stored, DType compute, int64_t rows, int64_t in) {
  const Tensor w = stand_in(rows, in, stored);  // plays the checkpoint's mapped tensor: not counted
  CpuAllocator& a = CpuAllocator::instance();
  const size_t before = a.stats().total_live;
  a.reset_peaks();  // the planner runs before any phase; phases reset the peaks again
  std::unique_ptr<kernels::LinearKernel> k;
  if (scheme.empty()) {
    k = kernels::make_float_linear(w, Tensor(), compute);
  } else {
    const quant::Scheme& s = quant::find_scheme(scheme);
    k = quant::make_quantized_linear(quant::quantize_weight(s, w), Tensor(), compute);
  }
  const double peak = static_cast<double>(a.stats().total_peak - before);
  const double kept = static_cast<double>(k->weight_bytes());
  return {kept, std::max(0.0, peak - kept)};
}

double gemm_input_bytes(const std::string& scheme, DType compute) {
  const double bf16_copy = compute == DType::BF16 ? (kernels::native_bf16_gemm_available() ? 2.0 : 6.0) : 0.0;
  if (scheme.empty()) return bf16_copy;
  const quant::Scheme& s = quant::find_scheme(scheme);
  switch (s.activation()) {
    case quant::ActivationQuant::None: return bf16_copy;
    case quant::ActivationQuant::Int8PerToken: return 1.0;
    default: return 4.0 + bf16_copy;  // quantize-dequantize copy, then the weight-only path
  }
}

}  // namespace

LinearCost linear_cost(const std::string& scheme, DType stored, DType compute, int64_t out, int64_t in) {
  // Kernel bytes are affine in the row count (codes and scales per row, a few fixed tables):
  // two stand-ins give the slope and the intercept.
  struct Fit {
    KernelCost slope, intercept;
  };
  static std::mutex mu;
  static std::map<std::tuple<std::string, DType, DType, int64_t>, Fit> fits;
  constexpr int64_t r1 = 64, r2 = 128;
  Fit fit;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_tuple(scheme, stored, compute, in);
    auto it = fits.find(key);
    if (it == fits.end()) {
      const KernelCost a = kernel_cost(scheme, stored, compute, r1, in), b = kernel_cost(scheme, stored, compute, r2, in);
      Fit f;
      f.slope = {(b.resident - a.resident) / (r2 - r1), (b.transient - a.transient) / (r2 - r1)};
      f.intercept = {a.resident - f.slope.resident * r1, a.transient - f.slope.transient * r1};
      it = fits.emplace(key, f).first;
    }
    fit = it->second;
  }
  const double n = static_cast<double>(out);
  return {static_cast<size_t>(std::max(0.0, fit.slope.resident * n + fit.intercept.resident)),
          static_cast<size_t>(std::max(0.0, fit.slope.transient * n + fit.intercept.transient))};
}

size_t StackWeights::max_group(const std::vector<size_t>& v, int group) {
  size_t best = 0;
  for (size_t g = 0; g < v.size(); g += static_cast<size_t>(group)) {
    size_t sum = 0;
    for (size_t i = g; i < std::min(v.size(), g + group); ++i) sum += v[i];
    best = std::max(best, sum);
  }
  return best;
}

size_t ComponentWeights::tracked() const {
  size_t n = other_tracked;
  for (const auto& s : stacks)
    for (size_t b : s.tracked) n += b;
  return n;
}

size_t ComponentWeights::mapped() const {
  size_t n = other_mapped;
  for (const auto& s : stacks)
    for (size_t b : s.mapped) n += b;
  return n;
}

size_t ComponentWeights::largest_source() const {
  size_t n = other_source;
  for (const auto& s : stacks)
    for (size_t b : s.source) n = std::max(n, b);
  return n;
}

size_t ComponentWeights::largest_transient() const {
  size_t n = other_transient;
  for (const auto& s : stacks)
    for (size_t b : s.transient) n = std::max(n, b);
  return n;
}

size_t ComponentWeights::streamed_tracked(int group) const {
  // While stack s runs: its group, its prefetch (a stack of one group has none: it is rebuilt
  // each pass), and one pending group of every other stack with more than one group.
  size_t pending = 0, worst = 0;
  for (const auto& s : stacks)
    if (s.groups(group) > 1) pending += StackWeights::max_group(s.tracked, group);
  for (const auto& s : stacks) {
    const size_t g = StackWeights::max_group(s.tracked, group);
    const size_t others = s.groups(group) > 1 ? pending - g : pending;
    worst = std::max(worst, others + g * (s.groups(group) > 1 ? 2 : 1));
  }
  // The prefetch thread builds one Linear at a time, with its conversion copies.
  size_t building = 0;
  for (const auto& s : stacks)
    for (size_t b : s.transient) building = std::max(building, b);
  return other_tracked + worst + building;
}

size_t ComponentWeights::streamed_mapped(int group) const {
  size_t worst = 0;
  for (const auto& s : stacks)
    worst = std::max(worst, StackWeights::max_group(s.mapped, group) + StackWeights::max_group(s.source, group));
  return other_mapped + worst;
}

ComponentWeights estimate_component_weights(const io::ModelFolder& f, const std::string& component,
                                            const quant::PipelineQuantConfig& qcfg, DType compute) {
  ComponentWeights w;
  w.name = component;
  w.class_name = f.class_name();
  const auto& weights = f.weights();
  w.checkpoint_bytes = weights->total_bytes();
  const auto stored = nn::stored_quantization(f.config());
  const auto rule = stored ? std::nullopt : qcfg.for_component(component);
  std::string scheme;
  if (stored) {
    w.quant = stored->scheme + " (stored)";
    scheme = stored->scheme;
  } else if (rule) {
    w.quant = rule->scheme;
    scheme = rule->scheme;
  }
  w.gemm_input_bytes = gemm_input_bytes(scheme, compute);
  const quant::Scheme* qs = rule ? &quant::find_scheme(rule->scheme) : nullptr;
  const DType vae_compute = DType::F32;  // the VAE runs in f32 whatever the pipeline's dtype
  const DType comp = w.class_name == "AutoencoderKL" ? vae_compute : compute;

  // Stored codes run as mapped views, except int8dq, which packs them into its own layout.
  const bool stored_views = stored && quant::find_scheme(stored->scheme).activation() !=
                                          quant::ActivationQuant::Int8PerToken;
  std::map<int, StackWeights> stacks;
  for (const std::string& name : weights->names()) {
    const io::TensorRecord* r = weights->find(name);
    if (unused(w.class_name, name, r->dtype)) continue;
    size_t tracked = 0, mapped = 0, transient = 0;
    const size_t source = r->nbytes();
    const bool is_float = dtype_info(r->dtype).is_float;
    const bool weight = ends_with(name, ".weight");
    if (stored && (!is_float || !(weight || ends_with(name, ".bias")))) {
      (stored_views ? mapped : tracked) = r->nbytes();  // stored quantized parts
    } else if (embedding_view(name)) {
      // a mapped view of which only the looked-up rows are read
    } else if (weight && r->shape.size() == 2) {  // a Linear
      const int64_t out = r->shape[0], in = r->shape[1];
      const std::string module = name.substr(0, name.size() - 7);
      const bool quantized = qs && !quant::module_excluded(module, rule->exclude) && qs->applies_to(out, in);
      const LinearCost c = linear_cost(quantized ? rule->scheme : "", r->dtype, comp, out, in);
      tracked = c.resident;
      transient = c.transient;
    } else if (weight && r->shape.size() == 4 && w.class_name != "AutoencoderKL") {  // patch-embedding conv as GEMM
      const LinearCost c = linear_cost("", r->dtype, comp, r->shape[0], r->shape[1] * r->shape[2] * r->shape[3]);
      tracked = c.resident;
      transient = c.transient;
    } else {
      tracked = static_cast<size_t>(r->numel()) * sizeof(float);  // f32 copies: norms, tables, biases, VAE convs
    }
    const auto [s, b] = block_of(name);
    if (s < 0) {
      w.other_tracked += tracked;
      w.other_mapped += mapped;
      w.other_source += source;
      w.other_transient = std::max(w.other_transient, transient);
      continue;
    }
    StackWeights& st = stacks[s];
    st.name = kStacks[s];
    if (st.tracked.size() <= static_cast<size_t>(b)) {
      st.tracked.resize(b + 1, 0);
      st.mapped.resize(b + 1, 0);
      st.source.resize(b + 1, 0);
      st.transient.resize(b + 1, 0);
    }
    st.tracked[b] += tracked;
    st.mapped[b] += mapped;
    st.source[b] += source;
    st.transient[b] = std::max(st.transient[b], transient);  // Linears are built one at a time
  }
  for (auto& [_, st] : stacks) w.stacks.push_back(std::move(st));
  return w;
}

}  // namespace qdit::runtime
