// TiledLinear: GEMM over weights that are stored compactly and expanded on the fly (bf16 on CPUs
// without a bf16 GEMM; quantized formats via their decoders): f32 tiles of output rows, or, for the
// native bf16 GEMM, the whole weight decoded to bf16 for one GEMM.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/amx_q4_gemm.h"
#include "qdit/kernels/cpu/convert.h"
#include "qdit/kernels/cpu/dnnl_context.h"
#include "qdit/kernels/cpu/thread_buffer.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

namespace {

class Bf16RowDecoder : public WeightRowDecoder {
 public:
  explicit Bf16RowDecoder(const Tensor& w) : w_(w.contiguous().clone(MemTag::Weights)) {
    QDIT_CHECK(w_.dim() == 2 && w_.dtype() == DType::BF16, "[linear] bf16 decoder needs a bf16 [N, K] weight, got ",
               w_.desc());
  }
  int64_t rows() const override { return w_.size(0); }
  int64_t cols() const override { return w_.size(1); }
  size_t stored_bytes() const override { return w_.nbytes(); }
  void decode_rows(int64_t n0, int64_t n1, float* dst) const override {
    const int64_t k = cols();
    cpu::bf16_to_f32_buffer(w_.data<uint16_t>() + n0 * k, dst, (n1 - n0) * k);
  }

 private:
  Tensor w_;
};

struct TileKey {
  int64_t m, rows;
  Activation act;
  bool accumulate;
  auto tie() const { return std::tie(m, rows, act, accumulate); }
  bool operator<(const TileKey& o) const { return tie() < o.tie(); }
};

}  // namespace

void WeightRowDecoder::decode_rows_bf16(int64_t n0, int64_t n1, uint16_t* dst) const {
  // Chunks of about 64 KiB of f32 keep the intermediate in L2.
  const int64_t k = std::max<int64_t>(cols(), 1), chunk = std::max<int64_t>(1, 16384 / k);
  std::vector<float> buf(static_cast<size_t>(std::min(chunk, std::max<int64_t>(n1 - n0, 1)) * k));
  for (int64_t r = n0; r < n1; r += chunk) {
    const int64_t e = std::min(n1, r + chunk);
    decode_rows(r, e, buf.data());
    cpu::f32_to_bf16_buffer(buf.data(), dst + (r - n0) * cols(), (e - r) * cols());
  }
}

std::unique_ptr<WeightRowDecoder> make_bf16_row_decoder(const Tensor& weight_bf16) {
  return std::make_unique<Bf16RowDecoder>(weight_bf16);
}

thread_local cpu::ThreadBuffer t_weight_buffer;

struct TiledLinear::Impl {
  std::unique_ptr<WeightRowDecoder> decoder;
  Tensor bias;  // f32 [N] or undefined
  mutable std::mutex mu;
  mutable std::map<TileKey, dnnl::matmul> prims;

  dt tile_dt = dt::f32;  // bf16 when the CPU multiplies bf16 natively and compute is bf16

  // bf16 tiles: the whole weight is decoded each forward, as plain rows ([N, K] = [K, N] "ba"),
  // and multiplied by one GEMM with a dense output. oneDNN's AMX/AVX-512 bf16 kernels (brgemm)
  // take no column block of y as output (the f32 tiles' strided output sends them to the slower
  // gemm:jit); plain weights they repack into their blocked layout block by block, once per
  // block for all of M, measured as fast as pre-packed weights here and cheaper than packing
  // the decoded rows ourselves.
  memory::desc wmd;

  dnnl::matmul prim(int64_t m, int64_t k, int64_t n_total, int64_t rows, Activation act, bool accumulate) const {
    std::lock_guard<std::mutex> lock(mu);
    TileKey key{m, rows, act, accumulate};
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    memory::desc src({m, k}, tile_dt, tag::ab);
    memory::desc wei({k, rows}, tile_dt, tag::ba);                   // decoded rows [rows, K]
    memory::desc dst({m, rows}, dt::f32, memory::dims{n_total, 1});  // a column block of y
    return prims.emplace(key, dnnl::matmul(make_pd(src, wei, dst, rows, act, accumulate))).first->second;
  }

  dnnl::matmul::primitive_desc make_pd(const memory::desc& src, const memory::desc& wei, const memory::desc& dst,
                                       int64_t rows, Activation act, bool accumulate) const {
    memory::desc bmd({1, rows}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_post_ops(cpu::make_post_ops(act, accumulate));
    auto d = bias.defined() ? dnnl::matmul::desc(src, wei, bmd, dst) : dnnl::matmul::desc(src, wei, dst);
    return dnnl::matmul::primitive_desc(d, attr, dnnl_engine());
  }

  // 4-bit weights on an AMX CPU: the AMX kernel decodes panels of the codes itself
  // (amx_q4_gemm.h) instead of the whole weight, with bias, activation and residual in its epilogue.
  std::optional<qk::Lut4Matrix> amx_q4;

  // The decoded weight, in this thread's workspace.
  const uint16_t* decode_weight(int64_t n, int64_t k) const {
    auto* w = static_cast<uint16_t*>(t_weight_buffer.get(sizeof(uint16_t) * n * k));
    parallel_for(n, 16, [&](int64_t r0, int64_t r1) { decoder->decode_rows_bf16(r0, r1, w + r0 * k); });
    return w;
  }
};

TiledLinear::TiledLinear(std::unique_ptr<WeightRowDecoder> decoder, const Tensor& bias, bool round_input_to_bf16)
    : impl_(std::make_unique<Impl>()), round_input_(round_input_to_bf16) {
  QDIT_CHECK(decoder, "[linear] null weight decoder");
  const int64_t n = decoder->rows(), k = decoder->cols();
  if (bias.defined()) {
    QDIT_CHECK(bias.numel() == n, "[linear] bias has ", bias.numel(), " elements, expected ", n);
    impl_->bias = bias.contiguous().to(DType::F32).clone(MemTag::Weights);
  }
  if (round_input_to_bf16 && native_bf16_gemm_available()) impl_->tile_dt = dt::bf16;
  if (impl_->tile_dt == dt::bf16) {
    impl_->wmd = memory::desc({k, n}, dt::bf16, tag::ba);
    tile_ = n;
    const qk::Lut4Matrix* q4 = decoder->lut4_matrix();
    if (q4 && cpu::amx_q4_usable(*q4)) {
      impl_->amx_q4 = *q4;
      cpu::amx_q4_prepare(*impl_->amx_q4);
    }
  } else {
    // Keep the decoded f32 tile around 256 KiB so it stays in L2 while the GEMM streams over M.
    tile_ = std::min(std::clamp<int64_t>((65536 / std::max<int64_t>(k, 1)) / 16 * 16, 16, 1024), n);
  }
  impl_->decoder = std::move(decoder);
}

TiledLinear::~TiledLinear() = default;
int64_t TiledLinear::in_features() const { return impl_->decoder->cols(); }
int64_t TiledLinear::out_features() const { return impl_->decoder->rows(); }
size_t TiledLinear::weight_bytes() const {
  return impl_->decoder->stored_bytes() + (impl_->bias.defined() ? impl_->bias.nbytes() : 0);
}

void TiledLinear::forward_into(const Tensor& x_in, Tensor& y, const GemmOptions& opt) const {
  const int64_t n = out_features(), k = in_features();
  QDIT_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k, "[linear] input ", x_in.desc(), " does not end in in_features=", k);
  const int64_t m = x_in.numel() / k;
  QDIT_CHECK(y.dtype() == DType::F32 && y.is_contiguous() && y.numel() == m * n, "[linear] output ", y.desc(),
             " must be contiguous f32 with ", m, "x", n, " elements");
  if (m == 0) return;
  const bool bf16_tiles = impl_->tile_dt == dt::bf16;
  Tensor x = x_in.contiguous().to(DType::F32);
  // 4-bit weights on AMX CPUs: the panel-decoding kernel, faster than the whole-weight decode at
  // every M measured (1 to 4096 tokens, docs/quant-speed.md).
  if (bf16_tiles && impl_->amx_q4) {
    const float* b = impl_->bias.defined() ? impl_->bias.data<float>() : nullptr;  // the kernel rounds x to bf16
    cpu::amx_q4_linear(*impl_->amx_q4, x.data<float>(), m, b, opt.accumulate, y.data<float>(), opt.activation);
    return;
  }
  if (round_input_) {
    // bf16 compute: both operands are bf16 values, whichever GEMM multiplies them.
    Tensor rounded = Tensor::empty(x.shape(), DType::BF16, MemTag::Workspace);
    cpu::f32_to_bf16_buffer(x.data<float>(), rounded.data<uint16_t>(), x.numel());
    if (bf16_tiles) {
      x = rounded;
    } else {
      x = Tensor::empty(x.shape(), DType::F32, MemTag::Workspace);
      cpu::bf16_to_f32_buffer(rounded.data<uint16_t>(), x.data<float>(), x.numel());
    }
  }
  if (bf16_tiles) {
    const uint16_t* w = impl_->decode_weight(n, k);
    dnnl::matmul p;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      TileKey key{m, -1, opt.activation, opt.accumulate};
      auto it = impl_->prims.find(key);
      if (it == impl_->prims.end()) {
        memory::desc src({m, k}, dt::bf16, tag::ab), dst({m, n}, dt::f32, tag::ab);
        it = impl_->prims.emplace(key, dnnl::matmul(impl_->make_pd(src, impl_->wmd, dst, n, opt.activation,
                                                                   opt.accumulate)))
                 .first;
      }
      p = it->second;
    }
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory({{m, k}, dt::bf16, tag::ab}, dnnl_engine(), x.raw_data())},
        {DNNL_ARG_WEIGHTS, memory(impl_->wmd, dnnl_engine(), const_cast<uint16_t*>(w))},
        {DNNL_ARG_DST, memory({{m, n}, dt::f32, tag::ab}, dnnl_engine(), y.raw_data())}};
    if (impl_->bias.defined())
      args.emplace(DNNL_ARG_BIAS, memory({{1, n}, dt::f32, tag::ab}, dnnl_engine(), impl_->bias.raw_data()));
    p.execute(dnnl_stream(), args);
    dnnl_stream().wait();
    return;
  }
  Tensor tile = Tensor::empty({tile_, k}, DType::F32, MemTag::Workspace);
  Tensor tile_bf16 = round_input_ ? Tensor::empty({tile_, k}, DType::BF16, MemTag::Workspace) : Tensor();
  for (int64_t n0 = 0; n0 < n; n0 += tile_) {
    const int64_t rows = std::min(tile_, n - n0);
    impl_->decoder->decode_rows(n0, n0 + rows, tile.data<float>());
    if (round_input_) {
      cpu::f32_to_bf16_buffer(tile.data<float>(), tile_bf16.data<uint16_t>(), rows * k);
      cpu::bf16_to_f32_buffer(tile_bf16.data<uint16_t>(), tile.data<float>(), rows * k);
    }
    dnnl::matmul p = impl_->prim(m, k, n, rows, opt.activation, opt.accumulate);
    memory src({{m, k}, impl_->tile_dt, tag::ab}, dnnl_engine(), x.raw_data());
    memory wei({{k, rows}, impl_->tile_dt, tag::ba}, dnnl_engine(), tile.raw_data());
    memory dst({{m, rows}, dt::f32, memory::dims{n, 1}}, dnnl_engine(), y.data<float>() + n0);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    memory bmem;
    if (impl_->bias.defined()) {
      bmem = memory({{1, rows}, dt::f32, tag::ab}, dnnl_engine(), impl_->bias.data<float>() + n0);
      args.emplace(DNNL_ARG_BIAS, bmem);
    }
    p.execute(dnnl_stream(), args);
    dnnl_stream().wait();
  }
}

std::unique_ptr<LinearKernel> make_float_linear(const Tensor& weight, const Tensor& bias, DType compute) {
  if (compute == DType::F16) return make_f16_compute_linear(make_f16_row_decoder(weight), bias);
  if (compute == DType::F32 || native_bf16_gemm_available())
    return std::make_unique<PackedLinear>(weight, bias, compute);
  QDIT_CHECK(compute == DType::BF16, "[linear] unsupported compute dtype ", dtype_name(compute));
  // No bf16 GEMM on this CPU: keep bf16 weights (half the memory) and expand tiles to f32.
  return std::make_unique<TiledLinear>(make_bf16_row_decoder(weight.to(DType::BF16)), bias, true);
}

}  // namespace qdit::kernels
