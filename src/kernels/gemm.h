// Linear-layer GEMM on pre-packed weights: y[M,N] = epilogue(x[M,K] W[N,K]^T + b).
// Weights are reordered once into the layout oneDNN's kernel prefers (f32 or bf16); primitives are
// created per M and cached. Activations stay f32 at the interface; with bf16 compute the input is
// rounded to bf16 (RNE) on the way in and the product accumulates in f32.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "qdit/core/tensor.h"
#include "qdit/kernels/quantized_rows.h"

namespace qdit::kernels {

namespace qk {
struct Lut4Matrix;
}

enum class Activation { None, GeluTanh, GeluErf, Silu, Relu };
const char* activation_name(Activation a);

struct GemmOptions {
  Activation activation = Activation::None;
  // y += result (y must hold the addend): fuses a residual add into the GEMM.
  bool accumulate = false;
  // With accumulate: y += gate[b] * result, gate [B, N] (last dim contiguous) broadcast over the
  // rows of batch item b of x [B, ..., K] (DiT's gated residual). Only for kernels whose
  // fuses_gate() says so; nn::Linear runs the others unfused.
  const Tensor* gate = nullptr;
};

// What every Linear kernel offers; nn::Linear holds one, chosen by the weight's format.
class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual size_t weight_bytes() const = 0;  // bytes resident for weights + bias
  // x: [..., K] f32 (or bf16), contiguous rows; y: [..., N] f32 contiguous.
  virtual void forward_into(const Tensor& x, Tensor& y, const GemmOptions& opt = {}) const = 0;
  Tensor forward(const Tensor& x, const GemmOptions& opt = {}) const;
  // Whether forward_into applies GemmOptions::gate itself.
  virtual bool fuses_gate() const { return false; }
  // Whether forward_into / forward_quantized also take a bf16 y (no accumulate or gate): the f32
  // result rounded to nearest even, for consumers that round it anyway (bf16 attention).
  virtual bool writes_bf16() const { return false; }
  // Whether the kernel works on bf16 activations (bf16 compute: PackedLinear rounds its input to
  // bf16 itself; int8dq quantizes bf16 activations as torchao does on a bf16 model): a producer
  // can then hand it bf16 rows, half the bytes, with no rounding pass here.
  virtual bool rounds_input_to_bf16() const { return false; }
  // Kernels that quantize their input per token (int8dq) say how, and take rows already quantized
  // that way (by the norm that produced them); the others return nothing and never get any.
  virtual std::optional<RowQuantSpec> input_quantization() const { return std::nullopt; }
  virtual void forward_quantized(const QuantizedRows& x, Tensor& y, const GemmOptions& opt = {}) const;
};

// Produces f32 rows of a [N, K] weight on demand: the compact storage (bf16 on CPUs without bf16
// GEMM, quantized codes + scales later) is expanded one tile at a time, never whole.
class WeightRowDecoder {
 public:
  virtual ~WeightRowDecoder() = default;
  virtual int64_t rows() const = 0;  // N
  virtual int64_t cols() const = 0;  // K
  virtual size_t stored_bytes() const = 0;
  // Writes rows [n0, n1) as f32 into dst ([n1-n0, K], row-major).
  virtual void decode_rows(int64_t n0, int64_t n1, float* dst) const = 0;
  // Writes rows [n0, n1) as bf16 bits (RNE of the f32 rows, NaN -> 0x7FC0, as f32_to_bf16) into
  // dst ([n1-n0, K]); feeds the bf16 GEMM. The default decodes f32 and converts; schemes override
  // it with a direct decode that must give identical bits.
  virtual void decode_rows_bf16(int64_t n0, int64_t n1, uint16_t* dst) const;
  // The weight as 4-bit codes + group tables (4-bit schemes whose groups tile the rows), which
  // TiledLinear's AMX kernel decodes panel by panel itself; null when the decoder has no such form.
  virtual const qk::Lut4Matrix* lut4_matrix() const { return nullptr; }
};

// Linear on a WeightRowDecoder; the decode cost is amortised over M. f32 compute: for each tile of
// output columns the weight rows are decoded into an L2-sized f32 buffer and multiplied with
// oneDNN's f32 GEMM. bf16 compute on a CPU with a bf16 GEMM: the whole weight is decoded to bf16
// rows in a per-thread workspace as large as the largest such layer, then one GEMM
// (tile_rows() = N).
class TiledLinear : public LinearKernel {
 public:
  // round_input_to_bf16 ("bf16 compute"): x and the decoded tiles are rounded to bf16 and, when the
  // CPU has a bf16 GEMM, multiplied as bf16; otherwise as f32 holding bf16 values (same numerics).
  TiledLinear(std::unique_ptr<WeightRowDecoder> decoder, const Tensor& bias, bool round_input_to_bf16 = false);
  ~TiledLinear() override;
  int64_t in_features() const override;
  int64_t out_features() const override;
  size_t weight_bytes() const override;
  void forward_into(const Tensor& x, Tensor& y, const GemmOptions& opt = {}) const override;
  int64_t tile_rows() const { return tile_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t tile_ = 0;
  bool round_input_ = false;
};

// Decoder over a bf16 [N, K] weight (used for bf16 weights where oneDNN has no bf16 GEMM).
std::unique_ptr<WeightRowDecoder> make_bf16_row_decoder(const Tensor& weight_bf16);

// fp16 compute (emulated exactly on the f32 GEMM): x and each decoded tile rounded to fp16.
std::unique_ptr<LinearKernel> make_f16_compute_linear(std::unique_ptr<WeightRowDecoder> decoder, const Tensor& bias);
// Decoder over a weight stored as fp16 [N, K].
std::unique_ptr<WeightRowDecoder> make_f16_row_decoder(const Tensor& weight);

// True when oneDNN offers a bf16 x bf16 -> f32 GEMM on this CPU (AVX-512 BF16 / AMX).
bool native_bf16_gemm_available();

// Picks the fastest kernel for a float weight: oneDNN pre-packed when it supports `compute`,
// otherwise bf16 storage decoded tile by tile.
std::unique_ptr<LinearKernel> make_float_linear(const Tensor& weight, const Tensor& bias, DType compute);

class PackedLinear : public LinearKernel {
 public:
  // weight: [N, K] (PyTorch Linear layout) in f32/f16/bf16; bias: [N] or undefined.
  // compute: F32 or BF16.
  PackedLinear(const Tensor& weight, const Tensor& bias, DType compute);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  DType compute_dtype() const { return compute_; }
  size_t weight_bytes() const override;
  bool writes_bf16() const override { return compute_ == DType::BF16; }  // oneDNN rounds its f32 result
  bool rounds_input_to_bf16() const override { return compute_ == DType::BF16; }
  void forward_into(const Tensor& x, Tensor& y, const GemmOptions& opt = {}) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t n_ = 0, k_ = 0;
  DType compute_;
};

// W8A8 Linear (torchao int8dq): each token's activation row is quantized to int8 on the fly
// (symmetric, scale = max(amax / act_divisor, f32 eps), round half even, clamp [-128, 127]) and
// multiplied with pre-packed s8 weights (qdit's AMX tile GEMM where the CPU has AMX-INT8, else
// oneDNN's int8 GEMM, VNNI); y = act((acc * w_scale[n]) * x_scale[m] + b), optionally added to y.
class Int8Linear : public LinearKernel {
 public:
  // qweight: s8 [N, K]; w_scale: f32 [N]; bias: [N] or undefined. bf16_activations (bf16 compute):
  // the activations it quantizes may be bf16 (as in torchao on a bf16 model), so producers hand it
  // bf16 rows (rounds_input_to_bf16()).
  Int8Linear(const Tensor& qweight, const Tensor& w_scale, const Tensor& bias, float act_divisor = 127.5f,
             bool bf16_activations = false);
  ~Int8Linear() override;
  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  size_t weight_bytes() const override;
  void forward_into(const Tensor& x, Tensor& y, const GemmOptions& opt = {}) const override;
  bool fuses_gate() const override;  // on AMX-INT8 CPUs
  bool writes_bf16() const override { return true; }
  bool rounds_input_to_bf16() const override;
  std::optional<RowQuantSpec> input_quantization() const override;
  void forward_quantized(const QuantizedRows& x, Tensor& y, const GemmOptions& opt = {}) const override;

 private:
  // q: the quantized rows (row stride: the kernel's), xs: their scales.
  void amx_forward(const int8_t* q, int64_t m, const float* xs, Tensor& y, const GemmOptions& opt) const;
  void onednn_forward(const int8_t* q, int64_t m, const float* xs, float* y, const GemmOptions& opt) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t n_ = 0, k_ = 0;
};

// Per-row symmetric int8 quantization of x [m, k]: scales[r] = max(amax_r / divisor, f32 eps),
// q = clamp(round_half_even(x * (1 / scale)), -128, 127).
// Rows of q are ldq apart (default k; the padding past k is zeroed).
void quantize_rows_s8(const float* x, int64_t m, int64_t k, float divisor, int8_t* q, float* scales,
                      int64_t ldq = -1);

// Plain triple-loop reference (double accumulation) for tests: y = act(x W^T + b).
Tensor linear_reference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        Activation act = Activation::None);

// Scalar activation functions shared by kernels and references.
float apply_activation(Activation a, float x);

}  // namespace qdit::kernels
