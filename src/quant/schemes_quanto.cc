// optimum-quanto weight qtypes (quant-formats.md §1): qint8 / qfloat8 / qfloat8_e5m2 with one
// absmax scale per output row (AbsmaxOptimizer), and qint4 / qint2 with min/max per group, an
// unsigned code and a float shift (MaxOptimizer), packed planar along dim 0. Arithmetic runs in
// the weight's dtype, as quanto's does; scales and shifts are stored in that dtype.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "qdit/core/error.h"
#include "qdit/quant/codec_util.h"
#include "qdit/quant/numerics.h"
#include "qdit/quant/schemes.h"

namespace qdit::quant {

namespace {

enum class ByteKind { Int8, E4M3, E5M2 };

class QuantoBytes : public Scheme {
 public:
  QuantoBytes(std::string name, ByteKind kind) : name_(std::move(name)), kind_(kind) {}
  std::string name() const override { return name_; }
  std::string library() const override { return "quanto"; }
  double bits() const override { return 8; }

  float qmax() const { return kind_ == ByteKind::Int8 ? 127.0f : kind_ == ByteKind::E4M3 ? 448.0f : 57344.0f; }
  DType data_dtype() const {
    return kind_ == ByteKind::Int8 ? DType::I8 : kind_ == ByteKind::E4M3 ? DType::F8E4M3 : DType::F8E5M2;
  }
  Shape scale_shape(const QuantizedWeight& q) const { return q.out == 1 ? Shape{} : Shape{q.out, 1}; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w);
    // A single output row is quantized per tensor (0-d scale), as quanto does.
    std::vector<float> scale(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      float amax = 0.0f;
      for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[i * k + j]));
      scale[i] = r(amax / qmax());
    }
    Tensor data = Tensor::empty({n, k}, data_dtype(), MemTag::Weights);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        // quanto has no eps: an all-zero row would give 0/0. qdit stores code 0 there instead.
        const float v = scale[i] == 0.0f ? 0.0f : r(x[i * k + j] / scale[i]);
        if (kind_ == ByteKind::Int8)
          data.data<int8_t>()[i * k + j] = static_cast<int8_t>(std::clamp(round_half_even(v), -128.0f, 127.0f));
        else if (kind_ == ByteKind::E4M3)
          data.data<uint8_t>()[i * k + j] = f32_to_fp8_e4m3fn(std::clamp(v, -qmax(), qmax()));
        else
          data.data<uint8_t>()[i * k + j] = f32_to_fp8_e5m2(std::clamp(v, -qmax(), qmax()));
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
    std::vector<float> scale(static_cast<size_t>(n));
    Tensor data = Tensor::empty({n, k}, data_dtype(), MemTag::Weights);
    const kernels::qk::Kernels& kern = kernels::qk::get();
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const void* row = row_ptr(src, i);
        scale[i] = r(kern.abs_max(row, bf, k) / qmax());
        uint8_t* codes = data.data<uint8_t>() + i * k;
        if (scale[i] == 0.0f) {
          std::memset(codes, 0, static_cast<size_t>(k));  // the code of 0 in every kind
        } else if (kind_ == ByteKind::Int8) {
          kernels::qk::QuantS8Params p;
          p.s = scale[i];
          p.divide = true;
          p.round = rd;
          kern.quant_s8(row, bf, k, p, reinterpret_cast<int8_t*>(codes));
        } else {
          kernels::qk::QuantFp8Params p;
          p.s = scale[i];
          p.fmax = qmax();
          p.e5m2 = kind_ == ByteKind::E5M2;
          p.round = rd;
          kern.quant_fp8(row, bf, k, p, codes);
        }
      }
    });
    return parts(w, data, scale);
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "weight._data", data_dtype(), {q.out, q.in});
    expect_part(q, "weight._scale", q.source_dtype, scale_shape(q));
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("weight._scale")));
    Tensor data = q.part("weight._data");
    const int64_t k = q.in;
    const DTypeRounder r{q.source_dtype};
    const ByteKind kind = kind_;
    return std::make_unique<FunctionRowDecoder>(q.out, q.in, q.bytes(), [=](int64_t row, float* dst) {
      const float s = (*scale)[scale->size() == 1 ? 0 : row];
      const uint8_t* codes = data.data<uint8_t>() + row * k;
      for (int64_t j = 0; j < k; ++j) {
        const float v = kind == ByteKind::Int8   ? static_cast<float>(static_cast<int8_t>(codes[j]))
                        : kind == ByteKind::E4M3 ? fp8_e4m3fn_to_f32(codes[j])
                                                 : fp8_e5m2_to_f32(codes[j]);
        dst[j] = r(s * v);
      }
    });
  }

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    kernels::qk::Round rd;
    if (!fast_round(q.source_dtype, &rd)) return reference_decoder(q);
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("weight._scale")));
    Tensor data = q.part("weight._data");
    const int64_t k = q.in;
    const ByteKind kind = kind_;
    auto row_scale = [scale](int64_t row) { return (*scale)[scale->size() == 1 ? 0 : row]; };
    return std::make_unique<FunctionRowDecoder>(
        q.out, q.in, q.bytes(),
        [=](int64_t row, float* dst) {
          const kernels::qk::Kernels& kern = kernels::qk::get();
          if (kind == ByteKind::Int8)
            kern.s8_mul_f32(data.data<int8_t>() + row * k, k, row_scale(row), rd, dst);
          else
            kern.fp8_mul_f32(data.data<uint8_t>() + row * k, k, kind == ByteKind::E5M2, row_scale(row), rd, dst);
        },
        [=](int64_t row, uint16_t* dst) {
          const kernels::qk::Kernels& kern = kernels::qk::get();
          if (kind == ByteKind::Int8)
            kern.s8_mul_bf16(data.data<int8_t>() + row * k, k, row_scale(row), rd, dst);
          else
            kern.fp8_mul_bf16(data.data<uint8_t>() + row * k, k, kind == ByteKind::E5M2, row_scale(row), rd, dst);
        });
  }

 private:
  QuantizedWeight parts(const Tensor& w, const Tensor& data, const std::vector<float>& scale) const {
    QuantizedWeight q{name_, w.size(0), w.size(1), w.dtype(), {}};
    q.parts["weight._data"] = data;
    q.parts["weight._scale"] = float_part(scale, scale_shape(q), w.dtype());
    q.parts["input_scale"] = scalar_one(w.dtype());
    q.parts["output_scale"] = scalar_one(w.dtype());
    return q;
  }

  std::string name_;
  ByteKind kind_;
};

// quanto's group size rule for qint4/qint2 (QModuleMixin): start at 128 and step down by 32 until
// it divides in_features; rows of 128 or fewer elements (or no divisor) use one group per row.
int64_t quanto_group_size(int64_t in) {
  if (in <= 128) return in;
  int64_t g = 128;
  while (in % g != 0 && g > 32) g -= 32;
  return in % g == 0 ? g : in;
}

class QuantoBits : public Scheme {
 public:
  QuantoBits(std::string name, int bits) : name_(std::move(name)), bits_(bits) {}
  std::string name() const override { return name_; }
  std::string library() const override { return "quanto"; }
  double bits() const override { return bits_; }
  std::map<std::string, std::string> attributes() const override { return {{"group_rule", "quanto"}}; }

  int per_byte() const { return 8 / bits_; }
  int64_t packed_rows(int64_t grouped_rows) const { return (grouped_rows + per_byte() - 1) / per_byte(); }

  QuantizedWeight reference_quantize(const Tensor& w) const override { return quantize_groups(w, false); }
  // Groups are independent, and so are the packed rows: the same arithmetic on all threads.
  QuantizedWeight quantize(const Tensor& w) const override { return quantize_groups(w, true); }

  QuantizedWeight quantize_groups(const Tensor& w, bool parallel) const {
    const int64_t n = w.size(0), k = w.size(1), gs = quanto_group_size(k);
    const int64_t rows = n * k / gs;
    const float levels = static_cast<float>((1 << bits_) - 1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w);
    std::vector<float> scale(static_cast<size_t>(rows)), shift(static_cast<size_t>(rows));
    std::vector<uint8_t> code(static_cast<size_t>(n * k));
    auto run = [&](int64_t count, const std::function<void(int64_t, int64_t)>& fn) {
      if (parallel)
        parallel_rows(count, gs, fn);
      else
        fn(0, count);
    };
    run(rows, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        const float* v = x.data() + g * gs;
        const auto [mn, mx] = std::minmax_element(v, v + gs);
        scale[g] = r(r(*mx - *mn) / levels);
        shift[g] = -*mn;
        for (int64_t c = 0; c < gs; ++c) {
          // A constant group has scale 0: code 0 dequantizes to -shift = the constant itself.
          const float u = scale[g] == 0.0f ? 0.0f : round_half_even(r(r(v[c] + shift[g]) / scale[g]));
          code[g * gs + c] = static_cast<uint8_t>(std::clamp(u, 0.0f, levels));
        }
      }
    });
    // Planar packing along dim 0 of the [rows, gs] code matrix: byte (i, c) holds rows i,
    // i + prow, i + 2*prow ... in successive bit fields.
    const int64_t prow = packed_rows(rows);
    Tensor packed = Tensor::zeros({prow, gs}, DType::U8, MemTag::Weights);
    run(prow, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t g = i; g < rows; g += prow)
          for (int64_t c = 0; c < gs; ++c)
            packed.data<uint8_t>()[i * gs + c] |= static_cast<uint8_t>(code[g * gs + c] << (bits_ * (g / prow)));
    });
    QuantizedWeight q{name_, n, k, w.dtype(), {}};
    q.parts["weight._data._data"] = packed;
    q.parts["weight._scale"] = float_part(scale, {rows, 1}, w.dtype());
    q.parts["weight._shift"] = float_part(shift, {rows, 1}, w.dtype());
    q.parts["input_scale"] = scalar_one(w.dtype());
    q.parts["output_scale"] = scalar_one(w.dtype());
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    // The group size is not stored: quanto re-derives it from the shape, and so does qdit.
    const int64_t gs = quanto_group_size(q.in), rows = q.out * q.in / gs;
    expect_part(q, "weight._data._data", DType::U8, {packed_rows(rows), gs});
    expect_part(q, "weight._scale", q.source_dtype, {rows, 1});
    expect_part(q, "weight._shift", q.source_dtype, {rows, 1});
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    const int64_t gs = quanto_group_size(q.in), rows = q.out * q.in / gs, prow = packed_rows(rows);
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("weight._scale")));
    auto shift = std::make_shared<std::vector<float>>(part_values(q.part("weight._shift")));
    Tensor packed = q.part("weight._data._data");
    const int64_t k = q.in;
    const int bits = bits_;
    const uint8_t mask = static_cast<uint8_t>((1 << bits_) - 1);
    const DTypeRounder r{q.source_dtype};
    return std::make_unique<FunctionRowDecoder>(q.out, q.in, q.bytes(), [=](int64_t row, float* dst) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t flat = row * k + j, g = flat / gs, c = flat % gs;
        const uint8_t byte = packed.data<uint8_t>()[(g % prow) * gs + c];
        const float code = static_cast<float>((byte >> (bits * (g / prow))) & mask);
        dst[j] = r(r((*scale)[g] * code) - (*shift)[g]);
      }
    });
  }

  // Rows hold whole groups (the group size divides in_features); one table per group,
  // r(r(scale * code) + (-shift)) (x - y is x + (-y) in IEEE arithmetic).
  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    kernels::qk::Round rd;
    if (!fast_round(q.source_dtype, &rd)) return reference_decoder(q);
    const int64_t gs = quanto_group_size(q.in), rows = q.out * q.in / gs, prow = packed_rows(rows);
    auto scale = std::make_shared<std::vector<float>>(part_values(q.part("weight._scale")));
    auto neg_shift = std::make_shared<std::vector<float>>(part_values(q.part("weight._shift")));
    for (float& v : *neg_shift) v = -v;
    Tensor packed = q.part("weight._data._data");
    const int64_t k = q.in;
    const int bits = bits_;
    static const float kCodes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    auto run = [=](int64_t g) {
      kernels::qk::Lut4Run p;
      p.bytes = packed.data<uint8_t>() + (g % prow) * gs;
      p.layout = kernels::qk::Nibbles::Field;
      p.shift = bits * static_cast<int>(g / prow);
      p.field_bits = bits;
      p.n = p.group = p.first_group = gs;
      p.base = kCodes;
      p.scale = scale->data() + g;
      p.zero = neg_shift->data() + g;
      p.round = rd;
      return p;
    };
    return std::make_unique<FunctionRowDecoder>(
        q.out, q.in, q.bytes(),
        [=](int64_t row, float* dst) {
          for (int64_t c = 0; c < k; c += gs) kernels::qk::get().lut4_f32(run((row * k + c) / gs), dst + c);
        },
        [=](int64_t row, uint16_t* dst) {
          for (int64_t c = 0; c < k; c += gs) kernels::qk::get().lut4_bf16(run((row * k + c) / gs), dst + c);
        });
  }

 private:
  std::string name_;
  int bits_;
};

}  // namespace

void register_quanto_schemes(SchemeTable& t) {
  t.add(std::make_shared<QuantoBytes>("qint8", ByteKind::Int8));
  auto f8 = std::make_shared<QuantoBytes>("qfloat8", ByteKind::E4M3);
  t.add(f8);
  t.alias("qfloat8_e4m3fn", "qfloat8");
  t.add(std::make_shared<QuantoBytes>("qfloat8_e5m2", ByteKind::E5M2));
  t.add(std::make_shared<QuantoBits>("qint4", 4));
  t.add(std::make_shared<QuantoBits>("qint2", 2));
}

}  // namespace qdit::quant
