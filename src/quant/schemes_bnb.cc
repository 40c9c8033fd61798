// bitsandbytes (quant-formats.md §3): nf4 / fp4 over flat row-major blocks of 64 with an fp32
// absmax per block (optionally double-quantized: absmax - mean in 8-bit dynamic-map blocks of
// 256), first element in the high nibble; and LLM.int8 (fp16 cast, row absmax SCB, 127/SCB).
// Parts use bitsandbytes' state-dict names (weight, weight.absmax, weight.quant_map, ..., SCB).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qdit/core/error.h"
#include "qdit/quant/codec_util.h"
#include "qdit/quant/numerics.h"
#include "qdit/quant/schemes.h"

namespace qdit::quant {

namespace {

constexpr int64_t kBlock = 64, kNestedBlock = 256;

std::string dtype_torch_name(DType d) {
  return d == DType::BF16 ? "bfloat16" : d == DType::F16 ? "float16" : "float32";
}

// The 4-bit code of xs in [-1, 1]: NF4 by nearest table entry (midpoint goes to the lower
// entry); FP4 by sign (x < 0) then nearest magnitude, as bitsandbytes' kernels do.
// FP4 magnitudes in ascending order, and the code of each.
const float kFp4Mags[8] = {0.0f, 0.0625f / 12, 2.0f / 12, 3.0f / 12, 4.0f / 12, 6.0f / 12, 8.0f / 12, 1.0f};
const uint8_t kFp4Codes[8] = {0, 1, 6, 7, 4, 5, 2, 3};

uint8_t encode_4bit(bool nf4, float xs) {
  if (nf4) return static_cast<uint8_t>(nearest_sorted(nf4_table().data(), 16, xs));
  const int i = nearest_sorted(kFp4Mags, 8, std::fabs(xs));
  return static_cast<uint8_t>(kFp4Codes[i] | (xs < 0.0f ? 8 : 0));
}

// encode_4bit's comparisons for the vectorised quantizer: the midpoints it computes, as it does.
struct NearestTable {
  std::array<float, 15> mids{};
  kernels::qk::NearestCodes t;
  explicit NearestTable(bool nf4) {
    if (nf4) {
      for (int i = 0; i < 15; ++i) mids[i] = (nf4_table()[i] + nf4_table()[i + 1]) / 2.0f;
      t.count = 15;
    } else {
      for (int i = 0; i < 7; ++i) mids[i] = (kFp4Mags[i] + kFp4Mags[i + 1]) / 2.0f;
      t.count = 7;
      t.sign_bit = true;
      t.code_of = kFp4Codes;
    }
    t.mids = mids.data();
  }
};

class Bnb4bit : public Scheme {
 public:
  Bnb4bit(bool nf4, bool double_quant) : nf4_(nf4), dq_(double_quant) {}
  std::string name() const override { return std::string(nf4_ ? "nf4" : "fp4") + (dq_ ? "_dq" : ""); }
  std::string library() const override { return "bitsandbytes"; }
  double bits() const override { return 4; }
  std::map<std::string, std::string> attributes() const override {
    return {{"blocksize", "64"}, {"double_quant", dq_ ? "true" : "false"}};
  }
  std::string state_key() const { return std::string("weight.quant_state.bitsandbytes__") + (nf4_ ? "nf4" : "fp4"); }
  static int64_t blocks(int64_t n) { return (n + kBlock - 1) / kBlock; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), total = n * k, nb = blocks(total);
    std::vector<float> x = weight_values(w), absmax(static_cast<size_t>(nb));
    Tensor packed = Tensor::zeros({(total + 1) / 2, 1}, DType::U8, MemTag::Weights);
    uint8_t* bytes = packed.data<uint8_t>();
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t e0 = b * kBlock, e1 = std::min(total, e0 + kBlock);
      float a = 0.0f;
      for (int64_t e = e0; e < e1; ++e) a = std::max(a, std::fabs(x[e]));
      absmax[b] = a;
      const float inv = a == 0.0f ? 0.0f : 1.0f / a;
      for (int64_t e = e0; e < e1; ++e) {
        const uint8_t c = encode_4bit(nf4_, std::clamp(x[e] * inv, -1.0f, 1.0f));
        bytes[e / 2] |= static_cast<uint8_t>(e % 2 == 0 ? c << 4 : c);
      }
    }
    return finish(w, packed, absmax);
  }

  // Blocks are independent (64 codes = 32 whole bytes each): the same arithmetic, vectorised
  // (the code is the count of table midpoints below the value), on all threads.
  QuantizedWeight quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1), total = n * k, nb = blocks(total);
    const Tensor values = weight_values_fast(w);
    const float* x = values.data<float>();
    std::vector<float> absmax(static_cast<size_t>(nb));
    Tensor packed = Tensor::empty({(total + 1) / 2, 1}, DType::U8, MemTag::Weights);
    uint8_t* bytes = packed.data<uint8_t>();
    const kernels::qk::Kernels& kern = kernels::qk::get();
    const kernels::qk::NearestCodes& nc = nearest_codes();
    parallel_rows(nb, kBlock, [&](int64_t b0, int64_t b1) {
      uint8_t c[kBlock + 1];
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t e0 = b * kBlock, len = std::min(total, e0 + kBlock) - e0;
        const float a = len > 0 ? kern.abs_max(&x[e0], false, len) : 0.0f;
        absmax[b] = a;
        kern.nearest_codes(&x[e0], len, a == 0.0f ? 0.0f : 1.0f / a, nc, c);
        c[len] = 0;
        for (int64_t e = 0; e < len; e += 2) bytes[(e0 + e) / 2] = static_cast<uint8_t>((c[e] << 4) | c[e + 1]);
      }
    });
    return finish(w, packed, absmax);
  }

  const kernels::qk::NearestCodes& nearest_codes() const {
    static const NearestTable nf4(true), fp4(false);
    return nf4_ ? nf4.t : fp4.t;
  }

  QuantizedWeight finish(const Tensor& w, const Tensor& packed, const std::vector<float>& absmax) const {
    const int64_t n = w.size(0), k = w.size(1), nb = static_cast<int64_t>(absmax.size());
    QuantizedWeight q{name(), n, k, w.dtype(), {}};
    q.parts["weight"] = packed;
    const auto& table = nf4_ ? nf4_table() : fp4_table();
    q.parts["weight.quant_map"] = float_part(std::vector<float>(table.begin(), table.end()), {16}, DType::F32);
    std::string state = "{\"quant_type\": \"" + std::string(nf4_ ? "nf4" : "fp4") + "\", \"blocksize\": 64, \"dtype\": \"" +
                        dtype_torch_name(w.dtype()) + "\", \"shape\": [" + std::to_string(n) + ", " + std::to_string(k) + "]";
    if (!dq_) {
      q.parts["weight.absmax"] = float_part(absmax, {nb}, DType::F32);
    } else {
      double sum = 0;
      for (float a : absmax) sum += a;
      const float offset = static_cast<float>(sum / static_cast<double>(nb));
      const int64_t nn = (nb + kNestedBlock - 1) / kNestedBlock;
      std::vector<float> nested(static_cast<size_t>(nn));
      Tensor qabs = Tensor::empty({nb}, DType::U8, MemTag::Weights);
      const auto& dyn = bnb_dynamic_map();
      for (int64_t g = 0; g < nn; ++g) {
        const int64_t b0 = g * kNestedBlock, b1 = std::min(nb, b0 + kNestedBlock);
        float a2 = 0.0f;
        for (int64_t b = b0; b < b1; ++b) a2 = std::max(a2, std::fabs(absmax[b] - offset));
        nested[g] = a2;
        for (int64_t b = b0; b < b1; ++b) {
          const float v = a2 == 0.0f ? 0.0f : (absmax[b] - offset) / a2;
          qabs.data<uint8_t>()[b] = static_cast<uint8_t>(nearest_sorted(dyn.data(), 256, v));
        }
      }
      q.parts["weight.absmax"] = qabs;
      q.parts["weight.nested_absmax"] = float_part(nested, {nn}, DType::F32);
      q.parts["weight.nested_quant_map"] = float_part(std::vector<float>(dyn.begin(), dyn.end()), {256}, DType::F32);
      state += ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
               nlohmann::json(static_cast<double>(offset)).dump();
    }
    state += "}";
    Tensor st = Tensor::empty({static_cast<int64_t>(state.size())}, DType::U8, MemTag::Weights);
    std::memcpy(st.raw_data(), state.data(), state.size());
    q.parts[state_key()] = st;
    return q;
  }

  // The JSON quant state stored as bytes; checks it describes this weight.
  nlohmann::json quant_state(const QuantizedWeight& q) const {
    const Tensor& st = q.part(state_key());
    QDIT_CHECK(st.dtype() == DType::U8 && st.dim() == 1, "[quant] ", name(), " part '", state_key(),
               "' must be u8 bytes, found ", st.desc());
    nlohmann::json j = nlohmann::json::parse(std::string(st.data<char>(), static_cast<size_t>(st.numel())), nullptr, false);
    QDIT_CHECK(!j.is_discarded() && j.is_object(), "[quant] ", name(), " part '", state_key(), "' is not a JSON object");
    QDIT_CHECK(j.value("blocksize", 0) == kBlock, "[quant] ", name(), " quant_state blocksize ", j.value("blocksize", 0),
               " is not 64");
    QDIT_CHECK(j.contains("shape") && j["shape"] == nlohmann::json({q.out, q.in}), "[quant] ", name(),
               " quant_state shape ", j.value("shape", nlohmann::json()).dump(), " is not [", q.out, ", ", q.in, "]");
    QDIT_CHECK(!dq_ || j.contains("nested_offset"), "[quant] ", name(), " quant_state lacks nested_offset");
    return j;
  }

  // The fp32 absmax of every block (double quantization undone).
  std::vector<float> absmax_values(const QuantizedWeight& q) const {
    const int64_t nb = blocks(q.out * q.in);
    std::vector<float> absmax(static_cast<size_t>(nb));
    if (dq_) {
      const float offset = static_cast<float>(quant_state(q)["nested_offset"].get<double>());
      const uint8_t* qa = q.part("weight.absmax").data<uint8_t>();
      const float* nested = q.part("weight.nested_absmax").data<float>();
      const float* dyn = q.part("weight.nested_quant_map").data<float>();
      for (int64_t b = 0; b < nb; ++b) absmax[b] = dyn[qa[b]] * nested[b / kNestedBlock] + offset;
    } else {
      std::memcpy(absmax.data(), q.part("weight.absmax").data<float>(), sizeof(float) * nb);
    }
    return absmax;
  }

  void validate(const QuantizedWeight& q) const override {
    const int64_t total = q.out * q.in, nb = blocks(total);
    expect_part(q, "weight", DType::U8, {(total + 1) / 2, 1});
    expect_part(q, "weight.quant_map", DType::F32, {16});
    if (dq_) {
      expect_part(q, "weight.absmax", DType::U8, {nb});
      expect_part(q, "weight.nested_absmax", DType::F32, {(nb + kNestedBlock - 1) / kNestedBlock});
      expect_part(q, "weight.nested_quant_map", DType::F32, {256});
    } else {
      expect_part(q, "weight.absmax", DType::F32, {nb});
    }
    quant_state(q);
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    // Restore the fp32 absmax once (double quantization folds in here).
    auto absmax = std::make_shared<std::vector<float>>(absmax_values(q));
    std::array<float, 16> table;
    std::memcpy(table.data(), q.part("weight.quant_map").data<float>(), sizeof(table));
    Tensor packed = q.part("weight");
    const int64_t k = q.in;
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      const uint8_t* bytes = packed.data<uint8_t>();
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = row * k + j;
        const int code = (bytes[e / 2] >> (e % 2 == 0 ? 4 : 0)) & 0xF;
        dst[j] = table[code] * (*absmax)[e / kBlock];
      }
    });
  }

  // One table (quant_map * absmax) per block; blocks run over the flattened weight, so a row may
  // start inside a block and inside a byte.
  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    auto absmax = std::make_shared<std::vector<float>>(absmax_values(q));
    auto table = std::make_shared<std::array<float, 16>>();
    std::memcpy(table->data(), q.part("weight.quant_map").data<float>(), sizeof(float) * 16);
    Tensor packed = q.part("weight");
    const int64_t k = q.in;
    auto run = [=](int64_t row) {
      const int64_t e0 = row * k;
      kernels::qk::Lut4Run p;
      p.bytes = packed.data<uint8_t>() + e0 / 2;
      p.layout = kernels::qk::Nibbles::HighFirst;
      p.odd_start = e0 % 2 != 0;
      p.n = k;
      p.group = kBlock;
      p.first_group = kBlock - e0 % kBlock;
      p.base = table->data();
      p.scale = absmax->data() + e0 / kBlock;
      return p;
    };
    auto dec = std::make_unique<FunctionRowDecoder>(
        q.out, k, q.bytes(), [=](int64_t row, float* dst) { kernels::qk::get().lut4_f32(run(row), dst); },
        [=](int64_t row, uint16_t* dst) { kernels::qk::get().lut4_bf16(run(row), dst); });
    if (k % kBlock == 0) {  // blocks tile the rows: block of (row, j) = row * k / 64 + j / 64
      kernels::qk::Lut4Matrix mat;
      mat.codes = packed.data<uint8_t>();
      mat.row_bytes = k / 2;
      mat.layout = kernels::qk::Nibbles::HighFirst;
      mat.n = q.out;
      mat.k = k;
      mat.group = kBlock;
      mat.base = table->data();
      mat.scale = absmax->data();
      mat.scale_row = k / kBlock;
      mat.scale_group = 1;
      dec->set_lut4_matrix(mat);
    }
    return dec;
  }

 private:
  bool nf4_, dq_;
};

// LLM.int8: weight cast to fp16, SCB = row absmax (fp32), CB = round(w16 * (127 / SCB)).
class LlmInt8 : public Scheme {
 public:
  std::string name() const override { return "llm_int8"; }
  std::string library() const override { return "bitsandbytes"; }
  double bits() const override { return 8; }
  ActivationQuant activation() const override { return ActivationQuant::LlmInt8; }
  std::map<std::string, std::string> attributes() const override { return {{"llm_int8_threshold", "6.0"}}; }

  QuantizedWeight reference_quantize(const Tensor& w) const override {
    const int64_t n = w.size(0), k = w.size(1);
    const DTypeRounder to_f16{DType::F16};
    std::vector<float> x = weight_values(w), scb(static_cast<size_t>(n));
    Tensor cb = Tensor::empty({n, k}, DType::I8, MemTag::Weights);
    for (int64_t i = 0; i < n; ++i) {
      float a = 0.0f;
      for (int64_t j = 0; j < k; ++j) a = std::max(a, std::fabs(to_f16(x[i * k + j])));
      scb[i] = a;
      const float f = a == 0.0f ? 0.0f : 127.0f / a;
      for (int64_t j = 0; j < k; ++j)
        cb.data<int8_t>()[i * k + j] =
            static_cast<int8_t>(std::clamp(round_half_even(to_f16(x[i * k + j]) * f), -127.0f, 127.0f));
    }
    return parts(w, cb, scb);
  }

  QuantizedWeight quantize(const Tensor& w) const override {
    kernels::qk::Round rd;
    if (!fast_round(w.dtype(), &rd)) return reference_quantize(w);
    const int64_t n = w.size(0), k = w.size(1);
    const Tensor src = w.contiguous();
    const bool bf = src.dtype() == DType::BF16;
    std::vector<float> scb(static_cast<size_t>(n));
    Tensor cb = Tensor::empty({n, k}, DType::I8, MemTag::Weights);
    const kernels::qk::Kernels& kern = kernels::qk::get();
    parallel_rows(n, k, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const void* row = row_ptr(src, i);
        const float a = kern.abs_max_f16(row, bf, k);
        scb[i] = a;
        kernels::qk::QuantS8Params p;
        p.s = a == 0.0f ? 0.0f : 127.0f / a;
        p.f16_first = true;
        p.lo = -127.0f;
        kern.quant_s8(row, bf, k, p, cb.data<int8_t>() + i * k);
      }
    });
    return parts(w, cb, scb);
  }

  QuantizedWeight parts(const Tensor& w, const Tensor& cb, const std::vector<float>& scb) const {
    QuantizedWeight q{name(), w.size(0), w.size(1), w.dtype(), {}};
    q.parts["weight"] = cb;
    q.parts["SCB"] = float_part(scb, {w.size(0)}, DType::F32);
    q.parts["weight_format"] = Tensor::zeros({}, DType::U8, MemTag::Weights);  // 0 = "row"
    return q;
  }

  void validate(const QuantizedWeight& q) const override {
    expect_part(q, "weight", DType::I8, {q.out, q.in});
    expect_part(q, "SCB", DType::F32, {q.out});
    if (q.has("weight_format"))
      QDIT_CHECK(q.part("weight_format").numel() == 1 && q.part("weight_format").data<uint8_t>()[0] == 0, "[quant] ",
                 name(), " part 'weight_format' must be 0 (row); other layouts are not supported");
  }

  std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const override {
    Tensor cb = q.part("weight"), scb = q.part("SCB");
    const int64_t k = q.in;
    return std::make_unique<FunctionRowDecoder>(q.out, k, q.bytes(), [=](int64_t row, float* dst) {
      const float s = scb.data<float>()[row] / 127.0f;
      const int8_t* c = cb.data<int8_t>() + row * k;
      for (int64_t j = 0; j < k; ++j) dst[j] = static_cast<float>(c[j]) * s;
    });
  }

  std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const override {
    Tensor cb = q.part("weight"), scb = q.part("SCB");
    const int64_t k = q.in;
    using kernels::qk::Round;
    return std::make_unique<FunctionRowDecoder>(
        q.out, k, q.bytes(),
        [=](int64_t row, float* dst) {
          kernels::qk::get().s8_mul_f32(cb.data<int8_t>() + row * k, k, scb.data<float>()[row] / 127.0f, Round::None,
                                        dst);
        },
        [=](int64_t row, uint16_t* dst) {
          kernels::qk::get().s8_mul_bf16(cb.data<int8_t>() + row * k, k, scb.data<float>()[row] / 127.0f, Round::None,
                                         dst);
        });
  }
};

}  // namespace

void register_bnb_schemes(SchemeTable& t) {
  t.add(std::make_shared<Bnb4bit>(true, false));
  t.add(std::make_shared<Bnb4bit>(true, true));
  t.add(std::make_shared<Bnb4bit>(false, false));
  t.add(std::make_shared<Bnb4bit>(false, true));
  t.add(std::make_shared<LlmInt8>());
  t.alias("bnb_nf4", "nf4");
  t.alias("bnb_fp4", "fp4");
  t.alias("int8_llm", "llm_int8");
}

}  // namespace qdit::quant
