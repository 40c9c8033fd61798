#include "qdit/api/step_bench.h"


#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>

#include "qdit/api/make_model.h"
#include "qdit/api/make_model_internal.h"
#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/kernels/gemm.h"
#include "qdit/models/registry.h"
#include "qdit/nn/quantizing_factory.h"
#include "qdit/quant/scheme.h"

namespace qdit::api {

namespace {

constexpr int64_t kTimeProj = 256;  // sinusoidal timestep projection width of every DiT here

double lin(double m, double k, double n) { return 2.0 * m * k * n; }
double attn(double b, double h, double sq, double skv, double d) { return 4.0 * b * h * sq * skv * d; }

// AuraFlow's feed-forward width: int(2 * 4d / 3) rounded up to a multiple of 256.
int64_t auraflow_ff(int64_t d) {
  const int64_t h = 2 * (4 * d) / 3;
  return h % 256 == 0 ? h : h + 256 - h % 256;
}
constexpr int64_t kAuraRegisterTokens = 8;

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
double wall_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

DitFlops dit_step_flops(const std::string& cls, const io::JsonConfig& c, int64_t batch, int64_t lh, int64_t lw,
                        int64_t text_len) {
  const double B = static_cast<double>(batch);
  DitFlops f;
  if (cls == "PixArtTransformer2DModel") {
    const int64_t heads = c.get_or<int64_t>("num_attention_heads", 16), hd = c.get_or<int64_t>("attention_head_dim", 72);
    const int64_t p = c.get_or<int64_t>("patch_size", 2), cin = c.get_or<int64_t>("in_channels", 4);
    // A missing out_channels is the signature default 8; an explicit null means in_channels.
    const auto oc = c.raw().find("out_channels");
    const int64_t cout = oc == c.raw().end() ? 8 : oc->is_null() ? cin : oc->get<int64_t>();
    const int64_t nl = c.get_or<int64_t>("num_layers", 28), cap = c.get_or<int64_t>("caption_channels", 0);
    const int64_t cross = c.get_or<int64_t>("cross_attention_dim", 1152);
    const double d = static_cast<double>(heads * hd), N = static_cast<double>((lh / p) * (lw / p));
    const double L = static_cast<double>(text_len), BN = B * N, BL = B * L;
    const bool extra = c.has("use_additional_conditions") ? c.get<bool>("use_additional_conditions")
                                                           : c.get_or<int64_t>("sample_size", 128) == 128;
    f.patch = lin(BN, cin * p * p, d);
    f.linear += lin(B, kTimeProj, d) + lin(B, d, d) + lin(B, d, 6 * d);  // timestep MLP, adaln_single.linear
    if (extra) f.linear += 3 * (lin(B, kTimeProj, d / 3) + lin(B, d / 3, d / 3));  // resolution (2B rows), aspect
    if (cap > 0) f.linear += lin(BL, cap, d) + lin(BL, d, d);                       // caption projection
    const double block = lin(BN, d, 3 * d) + lin(BN, d, d)                           // self-attention q/k/v, out
                         + lin(BN, d, d) + lin(BL, cross, 2 * d) + lin(BN, d, d)     // cross q, k/v, out
                         + lin(BN, d, 4 * d) + lin(BN, 4 * d, d);                     // feed-forward
    f.linear += nl * block + lin(BN, d, p * p * cout);
    f.attention = nl * (attn(B, heads, N, N, hd) + attn(B, heads, N, L, hd));
  } else if (cls == "SD3Transformer2DModel") {
    const int64_t heads = c.get_or<int64_t>("num_attention_heads", 18), hd = c.get_or<int64_t>("attention_head_dim", 64);
    const int64_t p = c.get_or<int64_t>("patch_size", 2), cin = c.get_or<int64_t>("in_channels", 16);
    const int64_t cout = c.get_or<int64_t>("out_channels", 16), nl = c.get_or<int64_t>("num_layers", 18);
    const int64_t joint = c.get_or<int64_t>("joint_attention_dim", 4096);
    const int64_t capd = c.get_or<int64_t>("caption_projection_dim", 1152);
    const int64_t pooled = c.get_or<int64_t>("pooled_projection_dim", 2048);
    const double d = static_cast<double>(heads * hd), N = static_cast<double>((lh / p) * (lw / p));
    const double L = static_cast<double>(text_len), BN = B * N, BL = B * L;
    f.patch = lin(BN, cin * p * p, d);
    f.linear += lin(B, kTimeProj, d) + lin(B, d, d) + lin(B, pooled, d) + lin(B, d, d) + lin(BL, joint, capd);
    for (int64_t i = 0; i < nl; ++i) {
      const bool last = i == nl - 1;  // context_pre_only: text stream ends after its q/k/v
      f.linear += lin(B, d, 6 * d) + lin(B, d, (last ? 2 : 6) * d);      // AdaLN modulations
      f.linear += lin(BN, d, 3 * d) + lin(BL, d, 3 * d) + lin(BN, d, d);  // q/k/v both streams, image out
      f.linear += lin(BN, d, 4 * d) + lin(BN, 4 * d, d);                  // image feed-forward
      if (!last) f.linear += lin(BL, d, d) + lin(BL, d, 4 * d) + lin(BL, 4 * d, d);
      f.attention += attn(B, heads, N + L, N + L, hd);
    }
    f.linear += lin(B, d, 2 * d) + lin(BN, d, p * p * cout);
  } else if (cls == "FluxTransformer2DModel") {
    const int64_t heads = c.get_or<int64_t>("num_attention_heads", 24), hd = c.get_or<int64_t>("attention_head_dim", 128);
    const int64_t cin = c.get_or<int64_t>("in_channels", 64), nl = c.get_or<int64_t>("num_layers", 19);
    const int64_t ns = c.get_or<int64_t>("num_single_layers", 38);
    const int64_t joint = c.get_or<int64_t>("joint_attention_dim", 4096);
    const int64_t pooled = c.get_or<int64_t>("pooled_projection_dim", 768);
    const int64_t cout = c.has("out_channels") ? c.get<int64_t>("out_channels") : cin;
    const bool guidance = c.get_or<bool>("guidance_embeds", false);
    const double d = static_cast<double>(heads * hd);
    const double N = static_cast<double>((lh / 2) * (lw / 2)), L = static_cast<double>(text_len);
    const double BN = B * N, BL = B * L, S = N + L, BS = B * S;
    f.linear += lin(BN, cin, d) + lin(BL, joint, d);  // x_embedder, context_embedder
    f.linear += lin(B, kTimeProj, d) + lin(B, d, d) + lin(B, pooled, d) + lin(B, d, d);
    if (guidance) f.linear += lin(B, kTimeProj, d) + lin(B, d, d);
    const double dbl = 2 * lin(B, d, 6 * d)                         // AdaLN modulations, both streams
                       + lin(BN, d, 3 * d) + lin(BL, d, 3 * d)      // q/k/v
                       + lin(BN, d, d) + lin(BL, d, d)              // out projections
                       + lin(BN, d, 4 * d) + lin(BN, 4 * d, d)      // image feed-forward
                       + lin(BL, d, 4 * d) + lin(BL, 4 * d, d);     // text feed-forward
    const double single = lin(B, d, 3 * d) + lin(BS, d, 3 * d) + lin(BS, d, 4 * d) + lin(BS, 5 * d, d);
    f.linear += nl * dbl + ns * single + lin(B, d, 2 * d) + lin(BN, d, cout);
    f.attention = (nl + ns) * attn(B, heads, S, S, hd);
  } else if (cls == "AuraFlowTransformer2DModel") {
    const int64_t heads = c.get_or<int64_t>("num_attention_heads", 24), hd = c.get_or<int64_t>("attention_head_dim", 64);
    const int64_t p = c.get_or<int64_t>("patch_size", 2), cin = c.get_or<int64_t>("in_channels", 4);
    const int64_t cout = c.get_or<int64_t>("out_channels", 4), nj = c.get_or<int64_t>("num_mmdit_layers", 4);
    const int64_t ns = c.get_or<int64_t>("num_single_dit_layers", 32);
    const int64_t joint = c.get_or<int64_t>("joint_attention_dim", 4096);
    const double d = static_cast<double>(heads * hd), ff = static_cast<double>(auraflow_ff(heads * hd));
    const double N = static_cast<double>((lh / p) * (lw / p));
    const double Lc = static_cast<double>(text_len + kAuraRegisterTokens), S = N + Lc;
    const double BN = B * N, BL = B * Lc, BS = B * S;
    f.linear += lin(BN, cin * p * p, d) + lin(B, kTimeProj, d) + lin(B, d, d);
    if (text_len > 0) f.linear += lin(B * text_len, joint, d);  // context_embedder (register tokens are not projected)
    const double jb = 2 * lin(B, d, 6 * d) + lin(BN, d, 3 * d) + lin(BL, d, 3 * d) + lin(BN, d, d) + lin(BL, d, d) +
                      3 * lin(BN, d, ff) + 3 * lin(BL, d, ff);  // SwiGLU: two d->ff, one ff->d
    const double sb = lin(B, d, 6 * d) + lin(BS, d, 3 * d) + lin(BS, d, d) + 3 * lin(BS, d, ff);
    f.linear += nj * jb + ns * sb + lin(B, d, 2 * d) + lin(BN, d, p * p * cout);
    f.attention = (nj + ns) * attn(B, heads, S, S, hd);
  } else {
    fail("[bench-step] no FLOP formula for ", cls, " (known: PixArtTransformer2DModel, SD3Transformer2DModel, ",
         "FluxTransformer2DModel, AuraFlowTransformer2DModel)");
  }
  return f;
}

DepthKeys dit_depth_keys(const std::string& cls) {
  if (cls == "PixArtTransformer2DModel" || cls == "SD3Transformer2DModel")
    return {{"num_layers"}, {"transformer_blocks."}};
  if (cls == "FluxTransformer2DModel")
    return {{"num_layers", "num_single_layers"}, {"transformer_blocks.", "single_transformer_blocks."}};
  if (cls == "AuraFlowTransformer2DModel")
    return {{"num_mmdit_layers", "num_single_dit_layers"}, {"joint_transformer_blocks.", "single_transformer_blocks."}};
  fail("[bench-step] unknown transformer class ", cls);
}

namespace {

// Make-model's random weights, generated on demand (each tensor() call draws the same values
// make-model writes; nothing is kept, so only the packed copies stay resident).
class GeneratedWeights final : public io::WeightSource {
 public:
  GeneratedWeights(std::vector<WeightSpec> specs, uint64_t seed, DType dtype, std::string what)
      : specs_(std::move(specs)), seed_(seed), dtype_(dtype), what_(std::move(what)) {
    for (size_t i = 0; i < specs_.size(); ++i) {
      io::TensorRecord r;
      r.name = specs_[i].name;
      r.dtype = dtype_;
      r.shape = specs_[i].shape;
      r.end = static_cast<uint64_t>(specs_[i].numel()) * dtype_size(dtype_);
      total_ += r.end;
      records_.emplace(r.name, std::make_pair(r, i));
    }
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& s : specs_) n.push_back(s.name);
    return n;
  }
  const io::TensorRecord* find(const std::string& name) const override {
    auto it = records_.find(name);
    return it == records_.end() ? nullptr : &it->second.first;
  }
  Tensor tensor(const std::string& name) const override {
    auto it = records_.find(name);
    QDIT_CHECK(it != records_.end(), "[bench-step] ", what_, " has no tensor ", name);
    const WeightSpec& w = specs_[it->second.second];
    Tensor f = Tensor::empty(w.shape, DType::F32);
    if (w.init == WeightInit::SinCosPosEmbed) {
      f.copy_from(sincos_pos_table(w).reshape(w.shape));
    } else {
      const uint64_t key = weight_stream_key(seed_, "transformer", w.name);
      float* dst = f.data<float>();
      parallel_for(w.numel(), 1 << 16, [&](int64_t b, int64_t e) { fill_weight(w, key, b, e, dst + b); });
    }
    return dtype_ == DType::F32 ? f : f.to(dtype_);
  }
  size_t total_bytes() const override { return total_; }
  std::string describe() const override { return what_; }

 private:
  std::vector<WeightSpec> specs_;
  std::map<std::string, std::pair<io::TensorRecord, size_t>> records_;
  uint64_t seed_;
  DType dtype_;
  std::string what_;
  size_t total_ = 0;
};

// A folder's weights without the blocks past the depth override.
class DepthFilteredWeights final : public io::WeightSource {
 public:
  DepthFilteredWeights(std::shared_ptr<const io::WeightSource> inner, std::vector<std::string> keep)
      : inner_(std::move(inner)), keep_(std::move(keep)) {
    for (const auto& n : keep_) total_ += inner_->find(n)->nbytes();
  }
  std::vector<std::string> names() const override { return keep_; }
  const io::TensorRecord* find(const std::string& name) const override {
    return std::binary_search(sorted().begin(), sorted().end(), name) ? inner_->find(name) : nullptr;
  }
  Tensor tensor(const std::string& name) const override {
    QDIT_CHECK(find(name), "[bench-step] ", describe(), " has no tensor ", name, " at this depth");
    return inner_->tensor(name);
  }
  size_t total_bytes() const override { return total_; }
  std::string describe() const override { return inner_->describe() + " (reduced depth)"; }

 private:
  const std::vector<std::string>& sorted() const {
    if (sorted_.empty()) {
      sorted_ = keep_;
      std::sort(sorted_.begin(), sorted_.end());
    }
    return sorted_;
  }
  std::shared_ptr<const io::WeightSource> inner_;
  std::vector<std::string> keep_;
  mutable std::vector<std::string> sorted_;
  size_t total_ = 0;
};

// True when `name` is in a block at or past the depth limit of its stream.
bool beyond_depth(const std::string& name, const DepthKeys& dk, const std::vector<int64_t>& layers) {
  for (size_t s = 0; s < dk.prefixes.size() && s < layers.size(); ++s) {
    const std::string& p = dk.prefixes[s];
    if (name.compare(0, p.size(), p) != 0) continue;
    const int64_t idx = std::atoll(name.c_str() + p.size());
    return idx >= layers[s];
  }
  return false;
}

// Every Linear the model builds runs under a profile scope that counts 2*M*K*N.
class CountingKernel final : public kernels::LinearKernel {
 public:
  explicit CountingKernel(std::unique_ptr<kernels::LinearKernel> inner) : inner_(std::move(inner)) {}
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  bool fuses_gate() const override { return inner_->fuses_gate(); }
  bool writes_bf16() const override { return inner_->writes_bf16(); }
  bool rounds_input_to_bf16() const override { return inner_->rounds_input_to_bf16(); }
  void forward_into(const Tensor& x, Tensor& y, const kernels::GemmOptions& opt) const override {
    const double m = static_cast<double>(x.numel() / std::max<int64_t>(1, in_features()));
    profile::Scope scope("linear", 2.0 * m * static_cast<double>(in_features()) * static_cast<double>(out_features()));
    inner_->forward_into(x, y, opt);
  }
  std::optional<kernels::RowQuantSpec> input_quantization() const override { return inner_->input_quantization(); }
  void forward_quantized(const kernels::QuantizedRows& x, Tensor& y, const kernels::GemmOptions& opt) const override {
    profile::Scope scope("linear", 2.0 * static_cast<double>(x.m) * static_cast<double>(in_features()) *
                                       static_cast<double>(out_features()));
    inner_->forward_quantized(x, y, opt);
  }

 private:
  std::unique_ptr<kernels::LinearKernel> inner_;
};

class CountingFactory final : public nn::LinearFactory {
 public:
  explicit CountingFactory(std::shared_ptr<const nn::LinearFactory> inner) : inner_(std::move(inner)) {}
  std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& w, const Tensor& b,
                                              DType compute) const override {
    return std::make_unique<CountingKernel>(inner_->make(path, w, b, compute));
  }
  bool reads_parts() const override { return inner_->reads_parts(); }
  std::unique_ptr<kernels::LinearKernel> make_fused(const std::string& path, const std::vector<std::string>& members,
                                                    const Tensor& w, const Tensor& b, DType compute) const override {
    return std::make_unique<CountingKernel>(inner_->make_fused(path, members, w, b, compute));
  }
  std::unique_ptr<kernels::LinearKernel> make_from_parts(const std::string& path, std::map<std::string, Tensor> parts,
                                                         int64_t in, int64_t out, const Tensor& bias,
                                                         DType compute) const override {
    return std::make_unique<CountingKernel>(inner_->make_from_parts(path, std::move(parts), in, out, bias, compute));
  }

 private:
  std::shared_ptr<const nn::LinearFactory> inner_;
};

Tensor randn(const Shape& shape, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, stddev);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
  return t;
}

int64_t default_text_len(const std::string& cls) {
  if (cls == "PixArtTransformer2DModel") return 300;
  if (cls == "SD3Transformer2DModel") return 77 + 256;  // CLIP 77 + T5 256
  if (cls == "FluxTransformer2DModel") return 512;
  return 256;  // AuraFlow
}

// What the family's pipeline feeds its transformer for one denoising step.
models::DiTInputs make_inputs(const std::string& cls, const io::JsonConfig& c, int64_t batch, int64_t lh, int64_t lw,
                              int64_t text_len, uint64_t seed) {
  models::DiTInputs in;
  in.timestep.assign(static_cast<size_t>(batch), cls == "PixArtTransformer2DModel" ? 500.0f : 0.5f);
  if (cls == "PixArtTransformer2DModel") {
    in.latents = randn({batch, c.get_or<int64_t>("in_channels", 4), lh, lw}, seed);
    in.encoder_hidden_states = randn({batch, text_len, c.get_or<int64_t>("caption_channels", 4096)}, seed + 1, 0.2f);
    in.encoder_attention_mask = Tensor::full({batch, text_len}, 1.0f);  // the pipeline always passes one
  } else if (cls == "SD3Transformer2DModel") {
    in.latents = randn({batch, c.get_or<int64_t>("in_channels", 16), lh, lw}, seed);
    in.encoder_hidden_states = randn({batch, text_len, c.get_or<int64_t>("joint_attention_dim", 4096)}, seed + 1, 0.2f);
    in.pooled_projections = randn({batch, c.get_or<int64_t>("pooled_projection_dim", 2048)}, seed + 2);
  } else if (cls == "FluxTransformer2DModel") {
    const int64_t hh = lh / 2, hw = lw / 2;
    in.latents = randn({batch, hh * hw, c.get_or<int64_t>("in_channels", 64)}, seed);
    in.encoder_hidden_states = randn({batch, text_len, c.get_or<int64_t>("joint_attention_dim", 4096)}, seed + 1, 0.2f);
    in.pooled_projections = randn({batch, c.get_or<int64_t>("pooled_projection_dim", 768)}, seed + 2);
    if (c.get_or<bool>("guidance_embeds", false)) in.guidance.assign(static_cast<size_t>(batch), 3.5f);
    in.txt_ids = Tensor::zeros({text_len, 3}, DType::F32);
    in.img_ids = Tensor::zeros({hh * hw, 3}, DType::F32);  // (0, row, col), as FluxPipeline
    for (int64_t r = 0; r < hh; ++r)
      for (int64_t col = 0; col < hw; ++col) {
        in.img_ids.data<float>()[(r * hw + col) * 3 + 1] = static_cast<float>(r);
        in.img_ids.data<float>()[(r * hw + col) * 3 + 2] = static_cast<float>(col);
      }
  } else {
    in.latents = randn({batch, c.get_or<int64_t>("in_channels", 4), lh, lw}, seed);
    in.encoder_hidden_states = randn({batch, text_len, c.get_or<int64_t>("joint_attention_dim", 4096)}, seed + 1, 0.2f);
  }
  return in;
}

// Best-of-5 rate of one large GEMM (M=2048, K=N=3072) of the kind the Linears use: this machine's
// practical peak, measured in the same process and conditions as the forward.
double measure_gemm_peak(const std::string& kind) {
  const int64_t m = 2048, k = 3072, n = 3072;
  const Tensor x = randn({m, k}, 11);
  const Tensor w = randn({n, k}, 12, 0.02f);
  std::unique_ptr<kernels::LinearKernel> lin;
  if (kind == "int8") {
    Tensor q = Tensor::empty({n, k}, DType::I8);
    Tensor s = Tensor::empty({n}, DType::F32);
    for (int64_t i = 0; i < n * k; ++i) q.data<int8_t>()[i] = static_cast<int8_t>((i * 7) % 255 - 127);
    for (int64_t i = 0; i < n; ++i) s.data<float>()[i] = 1e-3f;
    lin = std::make_unique<kernels::Int8Linear>(q, s, Tensor());
  } else {
    lin = kernels::make_float_linear(w, Tensor(), kind == "f32" ? DType::F32 : DType::BF16);
  }
  Tensor y = Tensor::empty({m, n}, DType::F32);
  lin->forward_into(x, y);  // primitive creation, first touch
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const double t0 = wall_now();
    lin->forward_into(x, y);
    best = std::min(best, wall_now() - t0);
  }
  return 2.0 * m * k * n / best * 1e-9;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

double StepBenchResult::median() const {
  std::vector<double> s = seconds;
  std::sort(s.begin(), s.end());
  return s.empty() ? 0.0 : s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
}
double StepBenchResult::min() const { return seconds.empty() ? 0.0 : *std::min_element(seconds.begin(), seconds.end()); }

namespace {

// A built model with its inputs, ready for timed forwards.
struct PreparedStep {
  StepBenchResult r;
  std::unique_ptr<models::DiffusionTransformer> model;
  models::DiTInputs in;
};

PreparedStep prepare_step(const StepBenchOptions& opt) {
  QDIT_CHECK(opt.arch.empty() != opt.model_dir.empty(), "[bench-step] give exactly one of an arch or a model folder");
  QDIT_CHECK(opt.batch > 0 && opt.width > 0 && opt.height > 0 && opt.repeat > 0 && opt.warmup >= 0,
             "[bench-step] batch, width, height and repeat must be positive");
  QDIT_CHECK(opt.compute == DType::F32 || opt.compute == DType::BF16, "[bench-step] compute dtype must be f32 or bf16");
  if (opt.threads > 0) set_num_threads(opt.threads);
  PreparedStep prep;
  StepBenchResult& r = prep.r;
  r.threads = num_threads();

  // ---- The transformer's config and weights.
  nlohmann::json config;
  std::shared_ptr<const io::WeightSource> weights;
  std::vector<WeightSpec> specs;
  std::optional<io::ModelFolder> folder;
  if (!opt.arch.empty()) {
    const PipelineSpec plan = make_model_detail::plan_components(opt.arch, opt.tiny, DType::BF16);
    const ComponentSpec* t = plan.find("transformer");
    QDIT_CHECK(t, "[bench-step] arch ", opt.arch, " has no transformer component");
    config = t->config;
    r.class_name = t->class_name;
    r.description = opt.arch + (opt.tiny ? " (tiny)" : "");
  } else {
    std::string dir = opt.model_dir;
    if (io::ModelFolder::open(dir).class_name().empty() || !io::ModelFolder::open(dir).has_weights())
      dir += "/transformer";
    folder = io::ModelFolder::open(dir);
    config = folder->config().raw();
    r.class_name = folder->class_name();
    r.description = dir;
  }
  const DepthKeys dk = dit_depth_keys(r.class_name);
  for (const std::string& k : dk.keys) r.full_layers.push_back(config.value(k, int64_t{0}));
  r.layers = r.full_layers;
  QDIT_CHECK(opt.layers.size() <= dk.keys.size(), "[bench-step] ", r.class_name, " has ", dk.keys.size(),
             " depth setting(s), got ", opt.layers.size());
  for (size_t i = 0; i < opt.layers.size(); ++i) {
    QDIT_CHECK(opt.layers[i] >= 0 && opt.layers[i] <= r.full_layers[i], "[bench-step] depth ", opt.layers[i], " for ",
               dk.keys[i], " outside [0, ", r.full_layers[i], "]");
    r.layers[i] = opt.layers[i];
  }
  const nlohmann::json full_config = config;
  for (size_t i = 0; i < dk.keys.size(); ++i) config[dk.keys[i]] = r.layers[i];
  const io::JsonConfig cfg = io::JsonConfig::from_json(config, r.description + " transformer config");
  const io::JsonConfig full_cfg = io::JsonConfig::from_json(full_config, r.description + " transformer config");

  if (!opt.arch.empty()) {
    // Weights planned for the reduced config (SD3's last block differs), with make-model's values.
    specs = make_model_detail::plan_weights(r.class_name, config);
    for (const WeightSpec& w : specs)
      if (!w.buffer) r.parameters += w.numel();
    weights = std::make_shared<GeneratedWeights>(specs, opt.seed, DType::BF16, opt.arch + " transformer (generated)");
  } else {
    std::vector<std::string> keep;
    for (const std::string& n : folder->weights()->names())
      if (!beyond_depth(n, dk, r.layers)) keep.push_back(n);
    for (const std::string& n : keep) r.parameters += folder->weights()->find(n)->numel();
    weights = std::make_shared<DepthFilteredWeights>(folder->weights(), keep);
  }

  // ---- Build with the requested dtype / quantization, every Linear counted.
  nn::ModuleContext base;
  base.compute = opt.compute;
  base.fuse_qkv = opt.fuse_qkv;
  nn::ModuleContext ctx = nn::context_for_component(base, opt.quant, "transformer");
  ctx.linear_factory = std::make_shared<CountingFactory>(ctx.linear_factory);
  std::string quant_name;
  if (auto rule = opt.quant.for_component("transformer")) quant_name = quant::find_scheme(rule->scheme).name();
  r.peak_kind = opt.compute == DType::F32 ? "f32" : "bf16";
  if (!quant_name.empty() && quant::find_scheme(quant_name).activation() != quant::ActivationQuant::None)
    r.peak_kind = "int8";
  r.description += std::string(", ") + dtype_name(opt.compute) + (quant_name.empty() ? "" : " + " + quant_name) +
                   (opt.fuse_qkv ? ", fused q/k/v" : "");

  const double tb = wall_now();
  prep.model = models::create_model_as<models::DiffusionTransformer>(
      r.class_name, models::ModelSource{"transformer", &cfg, weights, ctx});
  r.build_seconds = wall_now() - tb;
  r.weight_bytes = prep.model->weight_bytes();
  weights.reset();

  // ---- Inputs and FLOPs.
  const int64_t vae_scale = 8;
  const int64_t lh = opt.height / vae_scale, lw = opt.width / vae_scale;
  const int64_t text_len = opt.text_len > 0 ? opt.text_len : default_text_len(r.class_name);
  prep.in = make_inputs(r.class_name, cfg, opt.batch, lh, lw, text_len, opt.seed + 100);
  r.flops = dit_step_flops(r.class_name, cfg, opt.batch, lh, lw, text_len);
  r.full_flops = dit_step_flops(r.class_name, full_cfg, opt.batch, lh, lw, text_len);
  const int64_t p = r.class_name == "FluxTransformer2DModel" ? 2 : cfg.get_or<int64_t>("patch_size", 2);
  r.image_tokens = (lh / p) * (lw / p);
  r.batch = opt.batch;
  r.text_tokens = text_len;

  return prep;
}

void time_forward(PreparedStep& p) {
  const size_t a0 = CpuAllocator::instance().system_allocations();
  const double c0 = cpu_now(), t0 = wall_now();
  Tensor out = p.model->forward(p.in);
  p.r.seconds.push_back(wall_now() - t0);
  p.r.cpu_seconds.push_back(cpu_now() - c0);
  p.r.system_allocations.push_back(CpuAllocator::instance().system_allocations() - a0);
}

// Frees the model; the per-op totals (when profiled) and the peak rates.
StepBenchResult finish_step(PreparedStep& p, const StepBenchOptions& opt, bool profiled) {
  StepBenchResult& r = p.r;
  if (profiled) {
    r.ops = profile::totals();
    for (profile::OpTotal& o : r.ops) {
      o.seconds /= opt.repeat;
      o.flops /= opt.repeat;
      o.calls /= opt.repeat;
      r.counted_flops += o.flops;
    }
    profile::reset();
  }
  p.model.reset();
  const double guide = r.peak_kind == "f32" ? 118.0 : r.peak_kind == "bf16" ? 236.0 : 472.0;
  r.guide_peak = guide * r.threads;
  if (opt.measure_peak) r.machine_peak = measure_gemm_peak(r.peak_kind);
  return std::move(r);
}

}  // namespace

StepBenchResult run_step_bench(const StepBenchOptions& opt) {
  PreparedStep p = prepare_step(opt);
  // Forwards reuse their buffers as the denoising loop does (RecyclingScope).
  RecyclingScope reuse_step_buffers;
  for (int i = 0; i < opt.warmup; ++i) p.model->forward(p.in);
  profile::reset();
  profile::set_enabled(true);
  for (int i = 0; i < opt.repeat; ++i) time_forward(p);
  profile::set_enabled(false);
  return finish_step(p, opt, true);
}

std::pair<StepBenchResult, StepBenchResult> run_step_bench_versus(const StepBenchOptions& a,
                                                                  const StepBenchOptions& b) {
  QDIT_CHECK(a.repeat == b.repeat && a.warmup == b.warmup, "[bench-step] both sides of --versus need the same repeat");
  PreparedStep pa = prepare_step(a), pb = prepare_step(b);
  RecyclingScope reuse_step_buffers;
  for (int i = 0; i < a.warmup; ++i) {
    pa.model->forward(pa.in);
    pb.model->forward(pb.in);
  }
  for (int i = 0; i < a.repeat; ++i) {  // interleaved: both see the same machine, seconds apart
    time_forward(pa);
    time_forward(pb);
  }
  StepBenchResult ra = finish_step(pa, a, false);
  return {std::move(ra), finish_step(pb, b, false)};
}

std::string format_versus(const StepBenchResult& a, const StepBenchResult& b) {
  std::vector<double> ratios;
  for (size_t i = 0; i < a.seconds.size() && i < b.seconds.size(); ++i) ratios.push_back(b.seconds[i] / a.seconds[i]);
  std::sort(ratios.begin(), ratios.end());
  std::ostringstream os;
  os << "versus: " << fmt("%.3f", b.median()) << " s / " << fmt("%.3f", a.median()) << " s (medians) = "
     << fmt("%.2f", b.median() / a.median()) << "x; per back-to-back pair: median "
     << fmt("%.2f", ratios.empty() ? 0.0 : ratios[ratios.size() / 2]) << "x, range "
     << fmt("%.2f", ratios.empty() ? 0.0 : ratios.front()) << "-" << fmt("%.2f", ratios.empty() ? 0.0 : ratios.back())
     << "x over " << ratios.size() << " pairs\n";
  return os.str();
}

namespace {
// "19+38": blocks per depth setting.
std::string layers(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += '+';
    s += std::to_string(v[i]);
  }
  return s;
}
}  // namespace

std::string format_step_bench(const StepBenchResult& r, bool with_ops) {
  std::ostringstream os;
  const bool reduced = r.layers != r.full_layers;
  os << r.class_name << " (" << r.description << "), blocks " << layers(r.layers)
     << (reduced ? " of " + layers(r.full_layers) : std::string()) << ", " << fmt("%.3f", r.parameters * 1e-9)
     << " B parameters, " << fmt("%.2f", r.weight_bytes / 1e9) << " GB resident, built in "
     << fmt("%.1f", r.build_seconds) << " s\n";
  os << "  input: batch " << r.batch << ", " << r.image_tokens << " image tokens + " << r.text_tokens
     << " text tokens, " << r.threads << " thread(s)\n";
  const double tf = r.flops.total();
  os << "  FLOPs per forward: " << fmt("%.4f", tf * 1e-12) << " TFLOP (linear " << fmt("%.4f", r.flops.linear * 1e-12)
     << ", attention " << fmt("%.4f", r.flops.attention * 1e-12) << ", patch conv " << fmt("%.5f", r.flops.patch * 1e-12)
     << ")";
  if (r.counted_flops > 0) os << "; counted " << fmt("%.4f", r.counted_flops * 1e-12) << " TFLOP";
  os << "\n";
  const double med = r.median(), rate = tf / med * 1e-9;
  std::vector<double> cpu = r.cpu_seconds;
  std::sort(cpu.begin(), cpu.end());
  os << "  forward: median " << fmt("%.3f", med) << " s, min " << fmt("%.3f", r.min()) << " s over " << r.seconds.size()
     << " (CPU time median " << fmt("%.3f", cpu.empty() ? 0.0 : cpu[cpu.size() / 2]) << " s)\n";
  if (!r.system_allocations.empty()) {
    os << "  buffers taken from the system per timed forward:";
    for (size_t n : r.system_allocations) os << " " << n;
    os << " (the rest reused from the previous forward)\n";
  }
  os << "  achieved: " << fmt("%.1f", rate) << " GFLOP/s = " << fmt("%.0f", 100.0 * rate / r.guide_peak)
     << "% of the guide's " << r.peak_kind << " peak (" << fmt("%.0f", r.guide_peak) << ")";
  if (r.machine_peak > 0)
    os << ", " << fmt("%.0f", 100.0 * rate / r.machine_peak) << "% of this machine's " << r.peak_kind << " GEMM rate ("
       << fmt("%.0f", r.machine_peak) << " GFLOP/s, 2048x3072x3072)";
  os << "\n";
  if (reduced)
    os << "  full depth (" << layers(r.full_layers) << "): " << fmt("%.4f", r.full_flops.total() * 1e-12)
       << " TFLOP, about " << fmt("%.2f", med * r.full_flops.total() / tf) << " s at the same rate\n";
  if (with_ops) {
    double tracked = 0;
    for (const auto& o : r.ops) tracked += o.seconds;
    os << "  time per forward by op (outermost kernel calls; untracked = the rest: copies, conversions, glue):\n";
    char line[160];
    for (const auto& o : r.ops) {
      std::snprintf(line, sizeof line, "    %-20s %8.3f s %6.1f%% %7lld calls", o.name.c_str(), o.seconds,
                    100.0 * o.seconds / med, static_cast<long long>(o.calls));
      os << line;
      if (o.flops > 0) os << fmt("  %.1f GFLOP/s", o.flops / o.seconds * 1e-9);
      os << "\n";
    }
    std::snprintf(line, sizeof line, "    %-20s %8.3f s %6.1f%%\n", "(untracked)", med - tracked,
                  100.0 * (med - tracked) / med);
    os << line;
  }
  return os.str();
}

std::string step_bench_markdown_row(const StepBenchResult& r) {
  const double tf = r.flops.total(), med = r.median(), rate = tf / med * 1e-9;
  const std::string depth =
      r.layers != r.full_layers ? ", blocks " + layers(r.layers) + " of " + layers(r.full_layers) : std::string();
  std::ostringstream os;
  os << "| " << r.description << depth << " | " << r.threads << " | " << fmt("%.3f", tf * 1e-12) << " | " << fmt("%.3f", med)
     << " | " << fmt("%.0f", rate) << " | " << fmt("%.0f%%", 100.0 * rate / r.guide_peak) << " | "
     << (r.machine_peak > 0 ? fmt("%.0f%%", 100.0 * rate / r.machine_peak) + " of " + fmt("%.0f", r.machine_peak)
                            : std::string("-"))
     << " |";
  return os.str();
}

}  // namespace qdit::api
