// Int8Linear: dynamic per-token int8 activations x pre-packed s8 weights, then the per-token scale,
// bias, activation and residual add: on AMX-INT8 CPUs all in AmxInt8Gemm (amx_int8_gemm.h), elsewhere
// through oneDNN's int8 matmul and a blocked epilogue.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/amx_int8_gemm.h"
#include "qdit/kernels/cpu/convert.h"
#include "qdit/kernels/cpu/thread_buffer.h"
#include "qdit/kernels/cpu/dnnl_context.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

void quantize_rows_s8(const float* x, int64_t m, int64_t k, float divisor, int8_t* q, float* scales, int64_t ldq) {
  if (ldq < 0) ldq = k;
  const qk::Kernels& kern = qk::get();
  parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      kern.act_quant_s8(x + r * k, false, k, divisor, q + r * ldq, scales + r);
      if (ldq > k) std::memset(q + r * ldq + k, 0, static_cast<size_t>(ldq - k));
    }
  });
}

QuantizedRows make_quantized_rows(int64_t m, int64_t k, const RowQuantSpec& spec) {
  QDIT_CHECK(m >= 0 && k >= 0 && spec.lda >= k && spec.row_align >= 1 &&
                 (!spec.amx_tiles || (spec.lda % 64 == 0 && spec.row_align % 16 == 0)),
             "[quantized rows] bad layout: ", m, " rows of ", k, " in rows of ", spec.lda, " aligned to ",
             spec.row_align, spec.amx_tiles ? " as AMX tiles" : "");
  QuantizedRows r;
  r.m = m;
  r.k = k;
  r.spec = spec;
  const int64_t rows = spec.padded_rows(m);
  r.q = Tensor::empty({rows, spec.lda}, DType::I8, MemTag::Workspace);
  r.scales = Tensor::empty({m}, DType::F32, MemTag::Workspace);
  int8_t* q = r.q.data<int8_t>();
  for (int64_t i = m; i < rows; ++i)
    for (int64_t c = 0; c < spec.lda; c += 64)
      std::memset(q + spec.offset(i, c), 0, static_cast<size_t>(std::min<int64_t>(64, spec.lda - c)));
  return r;
}

namespace {

void quantize_any_row(const void* x, bool bf16, int64_t r, QuantizedRows& out) {
  const qk::Kernels& kern = qk::get();
  const RowQuantSpec& spec = out.spec;
  const int64_t k = out.k;
  int8_t* q = out.q.data<int8_t>();
  if (!spec.amx_tiles) {
    kern.act_quant_s8(x, bf16, k, spec.divisor, q + r * spec.lda, out.scales.data<float>() + r);
    if (spec.lda > k) std::memset(q + r * spec.lda + k, 0, static_cast<size_t>(spec.lda - k));
    return;
  }
  // Quantized whole in L1, then scattered 64 bytes at a time into its tiles.
  static thread_local cpu::ThreadBuffer row_buffer;
  int8_t* row = static_cast<int8_t*>(row_buffer.get(static_cast<size_t>(spec.lda)));
  kern.act_quant_s8(x, bf16, k, spec.divisor, row, out.scales.data<float>() + r);
  std::memset(row + k, 0, static_cast<size_t>(spec.lda - k));
  for (int64_t c = 0; c < spec.lda; c += 64) std::memcpy(q + spec.offset(r, c), row + c, 64);
}

}  // namespace

void quantize_row(const float* x, int64_t r, QuantizedRows& out) { quantize_any_row(x, false, r, out); }

void quantize_rows(const Tensor& x_in, QuantizedRows& out) {
  const bool bf16 = x_in.dtype() == DType::BF16;  // quantized as is; other dtypes widened to f32
  const Tensor x = bf16 ? x_in.contiguous() : x_in.contiguous().to(DType::F32);
  const char* xp = static_cast<const char*>(x.raw_data());
  const int64_t row_bytes = out.k * (bf16 ? 2 : 4);
  parallel_for(out.m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_any_row(xp + r * row_bytes, bf16, r, out);
  });
}

// oneDNN's brgemm int8 matmul (AMX / VNNI) runs fastest on weights pre-packed in its blocked
// layout, but in oneDNN 2.6 it takes the per-token scale neither as a {M, 1} binary post-op (that
// sends it to the reference kernel: seconds per call) nor, with blocked weights, in a batched
// 3-D form; runtime output scales also push it out. So the GEMM applies only the constant
// per-channel weight scales, one block of rows at a time into a scratch that stays in L2, and the
// epilogue runs on that block right after: * x_scale[m], + bias, the activation (oneDNN's eltwise,
// the same code its post-ops run), + y. The order of operations is that of the post-op chain.
struct Int8Linear::Impl {
  std::unique_ptr<cpu::AmxInt8Gemm> amx;  // AMX machines: qdit's own tile GEMM instead of oneDNN's
  memory::desc packed_md;
  memory packed;
  std::vector<float> w_scale;
  Tensor bias;  // f32 [N] or undefined
  float divisor = 127.5f;
  bool bf16_activations = false;
  int64_t chunk = 0;  // rows per GEMM call
  mutable std::mutex mu;
  mutable std::map<int64_t, dnnl::matmul> prims;  // by rows
  mutable std::map<std::pair<int64_t, Activation>, dnnl::eltwise_forward> acts;

  dnnl::matmul::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, const memory::desc& wmd) const {
    memory::desc src({m, k}, dt::s8, tag::ab), dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, w_scale);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, dst), attr, dnnl_engine());
  }

  dnnl::matmul prim(int64_t m, int64_t k, int64_t n) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prims.find(m);
    if (it == prims.end()) it = prims.emplace(m, dnnl::matmul(make_pd(m, k, n, packed_md))).first;
    return it->second;
  }

  dnnl::eltwise_forward act(int64_t m, int64_t n, Activation a) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = acts.find({m, a});
    if (it == acts.end()) it = acts.emplace(std::make_pair(m, a), cpu::make_activation_eltwise(m, n, a)).first;
    return it->second;
  }
};

Int8Linear::Int8Linear(const Tensor& qweight, const Tensor& w_scale, const Tensor& bias, float act_divisor,
                       bool bf16_activations)
    : impl_(std::make_unique<Impl>()) {
  impl_->bf16_activations = bf16_activations;
  QDIT_CHECK(qweight.dim() == 2 && qweight.dtype() == DType::I8, "[int8 linear] weight must be s8 [N, K], got ",
             qweight.desc());
  n_ = qweight.size(0);
  k_ = qweight.size(1);
  QDIT_CHECK(w_scale.numel() == n_, "[int8 linear] weight scale has ", w_scale.numel(), " elements, expected ", n_);
  impl_->w_scale = w_scale.contiguous().to(DType::F32).reshape({n_}).to_vector();
  if (bias.defined()) {
    QDIT_CHECK(bias.numel() == n_, "[int8 linear] bias has ", bias.numel(), " elements, expected ", n_);
    impl_->bias = bias.contiguous().to(DType::F32).reshape({n_}).clone(MemTag::Weights);
  }
  impl_->divisor = act_divisor;
  // About 1 MiB of f32 scratch per block of rows (L2-resident), at least 128 rows for the GEMM.
  impl_->chunk = std::max<int64_t>(128, (int64_t{1} << 18) / std::max<int64_t>(n_, 1) / 16 * 16);
  Tensor w = qweight.contiguous();
  if (cpu::AmxInt8Gemm::available()) {
    impl_->amx = std::make_unique<cpu::AmxInt8Gemm>(w.data<int8_t>(), n_, k_);
    return;
  }
  memory user({{k_, n_}, dt::s8, tag::ba}, dnnl_engine(), w.raw_data());
  auto pd = impl_->make_pd(1024, k_, n_, memory::desc({k_, n_}, dt::s8, tag::any));
  impl_->packed_md = pd.weights_desc();
  void* buf = CpuAllocator::instance().allocate(impl_->packed_md.get_size(), MemTag::Weights);
  impl_->packed = memory(impl_->packed_md, dnnl_engine(), buf);
  dnnl::reorder(user, impl_->packed).execute(dnnl_stream(), user, impl_->packed);
  dnnl_stream().wait();
}

Int8Linear::~Int8Linear() {
  if (impl_ && !impl_->amx)
    CpuAllocator::instance().deallocate(impl_->packed.get_data_handle(), impl_->packed_md.get_size(), MemTag::Weights);
}

size_t Int8Linear::weight_bytes() const {
  return (impl_->amx ? impl_->amx->packed_bytes() : impl_->packed_md.get_size()) + impl_->w_scale.size() * sizeof(float) +
         (impl_->bias.defined() ? impl_->bias.nbytes() : 0);
}

bool Int8Linear::fuses_gate() const { return impl_->amx != nullptr; }
bool Int8Linear::rounds_input_to_bf16() const { return impl_->bf16_activations; }

void Int8Linear::forward_into(const Tensor& x_in, Tensor& y, const GemmOptions& opt) const {
  QDIT_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k_, "[int8 linear] input ", x_in.desc(), " does not end in in_features=",
             k_);
  const int64_t m = x_in.numel() / k_;
  const RowQuantSpec spec = *input_quantization();
  QuantizedRows q = make_quantized_rows(m, k_, spec);
  quantize_rows(x_in, q);
  forward_quantized(q, y, opt);
}

std::optional<RowQuantSpec> Int8Linear::input_quantization() const {
  RowQuantSpec spec;
  spec.divisor = impl_->divisor;
  // The AMX kernel reads rows padded to its k step, and whole 32-row blocks (padding rows zero).
  spec.lda = impl_->amx ? impl_->amx->lda() : k_;
  spec.row_align = impl_->amx ? cpu::AmxInt8Gemm::kRowAlign : 1;
  spec.amx_tiles = impl_->amx != nullptr;
  return spec;
}

void Int8Linear::forward_quantized(const QuantizedRows& x, Tensor& y, const GemmOptions& opt) const {
  const RowQuantSpec spec = *input_quantization();
  const int64_t m = x.m;
  const bool same_layout = x.spec.amx_tiles == spec.amx_tiles && x.spec.lda == spec.lda &&
                           x.spec.divisor == spec.divisor;
  QDIT_CHECK(x.k == k_ && same_layout && x.q.dtype() == DType::I8 && x.q.dim() == 2 && x.q.size(1) == spec.lda &&
                 x.q.size(0) == spec.padded_rows(m) && x.scales.numel() == m,
             "[int8 linear] quantized input ", x.q.desc(), " of ", m, "x", x.k, " does not match in_features=", k_,
             " in rows of ", spec.lda, " padded to ", spec.row_align, spec.amx_tiles ? " as AMX tiles" : "",
             " (divisor ", spec.divisor, ")");
  const bool bf16 = y.dtype() == DType::BF16;
  QDIT_CHECK((y.dtype() == DType::F32 || bf16) && y.is_contiguous() && y.numel() == m * n_, "[int8 linear] output ",
             y.desc(), " must be contiguous f32 or bf16 with ", m, "x", n_, " elements");
  QDIT_CHECK(!bf16 || (!opt.accumulate && !opt.gate), "[int8 linear] a bf16 output takes no accumulate or gate");
  QDIT_CHECK(!opt.gate || impl_->amx, "[int8 linear] a gate is fused only by the AMX kernel (fuses_gate() is false here)");
  if (m == 0) return;
  if (impl_->amx) {
    amx_forward(x.q.data<int8_t>(), m, x.scales.data<float>(), y, opt);
  } else if (bf16) {  // the f32 result, rounded
    Tensor f = Tensor::empty({m, n_}, DType::F32, MemTag::Workspace);
    onednn_forward(x.q.data<int8_t>(), m, x.scales.data<float>(), f.data<float>(), opt);
    cpu::f32_to_bf16_buffer(f.data<float>(), y.data<uint16_t>(), m * n_);
  } else {
    onednn_forward(x.q.data<int8_t>(), m, x.scales.data<float>(), y.data<float>(), opt);
  }
}

// Outputs from this size on are written around the caches (twice the L2 of one core).
constexpr int64_t kStreamBytes = int64_t{4} << 20;

void Int8Linear::amx_forward(const int8_t* q, int64_t m, const float* xs, Tensor& y, const GemmOptions& opt) const {
  cpu::AmxInt8Gemm::Epilogue e;
  e.bf16_out = y.dtype() == DType::BF16;
  e.bias = impl_->bias.defined() ? impl_->bias.data<float>() : nullptr;
  e.act = opt.activation;
  e.accumulate = opt.accumulate;
  e.stream = !opt.accumulate && static_cast<int64_t>(y.nbytes()) >= kStreamBytes;
  if (opt.gate) {  // [B, N] over x [B, ..., K]: batch item b owns m / B consecutive rows
    const Tensor& g = *opt.gate;
    QDIT_CHECK(opt.accumulate && g.dtype() == DType::F32 && g.dim() == 2 && g.size(1) == n_ && g.strides()[1] == 1 &&
                   g.size(0) >= 1 && m % g.size(0) == 0,
               "[int8 linear] gate ", g.desc(), " must be f32 [B, ", n_, "] (B dividing the ", m,
               " rows) with accumulate");
    e.gate = g.data<float>();
    e.gate_ld = g.strides()[0];
    e.gate_rows = m / g.size(0);
  }
  impl_->amx->run(q, m, xs, impl_->w_scale.data(), e, y.raw_data(), n_);
}

void Int8Linear::onednn_forward(const int8_t* q, int64_t m, const float* xs, float* y, const GemmOptions& opt) const {
  const qk::Kernels& kern = qk::get();
  const float* bias = impl_->bias.defined() ? impl_->bias.data<float>() : nullptr;
  // Equal blocks (a multiple of 16 rows) rather than full ones and a thin remainder.
  const int64_t blocks = (m + impl_->chunk - 1) / impl_->chunk;
  const int64_t chunk = std::min(m, ((m + blocks - 1) / blocks + 15) / 16 * 16);
  Tensor tmp = Tensor::empty({chunk, n_}, DType::F32, MemTag::Workspace);
  float* t = tmp.data<float>();
  for (int64_t m0 = 0; m0 < m; m0 += chunk) {
    const int64_t rows = std::min(chunk, m - m0);
    float* out = y + m0 * n_;
    const float* xsc = xs + m0;
    dnnl::matmul p = impl_->prim(rows, k_, n_);
    // oneDNN memory objects take non-const handles; the matmul only reads its source.
    int8_t* src = const_cast<int8_t*>(q) + m0 * k_;
    p.execute(dnnl_stream(), {{DNNL_ARG_SRC, memory({{rows, k_}, dt::s8, tag::ab}, dnnl_engine(), src)},
                              {DNNL_ARG_WEIGHTS, impl_->packed},
                              {DNNL_ARG_DST, memory({{rows, n_}, dt::f32, tag::ab}, dnnl_engine(), t)}});
    dnnl_stream().wait();
    if (opt.activation == Activation::None) {
      kern.epilogue_rows(t, rows, n_, xsc, bias, opt.accumulate, out);
      continue;
    }
    kern.epilogue_rows(t, rows, n_, xsc, bias, false, t);
    memory tm({{rows, n_}, dt::f32, tag::ab}, dnnl_engine(), t);
    impl_->act(rows, n_, opt.activation).execute(dnnl_stream(), {{DNNL_ARG_SRC, tm}, {DNNL_ARG_DST, tm}});
    dnnl_stream().wait();
    kern.epilogue_rows(t, rows, n_, nullptr, nullptr, opt.accumulate, out);
  }
}

}  // namespace qdit::kernels
