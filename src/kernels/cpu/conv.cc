// PackedConv2d on oneDNN convolution_forward. Activations stay NCHW f32 at the interface; the
// weights are reordered once into the layout of the primitive chosen for the first input size.
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/conv.h"
#include "qdit/kernels/cpu/convert.h"
#include "qdit/kernels/cpu/dnnl_context.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

struct PackedConv2d::Impl {
  Tensor weight_f32;  // kept until the first forward decides the packed layout
  Tensor bias_f32;
  bool has_bias = false;
  dt compute_dt = dt::f32;
  std::mutex mu;
  bool packed = false;
  memory::desc packed_md;
  memory packed_weights;
  Tensor packed_storage;
  struct Prim {
    dnnl::convolution_forward prim;
    memory::desc src_md;  // what the primitive wants (may be blocked)
    memory::desc dst_md;
  };
  std::map<std::pair<int64_t, std::pair<int64_t, int64_t>>, Prim> prims;  // (N, (H, W))
};

PackedConv2d::PackedConv2d(const Tensor& weight, const Tensor& bias, int64_t padding, DType compute)
    : impl_(std::make_unique<Impl>()), pad_(padding), compute_(compute) {
  QDIT_CHECK(weight.dim() == 4, "[conv2d] weight must be [O, I, kh, kw], got ", weight.desc());
  QDIT_CHECK(compute == DType::F32 || compute == DType::BF16, "[conv2d] compute must be f32 or bf16");
  o_ = weight.size(0);
  i_ = weight.size(1);
  kh_ = weight.size(2);
  kw_ = weight.size(3);
  impl_->weight_f32 = weight.contiguous().to(DType::F32).clone(MemTag::Weights);
  impl_->compute_dt = compute == DType::BF16 ? dt::bf16 : dt::f32;
  if (bias.defined()) {
    QDIT_CHECK(bias.numel() == o_, "[conv2d] bias has ", bias.numel(), " elements, expected ", o_);
    impl_->bias_f32 = bias.contiguous().to(DType::F32).clone(MemTag::Weights);
    impl_->has_bias = true;
  }
}

PackedConv2d::~PackedConv2d() = default;

Tensor PackedConv2d::forward(const Tensor& x_in) const {
  QDIT_CHECK(x_in.dim() == 4 && x_in.size(1) == i_, "[conv2d] input ", x_in.desc(), " must be [N, ", i_, ", H, W]");
  QDIT_CHECK(x_in.dtype() == DType::F32, "[conv2d] input must be f32, got ", x_in.desc());
  Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t oh = h + 2 * pad_ - kh_ + 1, ow = w + 2 * pad_ - kw_ + 1;
  QDIT_CHECK(oh > 0 && ow > 0, "[conv2d] input ", x.desc(), " too small for a ", kh_, "x", kw_, " kernel");
  const dt cdt = impl_->compute_dt;

  Impl::Prim p;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto key = std::make_pair(n, std::make_pair(h, w));
    auto it = impl_->prims.find(key);
    if (it == impl_->prims.end()) {
      memory::desc src_any({n, i_, h, w}, cdt, tag::any);
      memory::desc dst_any({n, o_, oh, ow}, dt::f32, tag::any);
      memory::desc wei_md = impl_->packed ? impl_->packed_md : memory::desc({o_, i_, kh_, kw_}, cdt, tag::any);
      memory::desc bias_md({o_}, dt::f32, tag::a);
      auto d = impl_->has_bias
                   ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                     dnnl::algorithm::convolution_direct, src_any, wei_md, bias_md,
                                                     dst_any, {1, 1}, {pad_, pad_}, {pad_, pad_})
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                     dnnl::algorithm::convolution_direct, src_any, wei_md, dst_any,
                                                     {1, 1}, {pad_, pad_}, {pad_, pad_});
      dnnl::convolution_forward::primitive_desc pd(d, dnnl_engine());
      if (!impl_->packed) {
        impl_->packed_md = pd.weights_desc();
        impl_->packed_storage = Tensor::empty({static_cast<int64_t>(impl_->packed_md.get_size())}, DType::U8,
                                              MemTag::Weights);
        impl_->packed_weights = memory(impl_->packed_md, dnnl_engine(), impl_->packed_storage.raw_data());
        memory user({{o_, i_, kh_, kw_}, dt::f32, tag::oihw}, dnnl_engine(), impl_->weight_f32.raw_data());
        dnnl::reorder(user, impl_->packed_weights).execute(dnnl_stream(), user, impl_->packed_weights);
        dnnl_stream().wait();
        impl_->weight_f32 = Tensor();  // the packed copy replaces it
        impl_->packed = true;
      }
      it = impl_->prims.emplace(key, Impl::Prim{dnnl::convolution_forward(pd), pd.src_desc(), pd.dst_desc()}).first;
    }
    p = it->second;
  }

  memory user_src({{n, i_, h, w}, dt::f32, tag::nchw}, dnnl_engine(), x.raw_data());
  Tensor y = Tensor::empty({n, o_, oh, ow}, DType::F32);
  memory user_dst({{n, o_, oh, ow}, dt::f32, tag::nchw}, dnnl_engine(), y.raw_data());
  memory src = user_src, dst = user_dst;
  Tensor src_buf, dst_buf;
  if (p.src_md != user_src.get_desc()) {
    src_buf = Tensor::empty({static_cast<int64_t>(p.src_md.get_size())}, DType::U8, MemTag::Workspace);
    src = memory(p.src_md, dnnl_engine(), src_buf.raw_data());
    dnnl::reorder(user_src, src).execute(dnnl_stream(), user_src, src);
  }
  if (p.dst_md != user_dst.get_desc()) {
    dst_buf = Tensor::empty({static_cast<int64_t>(p.dst_md.get_size())}, DType::U8, MemTag::Workspace);
    dst = memory(p.dst_md, dnnl_engine(), dst_buf.raw_data());
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, impl_->packed_weights}, {DNNL_ARG_DST, dst}};
  memory bias_mem;
  if (impl_->has_bias) {
    bias_mem = memory({{o_}, dt::f32, tag::a}, dnnl_engine(), impl_->bias_f32.raw_data());
    args.emplace(DNNL_ARG_BIAS, bias_mem);
  }
  p.prim.execute(dnnl_stream(), args);
  if (dst != user_dst) dnnl::reorder(dst, user_dst).execute(dnnl_stream(), dst, user_dst);
  dnnl_stream().wait();
  return y;
}

Tensor conv2d_reference(const Tensor& x_in, const Tensor& weight, const Tensor& bias, int64_t pad) {
  const int64_t n = x_in.size(0), ci = x_in.size(1), h = x_in.size(2), w = x_in.size(3);
  const int64_t co = weight.size(0), kh = weight.size(2), kw = weight.size(3);
  const int64_t oh = h + 2 * pad - kh + 1, ow = w + 2 * pad - kw + 1;
  std::vector<float> x = x_in.to_vector(), wt = weight.to_vector();
  std::vector<float> b = bias.defined() ? bias.to_vector() : std::vector<float>(co, 0.0f);
  Tensor y = Tensor::empty({n, co, oh, ow}, DType::F32);
  float* yp = y.data<float>();
  for (int64_t in = 0; in < n; ++in)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b[o];
          for (int64_t c = 0; c < ci; ++c)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy + ky - pad, ix = ox + kx - pad;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc += static_cast<double>(x[((in * ci + c) * h + iy) * w + ix]) *
                       wt[((o * ci + c) * kh + ky) * kw + kx];
              }
          yp[((in * co + o) * oh + oy) * ow + ox] = static_cast<float>(acc);
        }
  return y;
}

Tensor upsample_nearest2x(const Tensor& x_in) {
  QDIT_CHECK(x_in.dim() == 4 && x_in.dtype() == DType::F32, "[upsample] expects f32 [N, C, H, W], got ",
             x_in.desc());
  Tensor x = x_in.contiguous();
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  Tensor y = Tensor::empty({x.size(0), x.size(1), 2 * h, 2 * w}, DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(planes * h, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = xp + r * w;
      float* d0 = yp + r * 4 * w;  // output rows 2*row and 2*row+1 of the same plane
      for (int64_t j = 0; j < w; ++j) d0[2 * j] = d0[2 * j + 1] = src[j];
      std::memcpy(d0 + 2 * w, d0, 2 * w * sizeof(float));
    }
  });
  return y;
}

}  // namespace qdit::kernels
