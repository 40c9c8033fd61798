// optimum-quanto weight qtypes (quant-formats.md §1): qint8 / qfloat8 / qfloat8_e5m2 with one
// absmax scale per output row (AbsmaxOptimizer), and qint4 / qint2 with min/max per group, an
// unsigned code and a float shift (MaxOptimizer), packed planar along dim 0. Arithmetic runs in
// the weight's dtype, as quanto's does; scales and shifts are stored in that dtype.
#include <algorithm>
#include <cmath>

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

  QuantizedWeight quantize(const Tensor& w) const override {
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
    QuantizedWeight q{name_, n, k, w.dtype(), {}};
    q.parts["weight._data"] = data;
    q.parts["weight._scale"] = float_part(scale, scale_shape(q), w.dtype());
    q.parts["input_scale"] = scalar_one(w.dtype());
    q.parts["output_scale"] = scalar_one(w.dtype());
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "weight._data", data_dtype(), {q.out, q.in});
    expect_part(q, "weight._scale", q.source_dtype, scale_shape(q));
  }

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
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

 private:
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

  QuantizedWeight quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), gs = quanto_group_size(k);
    const int64_t rows = n * k / gs;
    const float levels = static_cast<float>((1 << bits_) - 1);
    const DTypeRounder r{w.dtype()};
    std::vector<float> x = weight_values(w);
    std::vector<float> scale(static_cast<size_t>(rows)), shift(static_cast<size_t>(rows));
    std::vector<uint8_t> code(static_cast<size_t>(n * k));
    for (int64_t g = 0; g < rows; ++g) {
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
    // Planar packing along dim 0 of the [rows, gs] code matrix: byte (i, c) holds rows i,
    // i + prow, i + 2*prow ... in successive bit fields.
    const int64_t prow = packed_rows(rows);
    Tensor packed = Tensor::zeros({prow, gs}, DType::U8, MemTag::Weights);
    for (int64_t g = 0; g < rows; ++g)
      for (int64_t c = 0; c < gs; ++c)
        packed.data<uint8_t>()[(g % prow) * gs + c] |= static_cast<uint8_t>(code[g * gs + c] << (bits_ * (g / prow)));
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

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
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
