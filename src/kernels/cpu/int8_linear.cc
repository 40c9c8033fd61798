// Int8Linear: dynamic per-token int8 activations x pre-packed s8 weights through oneDNN's int8
// matmul. The per-channel weight scale is oneDNN's output scale; the per-token activation scale,
// the bias, the activation and the residual add are post-ops, so y is written once.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/dnnl_context.h"
#include "qdit/kernels/gemm.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

namespace {

constexpr float kF32Eps = 1.1920928955078125e-07f;

void quantize_row(const float* x, int64_t k, float divisor, int8_t* q, float* scale) {
  __m256 vmax = _mm256_setzero_ps();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  float lanes[8];
  _mm256_storeu_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = std::max(amax, v);
  for (; j < k; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float s = std::max(amax / divisor, kF32Eps);
  const float inv = 1.0f / s;
  *scale = s;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  j = 0;
  for (; j + 16 <= k; j += 16) {
    // cvtps rounds half to even (default MXCSR), like torch.round.
    __m256 a = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vinv), lo), hi);
    __m256 b = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), vinv), lo), hi);
    __m256i ia = _mm256_cvtps_epi32(a), ib = _mm256_cvtps_epi32(b);
    __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(ia, ib), 0xD8);  // 16 x i16 in order
    __m128i w8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + j), w8);
  }
  for (; j < k; ++j) q[j] = static_cast<int8_t>(std::clamp(std::nearbyint(x[j] * inv), -128.0f, 127.0f));
}

struct Key {
  int64_t m;
  Activation act;
  bool accumulate;
  bool operator<(const Key& o) const { return std::tie(m, act, accumulate) < std::tie(o.m, o.act, o.accumulate); }
};

}  // namespace

void quantize_rows_s8(const float* x, int64_t m, int64_t k, float divisor, int8_t* q, float* scales) {
  parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row(x + r * k, k, divisor, q + r * k, scales + r);
  });
}

struct Int8Linear::Impl {
  memory::desc packed_md;
  memory packed;
  Tensor w_scale, bias;  // f32 [N], f32 [1, N]
  float divisor = 127.5f;
  mutable std::mutex mu;
  mutable std::map<Key, dnnl::matmul> prims;

  dnnl::matmul::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, const memory::desc& wmd, Activation act,
                                       bool accumulate) const {
    memory::desc src({m, k}, dt::s8, tag::ab), dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
    dnnl::post_ops po;
    po.append_binary(dnnl::algorithm::binary_mul, memory::desc({m, 1}, dt::f32, tag::ab));
    if (bias.defined()) po.append_binary(dnnl::algorithm::binary_add, memory::desc({1, n}, dt::f32, tag::ab));
    attr.set_post_ops(cpu::make_post_ops(act, accumulate, po));
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, dst), attr, dnnl_engine());
  }
};

Int8Linear::Int8Linear(const Tensor& qweight, const Tensor& w_scale, const Tensor& bias, float act_divisor)
    : impl_(std::make_unique<Impl>()) {
  QDIT_CHECK(qweight.dim() == 2 && qweight.dtype() == DType::I8, "[int8 linear] weight must be s8 [N, K], got ",
             qweight.desc());
  n_ = qweight.size(0);
  k_ = qweight.size(1);
  QDIT_CHECK(w_scale.numel() == n_, "[int8 linear] weight scale has ", w_scale.numel(), " elements, expected ", n_);
  impl_->w_scale = w_scale.contiguous().to(DType::F32).reshape({n_}).clone(MemTag::Weights);
  if (bias.defined()) {
    QDIT_CHECK(bias.numel() == n_, "[int8 linear] bias has ", bias.numel(), " elements, expected ", n_);
    impl_->bias = bias.contiguous().to(DType::F32).reshape({1, n_}).clone(MemTag::Weights);
  }
  impl_->divisor = act_divisor;
  Tensor w = qweight.contiguous();
  memory user({{k_, n_}, dt::s8, tag::ba}, dnnl_engine(), w.raw_data());
  auto pd = impl_->make_pd(1024, k_, n_, memory::desc({k_, n_}, dt::s8, tag::any), Activation::None, false);
  impl_->packed_md = pd.weights_desc();
  void* buf = CpuAllocator::instance().allocate(impl_->packed_md.get_size(), MemTag::Weights);
  impl_->packed = memory(impl_->packed_md, dnnl_engine(), buf);
  dnnl::reorder(user, impl_->packed).execute(dnnl_stream(), user, impl_->packed);
  dnnl_stream().wait();
}

Int8Linear::~Int8Linear() {
  if (impl_)
    CpuAllocator::instance().deallocate(impl_->packed.get_data_handle(), impl_->packed_md.get_size(), MemTag::Weights);
}

size_t Int8Linear::weight_bytes() const {
  return impl_->packed_md.get_size() + impl_->w_scale.nbytes() + (impl_->bias.defined() ? impl_->bias.nbytes() : 0);
}

void Int8Linear::forward_into(const Tensor& x_in, Tensor& y, const GemmOptions& opt) const {
  QDIT_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k_, "[int8 linear] input ", x_in.desc(), " does not end in in_features=",
             k_);
  const int64_t m = x_in.numel() / k_;
  QDIT_CHECK(y.dtype() == DType::F32 && y.is_contiguous() && y.numel() == m * n_, "[int8 linear] output ", y.desc(),
             " must be contiguous f32 with ", m, "x", n_, " elements");
  if (m == 0) return;
  Tensor x = x_in.contiguous().to(DType::F32);
  Tensor q = Tensor::empty({m, k_}, DType::I8, MemTag::Workspace);
  Tensor xs = Tensor::empty({m, 1}, DType::F32, MemTag::Workspace);
  quantize_rows_s8(x.data<float>(), m, k_, impl_->divisor, q.data<int8_t>(), xs.data<float>());

  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Key key{m, opt.activation, opt.accumulate};
    auto it = impl_->prims.find(key);
    if (it == impl_->prims.end())
      it = impl_->prims.emplace(key, dnnl::matmul(impl_->make_pd(m, k_, n_, impl_->packed_md, opt.activation,
                                                                  opt.accumulate)))
               .first;
    prim = it->second;
  }
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory({{m, k_}, dt::s8, tag::ab}, dnnl_engine(), q.raw_data())},
      {DNNL_ARG_WEIGHTS, impl_->packed},
      {DNNL_ARG_DST, memory({{m, n_}, dt::f32, tag::ab}, dnnl_engine(), y.raw_data())},
      {DNNL_ARG_ATTR_OUTPUT_SCALES, memory({{n_}, dt::f32, tag::a}, dnnl_engine(), impl_->w_scale.raw_data())},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
       memory({{m, 1}, dt::f32, tag::ab}, dnnl_engine(), xs.raw_data())}};
  if (impl_->bias.defined())
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                 memory({{1, n_}, dt::f32, tag::ab}, dnnl_engine(), impl_->bias.raw_data()));
  prim.execute(dnnl_stream(), args);
  dnnl_stream().wait();
}

}  // namespace qdit::kernels
