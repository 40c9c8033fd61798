#include "qdit/runtime/weight_estimate.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

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

size_t kernel_bytes(const std::string& scheme, DType stored, DType compute, int64_t rows, int64_t in) {
  const Tensor w = stand_in(rows, in, stored);
  if (scheme.empty()) return kernels::make_float_linear(w, Tensor(), compute)->weight_bytes();
  const quant::Scheme& s = quant::find_scheme(scheme);
  return quant::make_quantized_linear(quant::quantize_weight(s, w), Tensor(), compute)->weight_bytes();
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

size_t linear_resident_bytes(const std::string& scheme, DType stored, DType compute, int64_t out, int64_t in) {
  // Kernel bytes are affine in the row count (codes and scales per row, a few fixed tables):
  // two stand-ins give the slope and the intercept.
  static std::mutex mu;
  static std::map<std::tuple<std::string, DType, DType, int64_t>, std::pair<double, double>> fits;
  constexpr int64_t r1 = 64, r2 = 128;
  std::pair<double, double> fit;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_tuple(scheme, stored, compute, in);
    auto it = fits.find(key);
    if (it == fits.end()) {
      const double b1 = static_cast<double>(kernel_bytes(scheme, stored, compute, r1, in));
      const double b2 = static_cast<double>(kernel_bytes(scheme, stored, compute, r2, in));
      it = fits.emplace(key, std::make_pair((b2 - b1) / (r2 - r1), b1 - (b2 - b1) / (r2 - r1) * r1)).first;
    }
    fit = it->second;
  }
  return static_cast<size_t>(std::max(0.0, fit.first * static_cast<double>(out) + fit.second));
}

size_t StackWeights::max_group(int group) const {
  size_t best = 0;
  for (size_t g = 0; g < resident.size(); g += static_cast<size_t>(group)) {
    size_t sum = 0;
    for (size_t i = g; i < std::min(resident.size(), g + group); ++i) sum += resident[i];
    best = std::max(best, sum);
  }
  return best;
}

size_t StackWeights::max_group_source(int group) const {
  size_t best = 0;
  for (size_t g = 0; g < source.size(); g += static_cast<size_t>(group)) {
    size_t sum = 0;
    for (size_t i = g; i < std::min(source.size(), g + group); ++i) sum += source[i];
    best = std::max(best, sum);
  }
  return best;
}

size_t ComponentWeights::resident() const {
  size_t n = other_resident;
  for (const auto& s : stacks)
    for (size_t b : s.resident) n += b;
  return n;
}

size_t ComponentWeights::largest_source() const {
  size_t n = other_source;
  for (const auto& s : stacks)
    for (size_t b : s.source) n = std::max(n, b);
  return n;
}

size_t ComponentWeights::streamed_peak(int group) const {
  size_t pending = 0, extra = 0, building = 0;
  for (const auto& s : stacks) {
    pending += s.max_group(group);
    extra = std::max(extra, s.max_group(group));
    building = std::max(building, s.max_group_source(group));
  }
  return other_resident + pending + extra + building;
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

  std::map<int, StackWeights> stacks;
  for (const std::string& name : weights->names()) {
    const io::TensorRecord* r = weights->find(name);
    if (unused(w.class_name, name, r->dtype)) continue;
    size_t resident = 0;
    const size_t source = r->nbytes();
    const bool is_float = dtype_info(r->dtype).is_float;
    const bool weight = ends_with(name, ".weight");
    if (stored && (!is_float || !(weight || ends_with(name, ".bias")))) {
      resident = r->nbytes();  // stored quantized parts: used as they are, or packed to the same size
    } else if (embedding_view(name)) {
      resident = 0;
    } else if (weight && r->shape.size() == 2) {  // a Linear
      const int64_t out = r->shape[0], in = r->shape[1];
      const std::string module = name.substr(0, name.size() - 7);
      const bool quantized = qs && !quant::module_excluded(module, rule->exclude) && qs->applies_to(out, in);
      resident = linear_resident_bytes(quantized ? rule->scheme : "", r->dtype, comp, out, in);
    } else if (weight && r->shape.size() == 4 && w.class_name != "AutoencoderKL") {  // patch-embedding conv as GEMM
      resident = linear_resident_bytes("", r->dtype, comp, r->shape[0], r->shape[1] * r->shape[2] * r->shape[3]);
    } else {
      resident = static_cast<size_t>(r->numel()) * sizeof(float);  // f32 copies: norms, tables, biases, VAE convs
    }
    const auto [s, b] = block_of(name);
    if (s < 0) {
      w.other_resident += resident;
      w.other_source += source;
      continue;
    }
    StackWeights& st = stacks[s];
    st.name = kStacks[s];
    if (st.resident.size() <= static_cast<size_t>(b)) {
      st.resident.resize(b + 1, 0);
      st.source.resize(b + 1, 0);
    }
    st.resident[b] += resident;
    st.source[b] += source;
  }
  for (auto& [_, st] : stacks) w.stacks.push_back(std::move(st));
  return w;
}

}  // namespace qdit::runtime
