// Int8Linear: dynamic per-token int8 activations x pre-packed s8 weights through oneDNN's int8
// matmul. The per-channel weight scale is oneDNN's output scale; the per-token activation scale,
// the bias, the activation and the residual add are post-ops, so y is written once.
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
#include "qdit/kernels/cpu/dnnl_context.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

namespace {

struct Key {
  int64_t m;
  Activation act;
  bool accumulate;
  bool operator<(const Key& o) const { return std::tie(m, act, accumulate) < std::tie(o.m, o.act, o.accumulate); }
};

}  // namespace

void quantize_rows_s8(const float* x, int64_t m, int64_t k, float divisor, int8_t* q, float* scales) {
  const qk::Kernels& kern = qk::get();
  parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) kern.act_quant_s8(x + r * k, k, divisor, q + r * k, scales + r);
  });
}

// The problem is posed as a batch of one, [1, M, K] x [1, K, N] -> [1, M, N]: oneDNN's brgemm int8
// matmul (AMX / VNNI) takes the per-token scale as a {1, M, 1} binary post-op in 3-D, while the
// same scale as {M, 1} in 2-D sends it to the reference kernel (seconds per call). The weight
// scales are constant output scales (runtime ones also push brgemm out). Where the CPU's oneDNN
// still has no fused kernel, the GEMM only applies the two scales and a separate pass adds the
// bias, the activation and the residual.
struct Int8Linear::Impl {
  memory::desc packed_md;
  memory packed;
  std::vector<float> w_scale;
  Tensor bias;  // f32 [N] or undefined
  float divisor = 127.5f;
  bool fused = true;
  mutable std::mutex mu;
  struct Prim {
    dnnl::matmul mm;
    bool fused;  // bias, activation and accumulate are inside the primitive
  };
  mutable std::map<Key, Prim> prims;

  dnnl::matmul::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, const memory::desc& wmd, Activation act,
                                       bool accumulate, bool full_epilogue) const {
    memory::desc src({1, m, k}, dt::s8, tag::abc), dst({1, m, n}, dt::f32, tag::abc);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 2, w_scale);
    dnnl::post_ops po;
    po.append_binary(dnnl::algorithm::binary_mul, memory::desc({1, m, 1}, dt::f32, tag::abc));
    if (full_epilogue) {
      if (bias.defined()) po.append_binary(dnnl::algorithm::binary_add, memory::desc({1, 1, n}, dt::f32, tag::abc));
      po = cpu::make_post_ops(act, accumulate, po);
    }
    attr.set_post_ops(po);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, dst), attr, dnnl_engine());
  }

  Prim prim(int64_t m, int64_t k, int64_t n, Activation act, bool accumulate) const {
    std::lock_guard<std::mutex> lock(mu);
    Key key{m, act, accumulate};
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    const bool trivial = !bias.defined() && act == Activation::None && !accumulate;
    auto pd = make_pd(m, k, n, packed_md, act, accumulate, fused || trivial);
    bool use_fused = fused || trivial;
    if (use_fused && !trivial && std::string(pd.impl_info_str()).find("ref") != std::string::npos) {
      pd = make_pd(m, k, n, packed_md, act, accumulate, false);
      use_fused = false;
    }
    return prims.emplace(key, Prim{dnnl::matmul(pd), use_fused}).first->second;
  }
};

Int8Linear::Int8Linear(const Tensor& qweight, const Tensor& w_scale, const Tensor& bias, float act_divisor,
                       bool fused_epilogue)
    : impl_(std::make_unique<Impl>()) {
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
  impl_->fused = fused_epilogue;
  Tensor w = qweight.contiguous();
  memory user({{1, k_, n_}, dt::s8, tag::acb}, dnnl_engine(), w.raw_data());
  auto pd = impl_->make_pd(1024, k_, n_, memory::desc({1, k_, n_}, dt::s8, tag::any), Activation::None, false, true);
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
  return impl_->packed_md.get_size() + impl_->w_scale.size() * sizeof(float) +
         (impl_->bias.defined() ? impl_->bias.nbytes() : 0);
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

  const Impl::Prim prim = impl_->prim(m, k_, n_, opt.activation, opt.accumulate);
  // Unfused: the GEMM writes (acc * w_scale) * x_scale to a scratch (or to y when nothing follows
  // that needs y's old value), then the epilogue runs here.
  const bool need_tmp = !prim.fused && opt.accumulate;
  Tensor tmp = need_tmp ? Tensor::empty({m, n_}, DType::F32, MemTag::Workspace) : y;
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory({{1, m, k_}, dt::s8, tag::abc}, dnnl_engine(), q.raw_data())},
      {DNNL_ARG_WEIGHTS, impl_->packed},
      {DNNL_ARG_DST, memory({{1, m, n_}, dt::f32, tag::abc}, dnnl_engine(), tmp.raw_data())},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
       memory({{1, m, 1}, dt::f32, tag::abc}, dnnl_engine(), xs.raw_data())}};
  if (prim.fused && impl_->bias.defined())
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                 memory({{1, 1, n_}, dt::f32, tag::abc}, dnnl_engine(), impl_->bias.raw_data()));
  prim.mm.execute(dnnl_stream(), args);
  dnnl_stream().wait();
  if (prim.fused) return;
  const float* b = impl_->bias.defined() ? impl_->bias.data<float>() : nullptr;
  const float* t = tmp.data<float>();
  float* out = y.data<float>();
  const int64_t n = n_;
  parallel_for(m, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float v = apply_activation(opt.activation, t[i * n + j] + (b ? b[j] : 0.0f));
        out[i * n + j] = opt.accumulate ? out[i * n + j] + v : v;
      }
  });
}

}  // namespace qdit::kernels
