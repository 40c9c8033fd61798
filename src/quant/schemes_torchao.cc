// torchao weight configs (quant-formats.md §2) under diffusers' shorthand names: int8wo / int8dq
// (symmetric per-row int8, amax/127.5, times the reciprocal), int4wo (asymmetric groups with a
// float zero, signed nibbles even-low), int4dq (symmetric groups of 32 in an int8 container),
// float8wo / float8dq (e4m3fn or e5m2, per row or per tensor), fpX_eAmB (per-row scaled
// minifloat codes, stored plainly) and uint1wo..uint7wo (asymmetric groups of 64, planar shards).
// Parts use torchao's safetensors names (_weight_qdata, _weight_scale, _weight_zero_point).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <regex>

#include "qdit/core/error.h"
#include "qdit/quant/codec_util.h"
#include "qdit/quant/numerics.h"
#include "qdit/quant/schemes.h"

namespace qdit::quant {

namespace {

constexpr float kF32Eps = 1.1920928955078125e-07f;  // torch.finfo(torch.float32).eps

float dtype_eps(DType d) {
  return d == DType::BF16 ? 0.0078125f : d == DType::F16 ? 0.0009765625f : kF32Eps;
}

std::pair<float, float> min_max(const float* v, int64_t n) {
  const auto [mn, mx] = std::minmax_element(v, v + n);
  return {*mn, *mx};
}

float abs_max(const float* v, int64_t n) {
  float a = 0.0f;
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(v[i]));
  return a;
}

// int8wo / int8dq: per-row symmetric int8 (Int8Tensor PerRow). With bf16 weights the scale, its
// reciprocal and the product are bf16-rounded as in torchao's v1 path (identical to v2 for f32).
class Int8Row : public Scheme {
 public:
  Int8Row(std::string name, ActivationQuant act) : name_(std::move(name)), act_(act) {}
  std::string name() const override { return name_; }
  std::string library() const override { return "torchao"; }
  double bits() const override { return 8; }
  ActivationQuant activation() const override { return act_; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(n));
    Tensor data = Tensor::empty({n, k}, DType::I8, MemTag::Weights);
    for (int64_t i = 0; i < n; ++i) {
      scale[i] = std::max(r(abs_max(&x[i * k], k) / 127.5f), kF32Eps);
      const float inv = r(1.0f / scale[i]);
      for (int64_t j = 0; j < k; ++j)
        data.data<int8_t>()[i * k + j] =
            static_cast<int8_t>(std::clamp(round_half_even(r(x[i * k + j] * inv)), -128.0f, 127.0f));
    }
    return parts(w, data, scale);
  }

  QuantizedWeight quantize(const Tensor& w) const override {
    kernels::qk::Round rd;
    if (!fast_round(w.dtype(), &rd)) return reference_quantize(w);
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder r{w.dtype()};
    const Tensor src = w.contiguous();
    const bool bf = src.dtype() == DType::BF16;
    std::vector<float> scale(static_cast<size_t>(n));
    Tensor data = Tensor::empty({n, k}, DType::I8, MemTag::Weights);
    const kernels::qk::Kernels& kern = kernels::qk::get();
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const void* row = row_ptr(src, i);
        scale[i] = std::max(r(kern.abs_max(row, bf, k) / 127.5f), kF32Eps);
        kernels::qk::QuantS8Params p;
        p.s = r(1.0f / scale[i]);
        p.round = rd;
        kern.quant_s8(row, bf, k, p, data.data<int8_t>() + i * k);
      }
    });
    return parts(w, data, scale);
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "_weight_qdata", DType::I8, {q.out, q.in});
    expect_part(q, "_weight_scale", DType::F32, {q.out, 1});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    Tensor data = q.part("_weight_qdata"), scale = q.part("_weight_scale");
    const int64_t k = q.in;
    return std::make_unique<FunctionRowDecoder>(q.out, q.in, q.bytes(), [=](int64_t row, float* dst) {
      const float s = scale.data<float>()[row];
      const int8_t* c = data.data<int8_t>() + row * k;
      for (int64_t j = 0; j < k; ++j) dst[j] = static_cast<float>(c[j]) * s;
    });
  }

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    Tensor data = q.part("_weight_qdata"), scale = q.part("_weight_scale");
    const int64_t k = q.in;
    using kernels::qk::Round;
    return std::make_unique<FunctionRowDecoder>(
        q.out, q.in, q.bytes(),
        [=](int64_t row, float* dst) {
          kernels::qk::get().s8_mul_f32(data.data<int8_t>() + row * k, k, scale.data<float>()[row], Round::None, dst);
        },
        [=](int64_t row, uint16_t* dst) {
          kernels::qk::get().s8_mul_bf16(data.data<int8_t>() + row * k, k, scale.data<float>()[row], Round::None, dst);
        });
  }

 private:
  QuantizedWeight parts(const Tensor& w, const Tensor& data, const std::vector<float>& scale) const {
    const int64_t n = w.size(0), k = w.size(1);
    QuantizedWeight q{name_, n, k, w.dtype(), {}};
    q.parts["_weight_qdata"] = data;
    q.parts["_weight_scale"] = float_part(scale, {n, 1}, DType::F32);
    q.parts["_weight_zero_point"] = Tensor::zeros({n, 1}, DType::I8, MemTag::Weights);
    return q;
  }

  std::string name_;
  ActivationQuant act_;
};

// int4wo: Int4Tensor PLAIN. fp32 math per group: scale = max(max-min, 1e-6)/15,
// zero = min + 8*scale, q = clamp(round((x-min)/scale), 0, 15) - 8; scale and zero are stored
// transposed [in/group, out] in the weight dtype; two signed nibbles per byte, even index low.
class Int4Groups : public Scheme {
 public:
  explicit Int4Groups(int64_t group) : group_(group) {}
  std::string name() const override { return group_ == 128 ? "int4wo" : "int4wo-" + std::to_string(group_); }
  std::string library() const override { return "torchao"; }
  double bits() const override { return 4; }
  std::map<std::string, std::string> attributes() const override { return {{"group_size", std::to_string(group_)}}; }
  // Rows shorter than the group form one group (torchao would leave the layer unquantized).
  bool applies_to(int64_t out, int64_t in) const override {
    return out > 0 && in % 2 == 0 && in % effective_group(in, group_) == 0;
  }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), gs = effective_group(k, group_), ng = k / gs;
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(ng * n)), zero(scale.size());
    Tensor data = Tensor::zeros({n, k / 2}, DType::I8, MemTag::Weights);
    uint8_t* bytes = data.data<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t g = 0; g < ng; ++g) {
        const float* v = &x[i * k + g * gs];
        const auto [mn, mx] = min_max(v, gs);
        const float s = std::max(mx - mn, 1e-6f) / 15.0f;
        scale[g * n + i] = s;
        zero[g * n + i] = mn + 8.0f * s;
        for (int64_t c = 0; c < gs; ++c) {
          const int u = static_cast<int>(std::clamp(round_half_even((v[c] - mn) / s), 0.0f, 15.0f));
          const int64_t col = g * gs + c;
          const uint8_t nib = static_cast<uint8_t>((u - 8) & 0xF);
          bytes[i * (k / 2) + col / 2] |= static_cast<uint8_t>(col % 2 == 0 ? nib : nib << 4);
        }
      }
    }
    return parts(w, data, scale, zero);
  }

  // Rows are independent: the same arithmetic, vectorised, on all threads (groups start at even
  // columns, so each byte holds two codes of one group).
  QuantizedWeight quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), gs = effective_group(k, group_), ng = k / gs;
    const Tensor values = weight_values_fast(w);
    const float* x = values.data<float>();
    std::vector<float> scale(static_cast<size_t>(ng * n)), zero(scale.size());
    Tensor data = Tensor::empty({n, k / 2}, DType::I8, MemTag::Weights);
    uint8_t* bytes = data.data<uint8_t>();
    const kernels::qk::Kernels& kern = kernels::qk::get();
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      std::vector<uint8_t> u(static_cast<size_t>(gs));
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t g = 0; g < ng; ++g) {
          const float* v = &x[i * k + g * gs];
          float mn, mx;
          kern.min_max(v, gs, &mn, &mx);
          const float s = std::max(mx - mn, 1e-6f) / 15.0f;
          scale[g * n + i] = s;
          zero[g * n + i] = mn + 8.0f * s;
          kern.affine_codes(v, gs, mn, s, u.data());
          uint8_t* out = bytes + i * (k / 2) + g * gs / 2;
          for (int64_t c = 0; c < gs; c += 2)
            out[c / 2] = static_cast<uint8_t>(((u[c] - 8) & 0xF) | (((u[c + 1] - 8) & 0xF) << 4));
        }
    });
    return parts(w, data, scale, zero);
  }

  QuantizedWeight parts(const Tensor& w, const Tensor& data, const std::vector<float>& scale,
                        const std::vector<float>& zero) const {
    const int64_t n = w.size(0), k = w.size(1), ng = k / effective_group(k, group_);
    QuantizedWeight q{name(), n, k, w.dtype(), {}};
    q.parts["_weight_qdata"] = data;
    q.parts["_weight_scale"] = float_part(scale, {ng, n}, w.dtype());
    q.parts["_weight_zero_point"] = float_part(zero, {ng, n}, w.dtype());
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    const int64_t ng = q.in / effective_group(q.in, group_);
    expect_part(q, "_weight_qdata", DType::I8, {q.out, q.in / 2});
    expect_part(q, "_weight_scale", q.source_dtype, {ng, q.out});
    expect_part(q, "_weight_zero_point", q.source_dtype, {ng, q.out});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    const int64_t n = q.out, k = q.in, gs = effective_group(k, group_);
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("_weight_scale")));
    auto zero = std::make_shared<std::vector<float>>(part_values(q.part("_weight_zero_point")));
    Tensor data = q.part("_weight_qdata");
    const DTypeRounder r{q.source_dtype};
    return std::make_unique<FunctionRowDecoder>(n, k, q.bytes(), [=](int64_t row, float* dst) {
      const uint8_t* b = data.data<uint8_t>() + row * (k / 2);
      for (int64_t j = 0; j < k; ++j) {
        const int nib = (b[j / 2] >> (4 * (j % 2))) & 0xF;
        const float code = static_cast<float>(nib >= 8 ? nib - 16 : nib);
        const int64_t g = (j / gs) * n + row;
        dst[j] = r(r(code * (*scale)[g]) + (*zero)[g]);
      }
    });
  }

  // One 16-entry table per group (r(r(code * scale) + zero)), looked up by nibble.
  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    kernels::qk::Round rd;
    if (!fast_round(q.source_dtype, &rd)) return reference_decoder(q);
    const int64_t n = q.out, k = q.in, gs = effective_group(k, group_);
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("_weight_scale")));
    auto zero = std::make_shared<std::vector<float>>(part_values(q.part("_weight_zero_point")));
    Tensor data = q.part("_weight_qdata");
    static const float kCodes[16] = {0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1};
    auto run = [=](int64_t row) {
      kernels::qk::Lut4Run p;
      p.bytes = data.data<uint8_t>() + row * (k / 2);
      p.layout = kernels::qk::Nibbles::LowFirst;
      p.n = k;
      p.group = p.first_group = gs;
      p.base = kCodes;
      p.scale = scale->data() + row;
      p.zero = zero->data() + row;
      p.scale_stride = p.zero_stride = n;
      p.round = rd;
      return p;
    };
    auto dec = std::make_unique<FunctionRowDecoder>(
        n, k, q.bytes(), [=](int64_t row, float* dst) { kernels::qk::get().lut4_f32(run(row), dst); },
        [=](int64_t row, uint16_t* dst) { kernels::qk::get().lut4_bf16(run(row), dst); });
    kernels::qk::Lut4Matrix mat;
    mat.codes = data.data<uint8_t>();
    mat.row_bytes = k / 2;
    mat.layout = kernels::qk::Nibbles::LowFirst;
    mat.n = n;
    mat.k = k;
    mat.group = gs;
    mat.base = kCodes;
    mat.scale = scale->data();
    mat.zero = zero->data();
    mat.scale_row = mat.zero_row = 1;
    mat.scale_group = mat.zero_group = n;
    mat.round = rd;
    dec->set_lut4_matrix(mat);
    return dec;
  }

 private:
  int64_t group_;
};

// int4dq weights: symmetric groups of 32, scale = max(amax/7.5, eps of the weight dtype),
// q = clamp(round(w * (1/scale)), -8, 7), one code per int8 (PlainLayout). Activations are
// quantized per token, asymmetric int8.
class Int4SymGroups : public Scheme {
 public:
  std::string name() const override { return "int4dq"; }
  std::string library() const override { return "torchao"; }
  double bits() const override { return 4; }
  ActivationQuant activation() const override { return ActivationQuant::Int8PerTokenAsym; }
  bool applies_to(int64_t out, int64_t in) const override { return out > 0 && in % effective_group(in, 32) == 0; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), gs = effective_group(k, 32), ng = k / gs;
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(n * ng));
    Tensor data = Tensor::empty({n, k}, DType::I8, MemTag::Weights);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t g = 0; g < ng; ++g) {
        const float* v = &x[i * k + g * gs];
        const float s = std::max(r(abs_max(v, gs) / 7.5f), dtype_eps(w.dtype()));
        scale[i * ng + g] = s;
        const float inv = r(1.0f / s);
        for (int64_t c = 0; c < gs; ++c)
          data.data<int8_t>()[i * k + g * gs + c] =
              static_cast<int8_t>(std::clamp(round_half_even(r(v[c] * inv)), -8.0f, 7.0f));
      }
    QuantizedWeight q{name(), n, k, w.dtype(), {}};
    q.parts["_weight_qdata"] = data;
    q.parts["_weight_scale"] = float_part(scale, {n, ng}, w.dtype());
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "_weight_qdata", DType::I8, {q.out, q.in});
    expect_part(q, "_weight_scale", q.source_dtype, {q.out, q.in / effective_group(q.in, 32)});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    const int64_t k = q.in, gs = effective_group(k, 32), ng = k / gs;
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("_weight_scale")));
    Tensor data = q.part("_weight_qdata");
    const DTypeRounder r{q.source_dtype};
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      const int8_t* c = data.data<int8_t>() + row * k;
      for (int64_t j = 0; j < k; ++j) dst[j] = r(static_cast<float>(c[j]) * (*scale)[row * ng + j / gs]);
    });
  }
};

// float8wo / float8dq: scale = amax / finfo.max (in the weight dtype, then fp32, no eps),
// code = fp8(clamp(x / scale, +-max)); per row [out, 1] or per tensor [1, 1].
class Float8 : public Scheme {
 public:
  Float8(std::string name, bool e5m2, bool per_row, ActivationQuant act)
      : name_(std::move(name)), e5m2_(e5m2), per_row_(per_row), act_(act) {}
  std::string name() const override { return name_; }
  std::string library() const override { return "torchao"; }
  double bits() const override { return 8; }
  ActivationQuant activation() const override { return act_; }
  std::map<std::string, std::string> attributes() const override {
    return {{"granularity", per_row_ ? "PerRow" : "PerTensor"}, {"weight_dtype", e5m2_ ? "e5m2" : "e4m3fn"}};
  }
  float fmax() const { return e5m2_ ? 57344.0f : 448.0f; }
  DType code_dtype() const { return e5m2_ ? DType::F8E5M2 : DType::F8E4M3; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), ns = per_row_ ? n : 1;
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(ns));
    for (int64_t i = 0; i < ns; ++i)
      scale[i] = r((per_row_ ? abs_max(&x[i * k], k) : abs_max(x.data(), n * k)) / fmax());
    Tensor data = Tensor::empty({n, k}, code_dtype(), MemTag::Weights);
    for (int64_t i = 0; i < n; ++i) {
      const float s = scale[per_row_ ? i : 0];
      for (int64_t j = 0; j < k; ++j) {
        // No eps in torchao: an all-zero row (scale 0) is stored as code 0 here instead of NaN.
        const float v = s == 0.0f ? 0.0f : std::clamp(x[i * k + j] / s, -fmax(), fmax());
        data.data<uint8_t>()[i * k + j] = e5m2_ ? f32_to_fp8_e5m2(v) : f32_to_fp8_e4m3fn(v);
      }
    }
    return parts(w, data, scale);
  }

  QuantizedWeight quantize(const Tensor& w) const override {
    kernels::qk::Round rd;
    if (!fast_round(w.dtype(), &rd)) return reference_quantize(w);
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder r{w.dtype()};
    const Tensor src = w.contiguous();
    const bool bf = src.dtype() == DType::BF16;
    const kernels::qk::Kernels& kern = kernels::qk::get();
    std::vector<float> scale(static_cast<size_t>(per_row_ ? n : 1));
    Tensor data = Tensor::empty({n, k}, code_dtype(), MemTag::Weights);
    auto codes_of = [&](int64_t i, float s) {
      uint8_t* codes = data.data<uint8_t>() + i * k;
      if (s == 0.0f) {
        std::memset(codes, 0, static_cast<size_t>(k));  // fp8 code of 0.0
        return;
      }
      kernels::qk::QuantFp8Params p;
      p.s = s;
      p.fmax = fmax();
      p.e5m2 = e5m2_;
      kern.quant_fp8(row_ptr(src, i), bf, k, p, codes);
    };
    if (per_row_) {  // one pass: each row's scale, then its codes
      parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
          scale[i] = r(kern.abs_max(row_ptr(src, i), bf, k) / fmax());
          codes_of(i, scale[i]);
        }
      });
      return parts(w, data, scale);
    }
    // Per tensor: the amax is the max of the rows' (max is exact and ignores NaN either way).
    std::vector<float> amax(static_cast<size_t>(n));
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) amax[i] = kern.abs_max(row_ptr(src, i), bf, k);
    });
    float a = 0.0f;
    for (float v : amax) a = std::max(a, v);
    scale[0] = r(a / fmax());
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) codes_of(i, scale[0]);
    });
    return parts(w, data, scale);
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "_weight_qdata", code_dtype(), {q.out, q.in});
    expect_part(q, "_weight_scale", DType::F32, {per_row_ ? q.out : 1, 1});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    Tensor data = q.part("_weight_qdata"), scale = q.part("_weight_scale");
    const int64_t k = q.in;
    const bool e5m2 = e5m2_, per_row = per_row_;
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      const float s = scale.data<float>()[per_row ? row : 0];
      const uint8_t* c = data.data<uint8_t>() + row * k;
      for (int64_t j = 0; j < k; ++j) dst[j] = (e5m2 ? fp8_e5m2_to_f32(c[j]) : fp8_e4m3fn_to_f32(c[j])) * s;
    });
  }

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    Tensor data = q.part("_weight_qdata"), scale = q.part("_weight_scale");
    const int64_t k = q.in;
    const bool e5m2 = e5m2_, per_row = per_row_;
    using kernels::qk::Round;
    return std::make_unique<FunctionRowDecoder>(
        q.out, k, q.bytes(),
        [=](int64_t row, float* dst) {
          kernels::qk::get().fp8_mul_f32(data.data<uint8_t>() + row * k, k, e5m2,
                                         scale.data<float>()[per_row ? row : 0], Round::None, dst);
        },
        [=](int64_t row, uint16_t* dst) {
          kernels::qk::get().fp8_mul_bf16(data.data<uint8_t>() + row * k, k, e5m2,
                                          scale.data<float>()[per_row ? row : 0], Round::None, dst);
        });
  }

 private:
  QuantizedWeight parts(const Tensor& w, const Tensor& data, const std::vector<float>& scale) const {
    QuantizedWeight q{name_, w.size(0), w.size(1), w.dtype(), {}};
    q.parts["_weight_qdata"] = data;
    q.parts["_weight_scale"] = float_part(scale, {static_cast<int64_t>(scale.size()), 1}, DType::F32);
    return q;
  }

  std::string name_;
  bool e5m2_, per_row_;
  ActivationQuant act_;
};

// fpX_eAmB: per-row scale = max(amax, 1e-12) / max_normal (stored in the weight dtype), codes are
// the minifloat of w / scale. torchao packs them in a GPU tensor-core layout; qdit stores one code
// per byte (and, having no such kernel, no shape restriction).
class FloatX : public Scheme {
 public:
  FloatX(int ebits, int mbits) : f_{ebits, mbits} {}
  std::string name() const override {
    return "fp" + std::to_string(1 + f_.ebits + f_.mbits) + "_e" + std::to_string(f_.ebits) + "m" +
           std::to_string(f_.mbits);
  }
  std::string library() const override { return "torchao"; }
  double bits() const override { return 1 + f_.ebits + f_.mbits; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(n));
    Tensor data = Tensor::empty({n, k}, DType::U8, MemTag::Weights);
    for (int64_t i = 0; i < n; ++i) {
      scale[i] = r(std::max(abs_max(&x[i * k], k), 1e-12f) / f_.max_normal());
      for (int64_t j = 0; j < k; ++j) data.data<uint8_t>()[i * k + j] = f_.encode(x[i * k + j] / scale[i]);
    }
    QuantizedWeight q{name(), n, k, w.dtype(), {}};
    q.parts["_weight_qdata"] = data;
    q.parts["_weight_scale"] = float_part(scale, {n, 1}, w.dtype());
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "_weight_qdata", DType::U8, {q.out, q.in});
    expect_part(q, "_weight_scale", q.source_dtype, {q.out, 1});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("_weight_scale")));
    Tensor data = q.part("_weight_qdata");
    const int64_t k = q.in;
    // Decode through a table of all codes: one lookup per weight.
    auto table = std::make_shared<std::vector<float>>(size_t{1} << static_cast<int>(bits()));
    for (size_t c = 0; c < table->size(); ++c) (*table)[c] = f_.decode(static_cast<uint8_t>(c));
    const DTypeRounder r{q.source_dtype};
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      const uint8_t* c = data.data<uint8_t>() + row * k;
      const float s = (*scale)[row];
      for (int64_t j = 0; j < k; ++j) dst[j] = r((*table)[c[j]] * s);
    });
  }

 private:
  MiniFloat f_;
};

// uintXwo: asymmetric groups of 64 with an integer zero point and 0 always representable;
// codes are split into 4/2/1-bit shards, each packed planar along the row.
class UIntX : public Scheme {
 public:
  explicit UIntX(int bits) : bits_(bits) {
    int rem = bits;
    for (int sb : {4, 2, 1})
      if (rem >= sb) {
        shards_.push_back(sb);
        rem -= sb;
      }
  }
  std::string name() const override { return "uint" + std::to_string(bits_) + "wo"; }
  std::string library() const override { return "torchao"; }
  double bits() const override { return bits_; }
  std::map<std::string, std::string> attributes() const override { return {{"group_size", "64"}}; }
  bool applies_to(int64_t out, int64_t in) const override {
    return out > 0 && in % 8 == 0 && in % effective_group(in, 64) == 0;
  }
  static std::string shard_name(int sb) { return "_weight_int" + std::to_string(sb) + "_shard"; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), gs = effective_group(k, 64), ng = k / gs;
    const float qmax = static_cast<float>((1 << bits_) - 1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w), scale(static_cast<size_t>(n * ng)), zp(scale.size());
    std::vector<uint8_t> code(static_cast<size_t>(n * k));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t g = 0; g < ng; ++g) {
        const float* v = &x[i * k + g * gs];
        auto [mn, mx] = min_max(v, gs);
        const float min_neg = std::min(mn, 0.0f), max_pos = std::max(mx, 0.0f);
        const float s = std::max(r(r(max_pos - min_neg) / qmax), kF32Eps);
        const float z = std::clamp(-round_half_even(min_neg / s), 0.0f, qmax);
        scale[i * ng + g] = s;
        zp[i * ng + g] = z;
        const float inv = r(1.0f / s);
        for (int64_t c = 0; c < gs; ++c)
          code[i * k + g * gs + c] =
              static_cast<uint8_t>(std::clamp(round_half_even(r(v[c] * inv)) + z, 0.0f, qmax));
      }
    QuantizedWeight q{name(), n, k, w.dtype(), {}};
    int shift = 0;
    for (int sb : shards_) {
      const int64_t chunks = 8 / sb, len = k / chunks;
      Tensor t = Tensor::zeros({n, len}, DType::U8, MemTag::Weights);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j) {
          const uint8_t part = static_cast<uint8_t>((code[i * k + j] >> shift) & ((1 << sb) - 1));
          t.data<uint8_t>()[i * len + j % len] |= static_cast<uint8_t>(part << (sb * (j / len)));
        }
      q.parts[shard_name(sb)] = t;
      shift += sb;
    }
    q.parts["_weight_scale"] = float_part(scale, {n, ng}, w.dtype());
    Tensor zpt = Tensor::empty({n, ng}, DType::I32, MemTag::Weights);
    for (size_t i = 0; i < zp.size(); ++i) zpt.data<int32_t>()[i] = static_cast<int32_t>(zp[i]);
    q.parts["_weight_zero_point"] = zpt;
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    const int64_t ng = q.in / effective_group(q.in, 64);
    for (int sb : shards_) expect_part(q, shard_name(sb), DType::U8, {q.out, q.in * sb / 8});
    expect_part(q, "_weight_scale", q.source_dtype, {q.out, ng});
    expect_part(q, "_weight_zero_point", DType::I32, {q.out, ng});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    const int64_t k = q.in, gs = effective_group(k, 64), ng = k / gs;
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("_weight_scale")));
    Tensor zp = q.part("_weight_zero_point");
    std::vector<Tensor> shard_t;
    for (int sb : shards_) shard_t.push_back(q.part(shard_name(sb)));
    const std::vector<int> shards = shards_;
    const DTypeRounder r{q.source_dtype};
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      for (int64_t j = 0; j < k; ++j) {
        int code = 0, shift = 0;
        for (size_t s = 0; s < shards.size(); ++s) {
          const int sb = shards[s];
          const int64_t len = k / (8 / sb);
          const uint8_t byte = shard_t[s].data<uint8_t>()[row * len + j % len];
          code |= ((byte >> (sb * (j / len))) & ((1 << sb) - 1)) << shift;
          shift += sb;
        }
        const int64_t g = row * ng + j / gs;
        dst[j] = r(static_cast<float>(code - zp.data<int32_t>()[g]) * (*scale)[g]);
      }
    });
  }

 private:
  int bits_;
  std::vector<int> shards_;
};

}  // namespace

void register_torchao_schemes(SchemeTable& t) {
  t.add(std::make_shared<Int8Row>("int8wo", ActivationQuant::None));
  t.add(std::make_shared<Int8Row>("int8dq", ActivationQuant::Int8PerToken));
  t.add(std::make_shared<Int4Groups>(128));
  t.add(std::make_shared<Int4SymGroups>());
  t.add(std::make_shared<Float8>("float8wo", false, true, ActivationQuant::None));
  t.add(std::make_shared<Float8>("float8wo_e5m2", true, true, ActivationQuant::None));
  t.add(std::make_shared<Float8>("float8dq", false, false, ActivationQuant::Fp8PerTensor));
  t.add(std::make_shared<Float8>("float8dq_row", false, true, ActivationQuant::Fp8PerRow));
  t.alias("float8wo_e4m3", "float8wo");
  t.alias("float8_weight_only", "float8wo");
  t.alias("float8dq_e4m3", "float8dq");
  t.alias("float8dq_e4m3_tensor", "float8dq");
  t.alias("float8dq_e4m3_row", "float8dq_row");
  t.alias("int8_weight_only", "int8wo");
  t.alias("int8_dynamic_activation_int8_weight", "int8dq");
  t.alias("int4_weight_only", "int4wo");
  t.alias("int8_dynamic_activation_int4_weight", "int4dq");
  for (int b = 1; b <= 7; ++b) t.add(std::make_shared<UIntX>(b));
  for (auto [e, m] : {std::pair{3, 2}, {2, 3}, {2, 2}, {2, 1}})
    t.add(std::make_shared<FloatX>(e, m));
  t.add_parser("int4wo-<32|64|128|256>", [](const std::string& n) -> std::shared_ptr<const Scheme> {
    static const std::regex re("int4wo-(32|64|128|256)");
    std::smatch m;
    if (!std::regex_match(n, m, re)) return nullptr;
    return std::make_shared<Int4Groups>(std::stoll(m[1]));
  });
  t.add_parser("fpX_eAmB (X=3..7, A+B=X-1) or fpX", [](const std::string& n) -> std::shared_ptr<const Scheme> {
    static const std::regex full("fp([3-7])_e([1-6])m([0-5])"), shorthand("fp([3-7])");
    std::smatch m;
    if (std::regex_match(n, m, full)) {
      const int x = std::stoi(m[1]), e = std::stoi(m[2]), b = std::stoi(m[3]);
      if (1 + e + b != x) fail("[quant] ", n, ": sign + ", e, " exponent + ", b, " mantissa bits is not ", x);
      return std::make_shared<FloatX>(e, b);
    }
    if (std::regex_match(n, m, shorthand)) {
      const int x = std::stoi(m[1]), e = x / 2;  // A = ceil((X-1)/2)
      return std::make_shared<FloatX>(e, x - 1 - e);
    }
    return nullptr;
  });
}

}  // namespace qdit::quant
